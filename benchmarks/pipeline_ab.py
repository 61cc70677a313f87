"""Benchmark: two pipelines' words/s timed interleaved in one process (an A/B of a model
change), on the BBC test set and on its first sentences, one process per thread setting.

    python benchmarks/pipeline_ab.py --a wide=PATH --b narrow=PATH --out benchmarks/results/narrow_ab.json

Method: the timing of ``benchmarks/speed.py`` (same texts, words and passes: each
pipeline loaded once, an untimed warm-up pass whose accuracy is kept, then ``repeats``
rounds in which each pipeline makes one ``nlp.pipe`` pass, the order rotated per round),
for two pipelines only. Reported per thread setting and text set: words/s of the best and
median pass of each, and b/a as best over best and as the median over rounds of the
per-round ratio (the two passes of a round ran seconds apart, so other jobs on the
machine move it least). Pipelines made on other days or by other runs of speed.py
cannot be compared this way: the machine's speed drifts between runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bbc  # noqa: E402
import speed  # noqa: E402

RESULTS = speed.REPO / "benchmarks" / "results" / "pipeline_ab.json"


def named_path(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    if not (Path(path) / "config.cfg").exists():
        raise argparse.ArgumentTypeError(f"no pipeline at {path} (no config.cfg)")
    return name, Path(path)


def worker(pipelines: dict[str, Path], texts: dict[str, list[str]], gold: dict[str, list[str]], threads: int,
           repeats: dict[str, int]) -> dict[str, Any]:
    import spacy
    import torch

    import spacy_sparse_expert  # noqa: F401  (registers the factories)

    torch.set_num_threads(threads)
    predict = speed.predictors({name: spacy.load(path) for name, path in pipelines.items()})
    (a, b), runs = list(pipelines), []
    for name, items in texts.items():
        accuracy = speed.warm_up(predict, items, gold[name])
        speeds = speed.interleave(predict, items, repeats[name])
        runs.append({"threads": threads, "torch_threads": torch.get_num_threads(), "texts": name, "speeds": speeds,
                     "ratio": speed.ratios(speeds, ((b, a),))[f"{b}/{a}"], "warmup_accuracy": accuracy})
    return {"runs": runs, "load_average_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", type=named_path, required=True, help="NAME=PATH of the reference pipeline")
    p.add_argument("--b", type=named_path, required=True, help="NAME=PATH of the pipeline compared with it")
    p.add_argument("--test", type=Path, default=speed.WORK / "corpus" / "test.jsonl", help="BBC test set (jsonl)")
    p.add_argument("--threads", default="1,2", help="comma list of thread settings, each in its own process")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds on the BBC test set")
    p.add_argument("--short-repeats", type=int, default=15, help="timed rounds on the first sentences")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--worker-threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.a[0] == args.b[0]:
        raise SystemExit(f"--a and --b need different names, both are {args.a[0]!r}")
    pipelines = dict([args.a, args.b])
    texts, gold = speed.load_texts(args.test)
    repeats = {"bbc_test": args.repeats, "short": args.short_repeats}
    if args.worker_threads is not None:
        args.worker_out.write_text(json.dumps(worker(pipelines, texts, gold, args.worker_threads, repeats)),
                                   encoding="utf8")
        return
    started = dt.datetime.now(dt.timezone.utc)
    parts = {threads: speed.run_thread_setting(argv, threads, Path(__file__))
             for threads in (int(t) for t in args.threads.split(",") if t.strip())}
    data = {
        "command": "python benchmarks/pipeline_ab.py " + " ".join(argv),
        "date": started.isoformat(timespec="seconds"),
        "machine": {**{k: v for k, v in bbc.machine_info().items() if k != "torch_threads"},
                    "load_average_1m_at_end": {str(t): part["load_average_1m"] for t, part in parts.items()}},
        "code": speed.code_info(str(speed.REPO / "spacy_sparse_expert")),
        "pipelines": {name: str(path) for name, path in pipelines.items()},
        "repeats": repeats,
        "runs": [run for part in parts.values() for run in part["runs"]],
        "notes": __doc__.split("Method: ", 1)[1].strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf8")
    b = args.b[0]
    for run in data["runs"]:
        print(run["threads"], run["texts"], {s: round(v["words_per_second_best"]) for s, v in run["speeds"].items()},
              f"{b}/{args.a[0]}: best {run['ratio']['best']:.3f}, median of rounds {run['ratio']['median_of_rounds']:.3f}")
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
