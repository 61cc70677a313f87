"""Benchmark: what a user waits for, whole processes (interpreter start, imports, work).

    python benchmarks/cli_startup.py [--repeat 5] [--file knowledge/fb15k237.nt.gz]

Three commands, each run `--repeat` times as a fresh process, interleaved so that load
changes on the (shared) machine hit all of them alike:

- help:   `sparse-expert --help`
- import: `sparse-expert kb import FILE -o TMP` (parse, compile, graph features, write)
- rdflib: `python -c "rdflib.Graph().parse(gzip.open(FILE), format='nt')"`, the fair
          whole-process comparison for the import.

Wall time per process (best and median) and its peak RSS (from `os.wait4`, so exactly
that process). Writes benchmarks/results/cli_startup.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_FILE = REPO / "knowledge" / "fb15k237.nt.gz"
RESULTS = REPO / "benchmarks" / "results" / "cli_startup.json"
CLI = str(Path(sys.executable).with_name("sparse-expert"))


def rdflib_code(path: Path) -> str:
    return ("import gzip, rdflib\n"
            f"with gzip.open({str(path)!r}, 'rb') as fh:\n"
            "    print(len(rdflib.Graph().parse(fh, format='nt')))")


def run_once(argv: list[str]) -> dict[str, float]:
    """One process: wall seconds and peak RSS in MB. Raises SystemExit if it fails."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a full pipe would stall the child
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.read().decode('utf8', 'replace')}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}  # kilobytes on Linux


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    return {"best_seconds": round(min(seconds), 3), "median_seconds": round(statistics.median(seconds), 3),
            "all_seconds": [round(s, 3) for s in seconds],
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    path = args.file.resolve()
    if not path.is_file():
        raise SystemExit(f"{path} does not exist; build it with knowledge/build_fb15k237.py")
    tmp = Path(tempfile.mkdtemp(prefix="cli_startup_"))
    commands = {
        "help": [CLI, "--help"],
        "import": [CLI, "kb", "import", str(path), "-o", str(tmp / "kb")],
        "rdflib": [sys.executable, "-c", rdflib_code(path)],
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    try:
        for i in range(args.repeat):
            for name, argv in commands.items():
                runs[name].append(run_once(argv))
                print(f"run {i + 1} {name}: {runs[name][-1]['seconds']:.2f} s, "
                      f"{runs[name][-1]['peak_rss_mb']:.0f} MB", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {name: summary(rs) for name, rs in runs.items()}
    try:
        file_label = str(path.relative_to(REPO))
    except ValueError:
        file_label = str(path)
    out = {
        "file": file_label,
        "commands": {"help": "sparse-expert --help", "import": f"sparse-expert kb import {file_label} -o TMP",
                     "rdflib": f"python -c \"rdflib.Graph().parse(gzip.open('{file_label}'), format='nt')\""},
        **result,
        "import_speedup_best": round(result["rdflib"]["best_seconds"] / result["import"]["best_seconds"], 2),
        "import_speedup_median": round(result["rdflib"]["median_seconds"] / result["import"]["median_seconds"], 2),
        "repeat": args.repeat,
        "what": "whole processes (interpreter start, imports, work), wall time from the parent; peak RSS of "
                "each process from os.wait4; the three commands interleaved, best and median of `repeat`.",
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                    "python": platform.python_version(), "platform": platform.platform(),
                    "note": "2 cores shared with other jobs running at the same time: times are upper bounds."},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
