"""Benchmark: the whole KB import (parse + compile + graph features + write) of the shipped
FB15k-237 graph against rdflib's own ``Graph.parse`` of the same file.

    python benchmarks/kb_import.py [knowledge/fb15k237.nt.gz] [--repeat 2]

Each run happens in its own worker process, started by its own measuring process, so
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` read by the measurer is the peak RSS
of exactly that one worker (the two sides never share a maximum). Seconds are timed
inside the worker around the measured call (interpreter start and imports excluded; the
worker's whole wall time is reported as well). The best of `--repeat` runs is kept.
Writes benchmarks/results/kb_import.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO / "knowledge" / "fb15k237.nt.gz"
RESULTS = REPO / "benchmarks" / "results" / "kb_import.json"


def work_ours(path: Path) -> dict[str, Any]:
    from spacy_sparse_expert.kb.compile import import_rdf

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        kb = import_rdf([path], Path(tmp) / "kb")
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "triples": kb.meta["counts"]["triples"], "counts": kb.meta["counts"],
            "timing": kb.meta["timing"]}


def work_baseline(path: Path) -> dict[str, Any]:
    """Only the imports of our side (numpy, pyoxigraph, msgpack: kb/ loads neither spaCy
    nor torch), to separate the cost of starting from that of the import itself."""
    import spacy_sparse_expert.kb.compile  # noqa: F401

    return {"seconds": 0.0, "triples": 0}


def work_rdflib(path: Path) -> dict[str, Any]:
    import rdflib

    graph = rdflib.Graph()
    start = time.perf_counter()
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
        graph.parse(fh, format="nt")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "triples": len(graph)}


def measure(side: str, path: Path) -> dict[str, Any]:
    """Run one worker and report its result plus its peak RSS (the only child we wait for)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", side, str(path)], capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{proc.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out.update({"process_wall_seconds": wall, "peak_rss_mb": peak_kb / 1024})
    return out


def run_side(side: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--measure", side, str(path)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", choices=["ours", "rdflib", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["ours", "rdflib", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.file.resolve()
    if args.worker:
        work = {"ours": work_ours, "rdflib": work_rdflib, "baseline": work_baseline}[args.worker]
        print(json.dumps(work(path)))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, path)))
        return
    if not path.is_file():
        raise SystemExit(f"{path} does not exist; build it with knowledge/build_fb15k237.py")
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "rdflib": []}
    for i in range(args.repeat):
        for side in ("ours", "rdflib"):  # interleaved, so load changes hit both sides alike
            runs[side].append(run_side(side, path))
            print(f"run {i + 1} {side}: {runs[side][-1]['seconds']:.2f} s, "
                  f"peak {runs[side][-1]['peak_rss_mb']:.0f} MB", file=sys.stderr)
    baseline = run_side("baseline", path)
    ours = min(runs["ours"], key=lambda r: r["seconds"])
    theirs = min(runs["rdflib"], key=lambda r: r["seconds"])
    try:
        file_label = str(path.relative_to(REPO))
    except ValueError:
        file_label = str(path)
    result = {
        "file": file_label,
        "triples": ours["triples"],
        "ours_seconds": round(ours["seconds"], 3),
        "rdflib_parse_seconds": round(theirs["seconds"], 3),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["ours"]), 1),
        "speedup": round(theirs["seconds"] / ours["seconds"], 2),
        "speedup_median": round(statistics.median(r["seconds"] for r in runs["rdflib"])
                                / statistics.median(r["seconds"] for r in runs["ours"]), 2),
        "ours_import_baseline_rss_mb": round(baseline["peak_rss_mb"], 1),
        "rdflib_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs["rdflib"]), 1),
        "rdflib_triples": theirs["triples"],
        "ours_triples_per_second": round(ours["triples"] / ours["seconds"]),
        "rdflib_triples_per_second": round(theirs["triples"] / theirs["seconds"]),
        "ours_breakdown_seconds": ours["timing"],
        "ours_process_wall_seconds": round(ours["process_wall_seconds"], 3),
        "rdflib_process_wall_seconds": round(theirs["process_wall_seconds"], 3),
        "kb_counts": ours["counts"],
        "all_runs_seconds": {side: [round(r["seconds"], 3) for r in rs] for side, rs in runs.items()},
        "repeat": args.repeat,
        "what": "ours = import_rdf (parse with pyoxigraph, compile tables, graph features, atomic write); "
                "rdflib = rdflib.Graph().parse(gzip stream, format='nt'). Best of `repeat` runs, each in a "
                "fresh process; peak RSS per process via RUSAGE_CHILDREN of a dedicated parent. "
                "ours_import_baseline_rss_mb: a process that only imports spacy_sparse_expert.kb.compile.",
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "platform": platform.platform(),
                    "note": "2 cores shared with other jobs running at the same time; absolute times are noisy, "
                            "the two sides were interleaved so both saw similar load."},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
