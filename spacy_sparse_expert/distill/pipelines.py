"""The spaCy side of distillation: load and check the teacher, build the student
pipeline from its config with the teacher's labels, KB and rules, rebuild it with
pruned shapes, and save it as a normal pipeline directory.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Config

from ..errors import Errors
from ..kb.rules import RuleSet
from ..ml.architectures import torch_module
from ..pipeline.textcat import SparseExpertTextCategorizer

FACTORIES = ("sparse_expert_textcat", "sparse_expert_textcat_multilabel")


def find_component(nlp: Language) -> Optional[str]:
    """Name of the first sparse-expert textcat in ``nlp``'s pipeline, or None."""
    for name, pipe in nlp.pipeline:
        if isinstance(pipe, SparseExpertTextCategorizer):
            return name
    return None


def load_teacher(path: Union[str, Path]) -> Tuple[Language, str]:
    """Load a trained teacher pipeline. RETURNS (nlp, component name). Raises E050 when
    the directory is missing, is not a spaCy pipeline, fails to load (damaged or
    foreign weights), or has no trained sparse-expert textcat."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(Errors.E050.format(path=path, reason="no such directory"))
    if not (path / "config.cfg").is_file() or not (path / "meta.json").is_file():
        raise ValueError(Errors.E050.format(
            path=path, reason="no config.cfg / meta.json: not a saved spaCy pipeline (use the model-best "
                              "folder of `spacy train`, or a folder written by nlp.to_disk)"))
    try:
        nlp = spacy.load(path)
    except Exception as err:  # any failure to load means: this teacher cannot be used
        raise ValueError(Errors.E050.format(path=path, reason=f"spacy.load failed: {err}")) from err
    name = find_component(nlp)
    if name is None:
        raise ValueError(Errors.E050.format(
            path=path, reason=f"it has no {' or '.join(FACTORIES)} component (pipeline: {nlp.pipe_names})"))
    pipe = nlp.get_pipe(name)
    if not pipe.labels or pipe.featurizer is None:
        raise ValueError(Errors.E050.format(path=path, reason=f"its component {name!r} is not trained (no labels)"))
    return nlp, name


def student_component(config: Config, source: str) -> Tuple[str, Dict[str, Any]]:
    """The student's sparse-expert component in ``config``: (name, its config block)."""
    components = config.get("components", {})
    for name in config.get("nlp", {}).get("pipeline", []):
        block = components.get(name, {})
        if block.get("factory") in FACTORIES:
            return name, block
    raise ValueError(Errors.E070.format(path=source, pipeline=config.get("nlp", {}).get("pipeline")))


def remap_rules(rules: Optional[RuleSet], experts: Optional[Sequence[int]], n_experts: int) -> Optional[RuleSet]:
    """Rules whose expert scores follow the experts a model kept: ``experts[i]`` is the
    old id of new expert i (None: ids are kept, those >= n_experts dropped)."""
    if rules is None or rules.max_expert < 0:
        return rules
    mapping = {old: new for new, old in enumerate(experts)} if experts is not None else \
        {e: e for e in range(n_experts)}
    new_rules = [dataclasses.replace(rule, experts={mapping[e]: s for e, s in rule.experts.items() if e in mapping})
                 for rule in rules]
    return RuleSet(new_rules, source=rules.source)


def create_student(config: Config, *, vocab: Optional[Vocab] = None,
                   source: str = "<student config>") -> Tuple[Language, str]:
    """The (uninitialised) student pipeline of ``config``. RETURNS (nlp, component name)."""
    name, _ = student_component(config, source)
    try:
        nlp = spacy.util.load_model_from_config(config, vocab=vocab or True, auto_fill=True, validate=True)
    except Exception as err:
        raise ValueError(Errors.E071.format(teacher="-", student=source, reason=f"the config does not load: {err}")) \
            from err
    return nlp, name


