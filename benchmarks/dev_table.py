"""The dev table of knowledge settings: each candidate's kb and both runs against one
set of knowledge-none runs, mean ± sd over seeds and the paired-bootstrap difference
(benchmarks/stats.py, the same seeds' predictions on the same resampled dev documents).

    python benchmarks/dev_table.py --none benchmarks/results/bbc_dev_current.json \
        gate=benchmarks/results/bbc_dev_gatekd25.json kbow=benchmarks/results/bbc_dev_kbow.json

Each NAME=FILE[,FILE...] is a candidate (the files of one candidate are merged; a run is
keyed by knowledge and seed); only dev results (``eval_set`` dev) are accepted, so no
test score can enter a choice of settings.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stats  # noqa: E402


def load_runs(paths: list[Path]) -> tuple[dict[tuple[str, int], dict[str, Any]], list[str], list[str]]:
    runs: dict[tuple[str, int], dict[str, Any]] = {}
    gold: list[str] | None = None
    labels: list[str] = []
    for path in paths:
        data = json.loads(path.read_text(encoding="utf8"))
        if gold is not None and data["test_labels"] != gold:
            raise SystemExit(f"{path}: evaluated on other documents than the files before it")
        gold, labels = data["test_labels"], data["labels"]
        for run in data["runs"]:
            if run.get("eval_set") != "dev":
                raise SystemExit(f"{path}: run {run['knowledge']}/seed{run['seed']} is not a dev run")
            runs[(run["knowledge"], run["seed"])] = run
    assert gold is not None
    return runs, gold, labels


def table(none: list[Path], candidates: dict[str, list[Path]]) -> list[str]:
    base, gold, labels = load_runs(none)
    rows = ["| candidate | knowledge | seeds | macro-F1 (mean ± sd) | minus none | 95% interval | verdict |",
            "|---|---|---:|---:|---:|---:|---|"]
    seeds = sorted(seed for know, seed in base if know == "none")
    summary = stats.seed_summary([base[("none", s)]["macro_f1"] for s in seeds])
    rows.append(f"| - | none | {summary['n']} | {summary['mean']:.4f} ± {summary['std']:.4f} | | | |")
    for name, paths in candidates.items():
        runs, cand_gold, _ = load_runs(paths)
        if cand_gold != gold:
            raise SystemExit(f"candidate {name}: evaluated on other documents than the none runs")
        for know in ("kb", "rules", "both"):
            paired = [s for s in seeds if (know, s) in runs]
            if not paired:
                continue
            summary = stats.seed_summary([runs[(know, s)]["macro_f1"] for s in paired])
            diff = stats.paired_difference(gold, [runs[(know, s)]["predictions"] for s in paired],
                                           [base[("none", s)]["predictions"] for s in paired], labels)
            verdict = {"a better": "knowledge helps", "b better": "knowledge hurts"}.get(diff["verdict"],
                                                                                        diff["verdict"])
            rows.append(f"| {name} | {know} | {summary['n']} | {summary['mean']:.4f} ± {summary['std']:.4f} | "
                        f"{diff['difference']:+.4f} | {diff['low']:+.4f} to {diff['high']:+.4f} | {verdict} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--none", required=True, help="comma list of result files holding the knowledge-none runs")
    p.add_argument("candidates", nargs="+", metavar="NAME=FILE[,FILE...]")
    args = p.parse_args()
    candidates = {}
    for item in args.candidates:
        name, _, files = item.partition("=")
        if not files:
            raise SystemExit(f"{item!r}: write NAME=FILE[,FILE...]")
        candidates[name] = [Path(f) for f in files.split(",")]
    print("\n".join(table([Path(f) for f in args.none.split(",")], candidates)))


if __name__ == "__main__":
    main()
