"""Benchmark: the alias linker over the stored alias index against the PhraseMatcher
linker it replaced (tests/features/reference_linker.py), in one process, interleaved.

    python benchmarks/linker_speed.py                 # writes results/linker_speed.json
    python benchmarks/linker_speed.py --repeats 7 --pipeline PATH

Two measurements:
- ``spacy.load`` of a trained BBC pipeline whose component carries the shipped KB
  (knowledge/fb15k237.nt.gz, 33k aliases). "old": the component's linker is the reference
  (every load tokenizes the aliases and fills a PhraseMatcher), on a copy of the pipeline
  without an alias index; "new": the current linker on a copy whose KB folder holds the
  index (written by one untimed load first). Each round loads both, order alternating,
  ``gc.collect()`` before each; best and median over rounds.
- Linking microseconds per word on the BBC test set (words = whitespace-split tokens,
  benchmarks/timing.py): the reference per doc, the new linker per doc (``linker(doc)``,
  what the featurizer calls today) and per batch (``linker.pipe(docs)`` in batches of the
  pipeline's batch size), same docs (tokenized once, untimed), interleaved rounds; every
  round also checks that all three give the same links.

The machine is shared: the 1-minute load average before and after is recorded, and only
ratios from the same run mean much. Both wall-clock and CPU time (``time.process_time``,
less moved by other jobs' load) are reported. OMP_NUM_THREADS=1 is set before numpy is
imported.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, List, Tuple  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "features"))
from timing import count_words  # noqa: E402

DEFAULT_PIPELINE = HERE / "work" / "models" / "sparse_expert-train-knowledgekb-seed0" / "model-best"
DEFAULT_TEST = HERE / "work" / "corpus" / "test.jsonl"
OUT = HERE / "results" / "linker_speed.json"


def _summary(seconds: List[float], scale: float = 1.0) -> Dict[str, float]:
    return {"best": round(min(seconds) * scale, 4), "median": round(statistics.median(seconds) * scale, 4),
            "rounds": len(seconds)}


def _links(results: List[Any]) -> List[tuple]:
    return [(r.starts.tolist(), r.ends.tolist(), r.entities.tolist(), [round(float(p), 6) for p in r.priors])
            for r in results]


def measure_load(pipeline: Path, repeats: int, tmp: Path) -> Dict[str, Any]:
    import spacy

    import spacy_sparse_expert.features.linker as linker_module
    from reference_linker import ReferenceLinker
    from spacy_sparse_expert.kb import storage

    copies = {name: tmp / name for name in ("old", "new")}
    for path in copies.values():
        shutil.copytree(pipeline, path)
        (path / "textcat" / "kb" / storage.ALIAS_INDEX_FILE).unlink(missing_ok=True)
    new_linker = linker_module.AliasLinker

    def load(name: str) -> Tuple[float, float]:
        linker_module.AliasLinker = ReferenceLinker if name == "old" else new_linker  # type: ignore[misc]
        try:
            gc.collect()
            start, cpu = time.perf_counter(), time.process_time()
            nlp = spacy.load(copies[name])
            seconds = (time.perf_counter() - start, time.process_time() - cpu)
        finally:
            linker_module.AliasLinker = new_linker  # type: ignore[misc]
        assert type(nlp.get_pipe("textcat").featurizer.linker).__name__ == (
            "ReferenceLinker" if name == "old" else "AliasLinker")
        return seconds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W200: the untimed first load writes the index
        first = {name: load(name) for name in ("new", "old")}
    assert (copies["new"] / "textcat" / "kb" / storage.ALIAS_INDEX_FILE).is_file()
    times: Dict[str, List[Tuple[float, float]]] = {"old": [], "new": []}
    for r in range(repeats):
        for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
            times[name].append(load(name))
    out: Dict[str, Any] = {"first_load_seconds": {k: round(v[0], 3) for k, v in first.items()}}
    for i, clock in enumerate(("wall", "cpu")):
        out[f"{clock}_seconds"] = {k: _summary([t[i] for t in v]) for k, v in times.items()}
        out[f"{clock}_ratio_old_over_new_best"] = round(min(t[i] for t in times["old"]) / min(
            t[i] for t in times["new"]), 2)
    return out


def measure_linking(pipeline: Path, texts: List[str], repeats: int) -> Dict[str, Any]:
    import spacy

    from reference_linker import ReferenceLinker
    from spacy_sparse_expert.features.linker import AliasLinker, blank_tokenizer
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W200: this copy's index is written now
        nlp = spacy.load(pipeline)
    kb_dir = pipeline / "textcat" / "kb"
    make_doc = blank_tokenizer(nlp.vocab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = AliasLinker(nlp.vocab, KnowledgeBase.from_disk(kb_dir), make_doc=make_doc)
    ref = ReferenceLinker(nlp.vocab, KnowledgeBase.from_disk(kb_dir), make_doc=make_doc)
    docs = [nlp.make_doc(t) for t in texts]
    size = nlp.batch_size or 64
    batches = [docs[i : i + size] for i in range(0, len(docs), size)]
    systems: Dict[str, Callable[[], List[Any]]] = {
        "old_per_doc": lambda: [ref(d) for d in docs],
        "new_per_doc": lambda: [fast(d) for d in docs],
        "new_batched": lambda: [r for b in batches for r in fast.pipe(b)],
    }
    want = _links(systems["old_per_doc"]())  # warm-up of every system, and the check
    assert all(_links(run()) == want for run in systems.values()), "the linkers disagree"
    words = count_words(texts)
    times: Dict[str, List[Tuple[float, float]]] = {name: [] for name in systems}
    names = list(systems)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            gc.collect()
            start, cpu = time.perf_counter(), time.process_time()
            systems[name]()
            times[name].append((time.perf_counter() - start, time.process_time() - cpu))
    out: Dict[str, Any] = {"docs": len(docs), "words": words, "links": sum(len(x[0]) for x in want)}
    for i, clock in enumerate(("wall", "cpu")):
        per_word = {name: _summary([t[i] for t in v], 1e6 / words) for name, v in times.items()}
        out[f"{clock}_us_per_word"] = per_word
        out[f"{clock}_speedup_best"] = {name: round(per_word["old_per_doc"]["best"] / per_word[name]["best"], 2)
                                        for name in ("new_per_doc", "new_batched")}
    return out


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=DEFAULT_PIPELINE)
    parser.add_argument("--test", type=Path, default=DEFAULT_TEST, help="BBC test JSONL (benchmarks/bbc.py)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load-repeats", type=int, default=5)
    parser.add_argument("--docs", type=int, default=None, help="only the first N test documents")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not (args.pipeline / "textcat" / "kb").is_dir():
        raise SystemExit(f"no pipeline with a KB at {args.pipeline}; train one with `python benchmarks/bbc.py`")
    if args.test.exists():
        texts = [json.loads(line)["text"] for line in args.test.read_text(encoding="utf8").splitlines() if line.strip()]
    else:
        from spacy_sparse_expert.data.bbc import bbc_split

        texts = [d["text"] for d in bbc_split()["test"]]
    texts = texts[: args.docs]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Path(tmp) / "pipeline"
        shutil.copytree(args.pipeline, pipeline)  # the linking run writes the index into its copy
        load = measure_load(args.pipeline, args.load_repeats, Path(tmp))
        linking = measure_linking(pipeline, texts, args.repeats)
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pipeline": str(args.pipeline.relative_to(REPO) if args.pipeline.is_relative_to(REPO) else args.pipeline),
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
        "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "spacy_load": load,
        "linking": linking,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
