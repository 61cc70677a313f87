"""The spaCy side of distillation: load and check the teacher, build the student
pipeline from its config with the teacher's labels, KB and rules, rebuild it with
pruned shapes, and save it as a normal pipeline directory.

A saved student holds a manifest, ``sparse_expert_distill.json`` (format marker, size and
sha256 of every file). It is what lets a later distillation replace that folder: only an
empty directory or a folder whose files are exactly the ones the manifest lists, unchanged,
is ever replaced; never a symlink, an input, or a folder holding or inside an input.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language
from spacy.training import Example
from spacy.vocab import Vocab
from thinc.api import Config

from ..errors import Errors, SparseExpertError
from ..kb import storage
from ..kb.outputs import check_output_target, existing_entries, read_small_json
from ..rules.rules import RuleSet
from ..ml.architectures import torch_module
from ..ml.torch.classifier import MoEDocClassifier
from ..ml.torch.pruning import encoder_hidden
from ..pipeline.textcat import SparseExpertTextCategorizer

FACTORIES = ("sparse_expert_textcat", "sparse_expert_textcat_multilabel")
OUTPUT_MARKER = "sparse_expert_distill.json"
OUTPUT_FORMAT = "spacy-sparse-expert.distill-output"
Inputs = Sequence[Tuple[str, Union[None, str, Path]]]


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


def pruned_config(config: Config, name: str, module: MoEDocClassifier) -> Config:
    """A copy of the student config with the shapes of the pruned ``module`` written in
    (experts, k, expert d_ff, and the encoder blocks' d_hidden where it has blocks)."""
    new = Config(config).copy() if not isinstance(config, Config) else config.copy()
    model = new["components"][name]["model"]
    model["n_experts"] = int(module.n_experts)
    if len(module.moe):
        model["k"], model["d_ff"] = int(module.moe[0].k), int(module.moe[0].d_ff)
    d_hidden = encoder_hidden(module.encoder)
    if d_hidden is not None:
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


def distill_inputs(teacher: Union[str, Path], config: Any, train: Any, dev: Any, unlabelled: Any) -> Inputs:
    """The (role, path) of everything a distillation reads, which its output must spare."""
    return [("teacher", teacher), ("student config", config if isinstance(config, (str, Path)) else None),
            ("--train file", train), ("--dev file", dev), ("--unlabelled file", unlabelled)]


def check_output(output: Union[str, Path], inputs: Inputs = ()) -> Path:
    """Raise unless distillation may write to ``output``: not a symlink (E080), not one
    of ``inputs`` ((role, path) pairs) nor holding or inside one (E082), and new, empty or
    a folder an earlier distillation wrote, unchanged (E085). RETURNS the absolute path."""
    path = storage.output_path(output)
    check_output_target(path, inputs, error=SparseExpertError)
    reason = output_refusal(path)
    if reason is not None:
        raise SparseExpertError(Errors.E085.format(path=output, reason=reason, marker=OUTPUT_MARKER))
    return path


def output_refusal(path: Path) -> Optional[str]:
    """Why distillation may not replace ``path``; None when it may."""
    reason, names = existing_entries(path)
    if reason is not None or not names:
        return reason
    marker = read_small_json(path / OUTPUT_MARKER)
    if not isinstance(marker, dict) or marker.get("format") != OUTPUT_FORMAT or \
            not isinstance(marker.get("files"), dict):
        return (f"it has no distillation manifest {OUTPUT_MARKER} (a spaCy pipeline, a KB, another "
                "program's folder, or a student saved by an older version)")
    listed: Dict[str, Any] = marker["files"]
    for rel, entry in _walk(path):
        if rel == OUTPUT_MARKER:
            continue
        if entry is None:
            return f"its {rel} is a link or a special file"
        expected = listed.get(rel)
        if not isinstance(expected, dict):
            return f"it holds {rel}, which distillation did not write"
        if expected.get("bytes") != entry.st_size or expected.get("sha256") != _sha256(path / rel):
            return f"its {rel} was changed after distillation wrote it"
    return None


def _walk(root: Path) -> Iterable[Tuple[str, Optional[os.stat_result]]]:
    """(relative path, lstat) of every file under ``root``; None for a link or special file.
    Links are never followed."""
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                info = entry.stat(follow_symlinks=False)
                rel = Path(entry.path).relative_to(root).as_posix()
                if stat.S_ISDIR(info.st_mode):
                    stack.append(Path(entry.path))
                else:
                    yield rel, info if stat.S_ISREG(info.st_mode) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_output_manifest(path: Path) -> None:
    """Record every file under ``path`` in its OUTPUT_MARKER manifest."""
    files = {rel: {"bytes": info.st_size, "sha256": _sha256(path / rel)}
             for rel, info in _walk(path) if info is not None and rel != OUTPUT_MARKER}
    text = json.dumps({"format": OUTPUT_FORMAT, "version": 1, "files": files}, indent=1, sort_keys=True)
    (path / OUTPUT_MARKER).write_text(text + "\n", encoding="utf8")


def _busy(output: Path, lock: Path) -> SparseExpertError:
    return SparseExpertError(Errors.E084.format(path=output, lock=lock))


def save_pipeline(nlp: Language, output: Union[str, Path], inputs: Inputs = ()) -> Path:
    """Write ``nlp`` with its manifest to ``output`` through a temporary folder beside it,
    swapped in atomically under a lock (see ``kb.storage``). Only what ``check_output``
    allows is replaced; it is checked again right before the swap.
    RETURNS (Path): ``output``."""
    path = check_output(output, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        nlp.to_disk(tmp)
        write_output_manifest(tmp)

    def check(target: Path) -> None:
        check_output(target, inputs)

    with storage.import_lock(path, busy=_busy):
        storage.recover(path, is_own=lambda aside: output_refusal(aside) is None)
        storage.replace_dir_atomically(path, write, check=check)
    return Path(output)


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


__all__ = ["FACTORIES", "OUTPUT_MARKER", "check_output", "check_student_fits", "create_student", "dir_bytes",
           "distill_inputs", "examples_for", "find_component", "initialize_student", "load_teacher", "output_refusal",
           "pruned_config", "rebuild_student", "remap_rules", "save_pipeline", "student_component",
           "write_output_manifest"]
