"""Benchmark: documents/s of batch annotation on the BBC test set: plain ``nlp.pipe`` in
one process, ``annotate --engine local`` and ``annotate --engine ray`` with 1 and 2 actors,
all in one run, interleaved.

    python benchmarks/annotate.py                        # writes results/annotate.json
    python benchmarks/annotate.py --rounds 3 --copies 4  # the test set 4 times over

Method
- Texts: ``WORK/corpus/test.jsonl`` (made by ``benchmarks/bbc.py``), ``--copies`` times
  over (ids made unique), written once to a temporary JSONL file.
- Threads: ``OMP_NUM_THREADS=1`` (set before torch is imported) here and in every Ray
  actor (Ray gives a 1-CPU actor one thread), so one actor and ``nlp.pipe`` do the same
  work on one core and the 2-actor run shows what a second core adds.
- Ray is started once, before the rounds, with the settings of the Ray ``annotate``
  starts (loopback, 2 CPUs, no dashboard, workers at this process's priority); its start
  time is reported, not counted in the runs, as a cluster would already be running.
- Each round runs the four systems once, the order rotated by one per round. A run is:
  ``nlp.pipe``: one pass over the texts with the pipeline loaded before the round (the
  figure users compare against; loading is reported separately); the three annotate
  runs: a whole ``annotate()`` call into a fresh output folder, so each includes reading
  the input, loading the pipeline (in each Ray actor), and writing Parquet shards.
- Figures: documents/s of the best and the median run per system; the Ray overhead at one
  actor (seconds of a 1-actor Ray run / seconds of the ``nlp.pipe`` pass of the same round,
  minus 1), per round and its median; all from this one run. Each annotate run also
  stores its ``startup_seconds`` (engine start until every pipeline was loaded: in Ray,
  the actors' processes, imports and loads) and the steady documents/s after it, and the
  steady Ray overhead (the 1-actor run less its startup, against the same ``nlp.pipe``). The outputs of the three
  annotate runs are checked to be identical to each other and their cats equal to
  ``nlp.pipe``'s (to 1e-6).
- The machine is shared: the load average before and after is stored with the figures.
- The results file keeps one entry per ``--copies``: on the 445 test documents the fixed
  costs (starting actors, loading the pipeline in each) weigh more than on more copies.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, for a fair one-core comparison

import datetime as dt  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work"
RESULTS = REPO / "benchmarks" / "results" / "annotate.json"
MODEL = WORK / "models" / "sparse_expert-train-knowledgeboth-seed0" / "model-best"
CORPUS = WORK / "corpus" / "test.jsonl"
SYSTEMS = ("nlp_pipe", "annotate_local", "ray_1_actor", "ray_2_actors")


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--copies", type=int, default=1, help="the corpus this many times over")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def load_texts(corpus: Path, copies: int) -> List[Dict[str, str]]:
    records = [json.loads(line) for line in corpus.read_text(encoding="utf8").splitlines() if line.strip()]
    return [{"id": f"{r['id']}#{c}", "text": r["text"]} for c in range(copies) for r in records]


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    for path, make in ((args.model, "python benchmarks/bbc.py --systems sparse_expert --train-sets train "
                                    "--knowledge both --seeds 0"), (args.corpus, "python benchmarks/bbc.py")):
        if not path.exists():
            sys.exit(f"{path} is missing; make it with `{make}`")
    import ray
    import spacy

    from spacy_sparse_expert.annotate import annotate, read_output
    from spacy_sparse_expert.annotate.engines import local_ray_options

    load_before = os.getloadavg()
    records = load_texts(args.corpus, args.copies)
    texts = [r["text"] for r in records]
    tmp = Path(tempfile.mkdtemp(prefix="annotate-bench-"))
    try:
        source = tmp / "docs.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
        began = time.perf_counter()
        nlp = spacy.load(args.model)
        load_seconds = time.perf_counter() - began
        batch_size = nlp.batch_size
        list(nlp.pipe(texts[:32], batch_size=batch_size))  # warm-up
        began = time.perf_counter()
        ray.init(**local_ray_options(2, 256))  # the settings of the Ray `annotate` starts
        ray_start_seconds = time.perf_counter() - began

        def run(system: str, out: Path) -> float:
            began = time.perf_counter()
            if system == "nlp_pipe":
                docs = list(nlp.pipe(texts, batch_size=batch_size))
                seconds = time.perf_counter() - began
                pipe_cats.append([doc.cats for doc in docs])
                return seconds
            engine, actors = {"annotate_local": ("local", 1), "ray_1_actor": ("ray", 1),
                              "ray_2_actors": ("ray", 2)}[system]
            summary = annotate(args.model, source, out, engine=engine, num_actors=actors,
                               shard_size=args.shard_size, batch_size=batch_size)
            seconds = time.perf_counter() - began
            startup[system].append(summary.startup_seconds)
            steady[system].append(summary.seconds - summary.startup_seconds)
            return seconds

        pipe_cats: List[List[Dict[str, float]]] = []
        seconds: Dict[str, List[float]] = {s: [] for s in SYSTEMS}
        startup: Dict[str, List[float]] = {s: [] for s in SYSTEMS[1:]}
        steady: Dict[str, List[float]] = {s: [] for s in SYSTEMS[1:]}
        outputs: Dict[str, Path] = {}
        for round_ in range(args.rounds):
            order = SYSTEMS[round_ % len(SYSTEMS):] + SYSTEMS[:round_ % len(SYSTEMS)]
            for system in order:
                out = tmp / f"out-{system}-{round_}"
                seconds[system].append(run(system, out))
                outputs[system] = out
                print(f"round {round_} {system}: {len(texts) / seconds[system][-1]:.1f} docs/s", flush=True)
        ray.shutdown()
        rows = {s: read_output(outputs[s]) for s in SYSTEMS[1:]}
        identical = rows["annotate_local"] == rows["ray_1_actor"] == rows["ray_2_actors"]
        cats_diff = max(abs(row["cats"][label] - cats[label]) for row, cats in zip(rows["annotate_local"],
                                                                               pipe_cats[-1]) for label in cats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    overhead = [ray / pipe - 1 for ray, pipe in zip(seconds["ray_1_actor"], seconds["nlp_pipe"])]
    extra = [ray - pipe for ray, pipe in zip(seconds["ray_1_actor"], seconds["nlp_pipe"])]
    steady_overhead = [ray / pipe - 1 for ray, pipe in zip(steady["ray_1_actor"], seconds["nlp_pipe"])]
    result: Dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "note": "a shared machine under load from other jobs: figures are noisy, compare within a run"},
        "settings": {"model": str(args.model.relative_to(REPO)) if args.model.is_relative_to(REPO) else str(args.model),
                     "documents": len(texts), "copies": args.copies, "rounds": args.rounds,
                     "shard_size": args.shard_size, "batch_size": batch_size, "omp_num_threads": os.environ["OMP_NUM_THREADS"]},
        "pipeline_load_seconds": load_seconds,
        "ray_start_seconds": ray_start_seconds,
        "docs_per_second": {s: {"best": len(texts) / min(v), "median": len(texts) / statistics.median(v),
                                "seconds": v} for s, v in seconds.items()},
        "ray_overhead_1_actor_vs_nlp_pipe": {"per_round": overhead, "median": statistics.median(overhead),
                                             "extra_seconds_per_round": extra,
                                             "steady_per_round": steady_overhead,
                                             "steady_median": statistics.median(steady_overhead)},
        "startup_seconds": {s: v for s, v in startup.items()},
        "steady_docs_per_second": {s: {"median": len(texts) / statistics.median(v)} for s, v in steady.items()},
        "outputs_identical_local_ray1_ray2": identical,
        "max_cats_difference_annotate_vs_nlp_pipe": cats_diff,
    }
    # one entry per corpus size: the fixed costs (Ray actors, pipeline loads) weigh less on more copies
    runs = {}
    if args.output.exists():
        runs = json.loads(args.output.read_text(encoding="utf8")).get("runs", {})
    runs[f"copies_{args.copies}"] = result
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"runs": dict(sorted(runs.items()))}, indent=2) + "\n", encoding="utf8")
    print(json.dumps({k: result[k] for k in ("docs_per_second", "ray_overhead_1_actor_vs_nlp_pipe",
                                             "outputs_identical_local_ray1_ray2")}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
