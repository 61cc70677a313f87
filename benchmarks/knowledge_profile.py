"""Per-word cost of the knowledge parts, old against new, timed interleaved in one process.

    python benchmarks/knowledge_profile.py                  # writes results/knowledge_profile.json
    python benchmarks/knowledge_profile.py --repeats 9 --before-rev fb6dc7b

Implementations, all on the same pipeline (``speed.py``'s knowledge model by default), the
same documents, the same batches (the pipeline's batch size) and the same linker output:

- ``reference``: the plain per-doc, per-token code the tests check the fast path against
  (``tests/features/reference_impl.py``);
- ``before``: this repository's code at ``--before-rev`` (features/rule_matcher.py,
  features/bounded_patterns.py, features/features.py, ml/featurize.py read with
  ``git show`` and loaded beside the current package; their other imports are today's);
- ``new``: the working tree.

Parts, microseconds per word (whitespace-split words, as ``speed.py`` counts them):
``rules`` (phrase, pattern and KB rule hits given the links), ``assembly`` (the per-token
arrays and the annotation records given links and hits), ``arrays`` (the model's input arrays given the knowledge: hashed ids,
n-gram bags, knowledge concatenation; before and new only), and ``linking`` (shared, for
scale). Every round times every (implementation, part) once, the order of implementations
rotated per round; ``gc.collect()`` runs untimed before each; figures are the best round,
by the wall clock and by the process's CPU time (on a machine shared with other jobs the
CPU time is the steadier figure: it leaves out the time the process waited for a core).
Text sets: the BBC test documents and the first sentence of each (``speed.first_sentence``).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO)]
from speed import SYSTEMS, first_sentence  # noqa: E402  (benchmarks/ on the path first)
from timing import count_words  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "knowledge_profile.json"
BEFORE_FILES = {  # module name beside today's -> path at the old revision
    "spacy_sparse_expert.features._before_bounded_patterns": "spacy_sparse_expert/features/bounded_patterns.py",
    "spacy_sparse_expert.features._before_rule_matcher": "spacy_sparse_expert/features/rule_matcher.py",
    "spacy_sparse_expert.features._before_features": "spacy_sparse_expert/features/features.py",
    "spacy_sparse_expert.ml._before_featurize": "spacy_sparse_expert/ml/featurize.py",
}


def load_before(rev: str) -> dict[str, ModuleType]:
    """The old revision's modules, their imports of each other pointed at the old copies."""
    out: dict[str, ModuleType] = {}
    for name, path in BEFORE_FILES.items():
        source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True,
                                text=True).stdout
        for old in ("bounded_patterns", "rule_matcher"):
            source = re.sub(rf"from \.{old} import", f"from ._before_{old} import", source)
        spec = importlib.util.spec_from_loader(name, loader=None)
        assert spec is not None
        module = importlib.util.module_from_spec(spec)
        module.__file__ = str(REPO / path)
        sys.modules[name] = module
        exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own file
        out[name.rsplit("._before_", 1)[1]] = module
    return out


