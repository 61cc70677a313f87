"""Distillation over student seeds: test macro-F1 of the student and of the no-teacher
student over several `benchmarks/distill.py` runs that differ only in `distill.seed`,
each compared with the teacher and with each other by a paired bootstrap over the test
documents (the seeds' mean inside each resample, as in the BBC table).

    python benchmarks/distill_seeds.py transformer=benchmarks/results/distill_transformer.json,\
benchmarks/results/distill_transformer_seed1.json,... [NAME=FILES ...] [--out FILE]

Every file must hold test predictions (benchmarks/distill.py writes them) and come from
the same teacher with the same settings apart from the seed: the script checks both and
stops otherwise. The results file keeps, per NAME, the files, the seeds, each model's
per-seed macro-F1 with mean and standard deviation, and the two differences with their
95% intervals; `python benchmarks/report.py` renders it into the README.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bbc  # noqa: E402
import stats  # noqa: E402

REPO = HERE.parent
RESULTS = REPO / "benchmarks" / "results" / "distill_seeds.json"


def _seed(data: Dict[str, Any]) -> int:
    return int(data.get("setup", {}).get("student_overrides", {}).get("distill.seed", 0))


def _settings_but_seed(data: Dict[str, Any]) -> Dict[str, Any]:
    setup = dict(data.get("setup", {}))
    setup["student_overrides"] = {k: v for k, v in setup.get("student_overrides", {}).items() if k != "distill.seed"}
    return setup


def summarize(name: str, files: List[Path], gold: List[str]) -> Dict[str, Any]:
    """One group of runs -> per-model seeds and the two paired differences."""
    runs = [json.loads(path.read_text(encoding="utf8")) for path in files]
    for path, data in zip(files, runs):
        missing = [m for m in ("teacher", "student", "student_no_teacher") if "predictions" not in data.get(m, {})]
        if missing:
            raise SystemExit(f"{path}: no test predictions for {', '.join(missing)}; re-measure it with "
                             "`benchmarks/distill.py --skip-training` and the options of its command")
        if data["teacher"]["predictions"] != runs[0]["teacher"]["predictions"]:
            raise SystemExit(f"{path}: its teacher predicts differently from that of {files[0]}: not one teacher")
        if _settings_but_seed(data) != _settings_but_seed(runs[0]):
            raise SystemExit(f"{path}: its settings differ from those of {files[0]} in more than distill.seed")
    seeds = [_seed(data) for data in runs]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"{name}: seeds {seeds} repeat")
    labels = sorted(set(gold))
    preds = {m: [data[m]["predictions"] for data in runs] for m in ("student", "student_no_teacher")}
    teacher = runs[0]["teacher"]["predictions"]
    out: Dict[str, Any] = {"files": [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in files],
                           "seeds": seeds, "setup": _settings_but_seed(runs[0]),
                           "teacher": {"macro_f1": stats.macro_f1(gold, teacher, labels)}}
    for model, per_seed in preds.items():
        scores = [stats.macro_f1(gold, p, labels) for p in per_seed]
        out[model] = {"macro_f1": scores, **stats.seed_summary(scores)}
    out["student_minus_teacher"] = stats.paired_difference(gold, preds["student"], teacher, labels)
    out["student_minus_no_teacher"] = stats.paired_difference(gold, preds["student"], preds["student_no_teacher"],
                                                              labels)
    return out


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("groups", nargs="+", metavar="NAME=FILE,FILE,...")
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    corpus = bbc.prepare_corpus(args.work.resolve() / "corpus")
    gold = [d["label"] for d in bbc.read_jsonl(corpus["test"].with_suffix(".jsonl"))]
    groups: Dict[str, Any] = {}
    for spec in args.groups:
        name, sep, files = spec.partition("=")
        if not sep or not name or not files:
            raise SystemExit(f"{spec!r}: give NAME=FILE[,FILE...]")
        groups[name] = summarize(name, [Path(f).resolve() for f in files.split(",")], gold)
    data = {"groups": groups, "test_documents": len(gold), "machine": bbc.machine_info(),
            "command": " ".join(["python benchmarks/distill_seeds.py", *(sys.argv[1:] if argv is None else argv)])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")
    for name, group in groups.items():
        d = group["student_minus_teacher"]
        print(f"{name}: student {group['student']['mean']:.4f} ± {group['student']['std']:.4f}, minus teacher "
              f"{d['difference']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]")
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