def initialize_student(nlp: Language, name: str, *, labels: Sequence[str], examples: Iterable[Example], kb: Any,
                       rules: Optional[RuleSet], rule_experts: Optional[Sequence[int]] = None) -> None:
    """Initialise the student's component with the teacher's ``labels``, ``kb`` and
    ``rules`` (so it needs no RDF or rule file) and the n-gram idf of ``examples``.
    ``rule_experts``: the expert of ``rules`` behind each student expert (see
    :func:`remap_rules`)."""
    pipe: SparseExpertTextCategorizer = nlp.get_pipe(name)
    examples = list(examples)
    pipe.initialize(lambda: examples, nlp=nlp, labels=list(labels), kb_loader=lambda _: kb,
                    rules_loader=lambda _: remap_rules(rules, rule_experts, pipe.model.attrs["n_experts"]))


def pruned_config(config: Config, name: str, *, n_experts: int, d_ff: int, d_hidden: Optional[int]) -> Config:
    """A copy of the student config with the pruned shapes written in."""
    new = Config(config).copy() if not isinstance(config, Config) else config.copy()
    model = new["components"][name]["model"]
    model["n_experts"] = n_experts
    model["k"] = min(int(model.get("k", 1)), n_experts)
    model["d_ff"] = d_ff
    if d_hidden is not None and "d_hidden" in model.get("encoder", {}):
        model["encoder"]["d_hidden"] = d_hidden
    return new


def rebuild_student(nlp: Language, name: str, config: Config, *, experts: Sequence[int], examples: Iterable[Example],
                    state: Dict[str, Any]) -> Language:
    """A fresh student pipeline from the pruned ``config`` (same vocab), with the rules'
    expert ids following ``experts`` (old id of each kept expert) and the pruned weights
    ``state`` loaded (their shapes must match the config exactly)."""
    old: SparseExpertTextCategorizer = nlp.get_pipe(name)
    new_nlp, _ = create_student(config, vocab=nlp.vocab)
    initialize_student(new_nlp, name, labels=old.labels, examples=examples, kb=old.kb, rules=old.rules,
                       rule_experts=experts)
    torch_module(new_nlp.get_pipe(name).model).load_state_dict(state)
    return new_nlp


def check_output(output: Union[str, Path]) -> Path:
    """``output`` may be new, empty or an old pipeline (replaced); anything else: E078."""
    output = Path(output)
    if output.exists():
        is_pipeline = (output / "config.cfg").is_file() and (output / "meta.json").is_file()
        if not output.is_dir() or (any(output.iterdir()) and not is_pipeline):
            raise ValueError(Errors.E078.format(path=output))
    return output


def save_pipeline(nlp: Language, output: Union[str, Path]) -> Path:
    """Write ``nlp`` to ``output`` through a sibling temporary folder, replacing an old
    pipeline there (never another kind of folder: E078)."""
    output = check_output(output)
    tmp = output.with_name(output.name + ".distill-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    output.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(tmp)
    if output.exists():
        shutil.rmtree(output)
    tmp.rename(output)
    return output


def dir_bytes(path: Union[str, Path]) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check_student_fits(teacher: SparseExpertTextCategorizer, config: Config, name: str,
                       teacher_path: Any, source: str) -> None:
    """The student's component kind must be the teacher's (E071)."""
    factory = config["components"][name].get("factory")
    teacher_factory = FACTORIES[0] if teacher.cfg["exclusive"] else FACTORIES[1]
    if factory != teacher_factory:
        raise ValueError(Errors.E071.format(teacher=teacher_path, student=source,
                                            reason=f"the teacher is a {teacher_factory}, the student a {factory}"))


def examples_for(nlp: Language, docs: Iterable[Any]) -> List[Example]:
    """Examples whose reference is each doc (gold cats or none) for initialisation."""
    return [Example(nlp.make_doc(doc.text), doc) for doc in docs]


__all__ = ["FACTORIES", "check_output", "check_student_fits", "create_student", "dir_bytes", "examples_for",
           "find_component", "initialize_student", "load_teacher", "pruned_config", "rebuild_student", "remap_rules",
           "save_pipeline", "student_component"]