def profile(nlp: Any, texts: list[str], before: dict[str, ModuleType], repeats: int) -> dict[str, Any]:
    from reference_impl import ReferenceKnowledge, bow_features_per_doc  # tests/features on the path

    import numpy as np

    from spacy_sparse_expert.features.disambiguation import LinkResult
    from spacy_sparse_expert.features.features import BatchLinks
    from spacy_sparse_expert.ml.inputs import build_inputs

    comp = nlp.get_pipe(nlp.pipe_names[-1])
    model, feat = comp.model, comp.featurizer
    old = before["features"].KnowledgeFeaturizer(
        nlp.vocab, feat.kb, feat.rules, labels=feat.labels, n_experts=feat.n_experts,
        max_types_per_entity=feat.max_types_per_entity)
    old.linker = feat.linker  # the linker is not compared here: share one
    ref = ReferenceKnowledge(feat)
    docs = [nlp.make_doc(t) for t in texts]
    size = nlp.batch_size
    batches = [docs[i: i + size] for i in range(0, len(docs), size)]
    links = [feat.linker(d) if len(d) else None for d in docs]
    links_b = [links[i: i + size] for i in range(0, len(docs), size)]
    knowledge = [feat.pipe(b) for b in batches]
    attrs = model.attrs
    old_featurize = before["featurize"]
    lengths = [np.array([len(d) for d in b], dtype=np.int64) for b in batches]
    empty = LinkResult.empty()
    links_b = [[link if link is not None else empty for link in lb] for lb in links_b]
    flat_b = [BatchLinks.of(lb) for lb in links_b]
    new_hits = [feat._rule_hits(b, fl) for b, fl in zip(batches, flat_b)]
    old_hits = [old._rule_hits(d, link if link is not None else empty) for d, link in zip(docs, links)]
    ref_hits = [ref.token_hits(d) + (ref.entity_hits(link) if link is not None else []) for d, link in zip(docs, links)]

    def new_assembly() -> None:
        for n, lb, hb in zip(lengths, links_b, new_hits):
            feat._assemble(n, BatchLinks.of(lb), hb)
            feat._annotations(lb, hb)

    def old_assembly() -> None:
        ids = old.rule_matcher.ids if old.rule_matcher is not None else []
        for d, link, h in zip(docs, links, old_hits):
            link = link if link is not None else empty
            old._assemble(len(d), link, h)
            tuple((ids[r], s, e) for r, s, e in zip(h.rules.tolist(), h.starts.tolist(), h.ends.tolist()))
            old._annotate_links(link)

    def ref_assembly() -> None:
        for d, link, h in zip(docs, links, ref_hits):
            ref.features(len(d), link if link is not None else empty, h)

    def new_rules() -> None:
        rm = feat.rule_matcher
        for b, fl in zip(batches, flat_b):
            rm.token_hits_flat(b)
            rm.entity_hits_flat(fl.entities, fl.starts, fl.ends, fl.docs)

    def old_rules() -> None:
        rm = old.rule_matcher
        for d, link in zip(docs, links):
            rm.token_hits(d)
            if link is not None:
                rm.entity_hits(link.entities, link.starts, link.ends)

    def ref_rules() -> None:
        for d, link in zip(docs, links):
            ref.token_hits(d)
            if link is not None:
                ref.entity_hits(link)

    knowledge_lists = [list(k) for k in knowledge]  # what the old featurizer's pipe gave

    def old_arrays() -> None:
        for b, k in zip(batches, knowledge_lists):
            old_featurize.featurize_batch(b, attrs["token_featurizer"], k, bow_rows=attrs["bow_rows"],
                                          ngram_size=attrs["ngram_size"], n_dense=attrs["n_dense"],
                                          n_experts=attrs["n_experts"], n_labels=model.get_dim("nO"))

    timed: dict[tuple[str, str], Callable[[], Any]] = {
        ("shared", "linking"): lambda: [feat.linker(d) for d in docs if len(d)],
        ("new", "rules"): new_rules,
        ("new", "assembly"): new_assembly,
        ("new", "arrays"): lambda: [build_inputs(model, b, knowledge=k) for b, k in zip(batches, knowledge)],
        ("before", "rules"): old_rules,
        ("before", "assembly"): old_assembly,
        ("before", "arrays"): old_arrays,
        ("reference", "rules"): ref_rules,
        ("reference", "assembly"): ref_assembly,
        ("reference", "bow"): lambda: [bow_features_per_doc(b, attrs["bow_rows"], ngram_size=attrs["ngram_size"])
                                       for b in batches],
    }
    impls = ["new", "before", "reference"]
    best: dict[str, dict[tuple[str, str], float]] = {"wall": {}, "cpu": {}}
    for r in range(repeats):
        order = impls[r % 3:] + impls[: r % 3]
        keys = [("shared", "linking")] + [k for impl in order for k in timed if k[0] == impl]
        for key in keys:
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            timed[key]()
            took = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            for clock, sec in took.items():
                best[clock][key] = min(best[clock].get(key, sec), sec)
    words = count_words(texts)
    out: dict[str, Any] = {"words": words, "docs": len(texts), "batch_size": size}
    for clock, times in best.items():
        us = {f"{i}/{p}": round(1e6 * t / words, 4) for (i, p), t in times.items()}
        for impl in impls:  # the knowledge features without linking: the goal is < 1 us a word
            us[f"{impl}/rules+assembly"] = round(us[f"{impl}/rules"] + us[f"{impl}/assembly"], 4)
        out[f"us_per_word_{clock}"] = dict(sorted(us.items()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=SYSTEMS["sparse_expert_knowledge"][1])
    p.add_argument("--texts", type=Path, default=REPO / "benchmarks" / "work" / "corpus" / "test.jsonl")
    p.add_argument("--before-rev", default="fb6dc7b", help="git revision of the 'before' code")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--limit", type=int, default=0, help="first N texts only (0: all)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    import spacy
    import torch

    sys.path.insert(0, str(REPO / "tests" / "features"))
    before = load_before(args.before_rev)
    nlp = spacy.load(args.model)
    texts = [json.loads(line)["text"] for line in args.texts.read_text(encoding="utf8").splitlines() if line.strip()]
    if args.limit:
        texts = texts[: args.limit]
    load0 = os.getloadavg()[0]
    sets = {"bbc_test": texts, "bbc_test_first_sentence": [first_sentence(t) for t in texts]}
    results = {name: profile(nlp, items, before, args.repeats) for name, items in sets.items()}
    out = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "before_rev": args.before_rev, "repeats": args.repeats, "model": str(args.model),
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "cpus": os.cpu_count(), "load_average_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "texts": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
