"""Inference speed of one sparse MoE layer on CPU: ours against the naive loop and against
the autograd op that training uses, at the shapes of the shipped models.

Compared in the same process, interleaved, on the same random inputs and weights (forward
only, under ``torch.inference_mode()``, knowledge vectors on 5% of the tokens):

* ``naive``: the Mixtral-style loop over experts (``naive_moe_forward``);
* ``autograd_op``: the padded layout and the hand-written autograd op that training runs
  (``_build_layout`` + ``_SortedExpertsFn``, which keeps every expert's intermediates for
  the backward pass), i.e. what inference ran before it had a path of its own;
* ``ours``: ``SparseMoE.forward`` as inference runs it (the groups found one expert at a
  time, each expert's rows a cache-sized step at a time, nothing kept).

Each round times every implementation once, the order rotating; reported per shape: best
and median milliseconds, tokens/s, ours' speed-up over each (best over best, and the median
of the rounds' paired ratios), and the largest difference between the outputs.

    python benchmarks/moe_inference.py              # writes results/moe_inference.json
    python benchmarks/moe_inference.py --rounds 30 --threads 1
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spacy_sparse_expert.ml.torch import SparseMoE, naive_moe_forward  # noqa: E402
from spacy_sparse_expert.ml.torch.experts import _SortedExpertsFn  # noqa: E402
from spacy_sparse_expert.ml.torch.moe import _build_layout  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "moe_inference.json"
# (what, d_model, d_ff, experts, k, tokens): tokens of one inference batch of nlp.pipe
SHAPES: Tuple[Tuple[str, int, int, int, int, int], ...] = (
    ("BBC model (configs/bbc_news.cfg), a BBC test batch", 64, 64, 4, 2, 30000),
    ("BBC model, a batch of first sentences", 64, 64, 4, 2, 3000),
    ("MiniLM teacher (configs/bbc_news_transformer.cfg)", 128, 128, 4, 2, 30000),
    ("16 experts", 64, 64, 16, 2, 30000),
)
IMPLS = ("naive", "autograd_op", "ours")


def implementations(moe: SparseMoE, x: torch.Tensor, knowledge: torch.Tensor) -> Dict[str, Callable[[], torch.Tensor]]:
    ex = moe.experts

    def autograd_op() -> torch.Tensor:
        routing = moe.route(x, knowledge)
        layout = _build_layout(routing.indices, routing.weights, moe.n_experts, None)
        return _SortedExpertsFn.apply(x, layout.weight, ex.w_in, ex.b_in, ex.w_in, ex.b_in, ex.w_out, ex.b_out,
                                      layout.rows, layout.counts.tolist(), ex.activation)

    return {"naive": lambda: naive_moe_forward(moe, x, knowledge),
            "autograd_op": autograd_op,
            "ours": lambda: moe(x, knowledge).output}


def bench_shape(d_model: int, d_ff: int, n_experts: int, k: int, tokens: int, rounds: int,
                seed: int = 0) -> Dict[str, Any]:
    """Times and outputs of the three implementations on one shape (see the module doc)."""
    torch.manual_seed(seed)
    moe = SparseMoE(d_model, d_ff, n_experts, k, n_knowledge=16).eval()
    x = torch.randn(tokens, d_model)
    knowledge = torch.randn(tokens, 16) * (torch.rand(tokens, 1) < 0.05)
    with torch.no_grad():  # trained routers use knowledge; a zero projection would hide it
        moe.router.knowledge_proj.weight.normal_(std=0.5)
    seconds: Dict[str, List[float]] = {name: [] for name in IMPLS}
    with torch.inference_mode():
        fns = implementations(moe, x, knowledge)
        outputs = {name: fn() for name, fn in fns.items()}  # also the warm-up
        for r in range(rounds):
            order = IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)]
            for name in order:
                start = time.perf_counter()
                fns[name]()
                seconds[name].append(time.perf_counter() - start)
    result: Dict[str, Any] = {"d_model": d_model, "d_ff": d_ff, "experts": n_experts, "k": k, "tokens": tokens,
                              "rounds": rounds, "impls": {}}
    for name in IMPLS:
        best, median = min(seconds[name]), statistics.median(seconds[name])
        result["impls"][name] = {"ms_best": best * 1e3, "ms_median": median * 1e3, "tokens_per_second_best": tokens / best,
                                 "seconds": seconds[name]}
    for other in ("naive", "autograd_op"):
        result[f"ours_over_{other}"] = {
            "best": min(seconds[other]) / min(seconds["ours"]),
            "median_of_rounds": statistics.median(a / b for a, b in zip(seconds[other], seconds["ours"])),
            "max_abs_difference": float((outputs[other] - outputs["ours"]).abs().max()) if tokens else 0.0,
        }
    return result


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load = [os.getloadavg()[0]]
    runs = []
    for what, d, f, e, k, n in SHAPES:
        run = bench_shape(d, f, e, k, n, args.rounds)
        run["what"] = what
        runs.append(run)
        load.append(os.getloadavg()[0])
        print(f"{what}: ours {run['impls']['ours']['ms_best']:.2f} ms, "
              f"{run['ours_over_naive']['best']:.2f}x naive, {run['ours_over_autograd_op']['best']:.2f}x autograd op",
              flush=True)
    data = {"command": "python benchmarks/moe_inference.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1), "threads": args.threads,
            "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "torch": torch.__version__, "load_average_1m": [min(load), max(load)]},
            "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
