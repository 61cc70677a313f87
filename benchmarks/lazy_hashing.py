"""Benchmark: a token-cached pipeline (the distilled student) with its hashed ids made only
for the tokens its cache lacks (``featurize.LazyHashIds``, what inference does) against the
same pipeline hashing every token first (what it did before), in one process, interleaved.

    python benchmarks/lazy_hashing.py                 # writes results/lazy_hashing.json
    python benchmarks/lazy_hashing.py --rounds 8 --short-rounds 30 --pipeline PATH

The two differ only in ``build_inputs(..., lazy_hash_ids=...)``: the component's forward
is run once with the library as it is and once with the ``lazy_hash_ids`` flag forced off.
Each round runs both over the texts (BBC test documents, then their first sentences as in
``benchmarks/speed.py``), the order alternating, with the token cache emptied and
``gc.collect()`` before each pass; words are whitespace-split tokens. Reported per text
set: best and median words/s of each, the ratio best over best and the median of the
rounds' paired ratios, and whether both gave the same cats (to 1e-5). One torch thread
(``OMP_NUM_THREADS=1`` is set before torch is imported). The machine is shared: the
1-minute load average is stored, and only ratios from one run mean much.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bbc  # noqa: E402
import speed  # noqa: E402
from timing import count_words  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "lazy_hashing.json"


def measure(nlp: Any, texts: List[str], rounds: int) -> Dict[str, Any]:
    import torch

    import spacy_sparse_expert.ml.architectures as architectures
    from spacy_sparse_expert.ml.architectures import torch_module

    module = torch_module(nlp.get_pipe(nlp.pipe_names[-1]).model)
    if not module.caches_tokens():
        raise SystemExit("the pipeline's model does not predict from a token cache (a distilled student does)")
    real_build = architectures.build_inputs
    mode = {"lazy": True}

    def build(model: Any, docs: Any, **kwargs: Any) -> Any:
        if not mode["lazy"]:
            kwargs["lazy_hash_ids"] = False
        return real_build(model, docs, **kwargs)

    def run(lazy: bool) -> tuple[float, List[Dict[str, float]]]:
        mode["lazy"] = lazy
        module.token_cache.clear()
        gc.collect()
        start = time.perf_counter()
        cats = [doc.cats for doc in nlp.pipe(texts, batch_size=nlp.batch_size)]
        return time.perf_counter() - start, cats

    architectures.build_inputs = build  # type: ignore[assignment]
    try:
        torch.set_num_threads(1)
        run(True)  # warm-up
        seconds: Dict[str, List[float]] = {"lazy": [], "eager": []}
        same = True
        for r in range(rounds):
            order = (True, False) if r % 2 else (False, True)
            got = {}
            for lazy in order:
                took, cats = run(lazy)
                seconds["lazy" if lazy else "eager"].append(took)
                got[lazy] = cats
            same = same and all(a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-5 for k in a)
                                for a, b in zip(got[True], got[False]))
    finally:
        architectures.build_inputs = real_build  # type: ignore[assignment]
    words = count_words(texts)
    speeds = {name: [words / s for s in secs] for name, secs in seconds.items()}
    paired = [lazy / eager for lazy, eager in zip(speeds["lazy"], speeds["eager"])]
    return {
        "docs": len(texts), "words": words, "rounds": rounds,
        "words_per_second": {name: {"best": round(max(v)), "median": round(statistics.median(v))}
                             for name, v in speeds.items()},
        "lazy_over_eager_best": round(max(speeds["lazy"]) / max(speeds["eager"]), 3),
        "lazy_over_eager_median_paired": round(statistics.median(paired), 3),
        "same_cats": same,
    }


def main(argv: List[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pipeline", type=Path, default=speed.SYSTEMS["student"][1],
                   help="a token-cached pipeline (made by `python benchmarks/distill.py`)")
    p.add_argument("--test", type=Path, default=speed.WORK / "corpus" / "test.jsonl", help="BBC test set (jsonl)")
    p.add_argument("--rounds", type=int, default=8, help="rounds on the BBC test set")
    p.add_argument("--short-rounds", type=int, default=30,
                   help="rounds on the first sentences (each pass has ~1/20 of the words)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    import spacy

    texts, _ = speed.load_texts(args.test)
    nlp = spacy.load(args.pipeline)
    load_before = os.getloadavg()[0]
    started = dt.datetime.now(dt.timezone.utc)
    rounds = {"bbc_test": args.rounds, "short": args.short_rounds}
    results = {name: measure(nlp, items, rounds[name]) for name, items in texts.items()}
    data = {
        "command": "python benchmarks/lazy_hashing.py" + ("" if not argv else " " + " ".join(argv)),
        "date": started.isoformat(timespec="seconds"),
        "pipeline": str(args.pipeline),
        "machine": {**{k: v for k, v in bbc.machine_info().items() if k != "torch_threads"},
                    "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]},
        "code": speed.code_info("spacy_sparse_expert"),
        "threads": 1,
        "texts": results,
        "notes": __doc__.split("\n\n")[2].strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf8")
    for name, res in results.items():
        print(name, res["words_per_second"], "lazy/eager best", res["lazy_over_eager_best"],
              "median paired", res["lazy_over_eager_median_paired"], "same cats", res["same_cats"])
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
