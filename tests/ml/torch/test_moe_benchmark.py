"""The MoE layer benchmark's bookkeeping (not its speed)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch


@pytest.fixture(scope="module")
def bench(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("moe_layer_bench", repo_root / "benchmarks" / "moe_layer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_config_reports_every_impl(bench: ModuleType) -> None:
    runs = bench.bench_config(
        torch.device("cpu"), torch.float32, n_experts=4, k=2, d_model=16, d_ff=32, tokens=64,
        warmup=1, iters=2, impls=("naive", "dense", "ours"),
    )
    assert [r["impl"] for r in runs] == ["naive", "dense", "ours"]
    for r in runs:
        assert r["seconds_per_iter"] > 0 and r["tokens_per_second"] > 0 and r["tflops"] > 0
        assert {"device", "device_name", "E", "k", "d_model", "d_ff", "tokens", "dtype"} <= r.keys()
    assert runs[2]["dispatch"] == "loop"
    # same useful FLOPs for dense and MoE experts, plus the router for the MoE
    assert bench.moe_flops(64, 2, 16, 32, 4) == bench.dense_flops(64, 16, 64) + 3 * 2 * 64 * 16 * 4


def test_merge_keeps_the_other_device(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "moe_layer.json"
    gpu_run = {"device": "cuda", "impl": "ours"}
    out.write_text(json.dumps({"runs": [gpu_run, {"device": "cpu", "impl": "old"}],
                               "peak_tflops": {"cuda": {"bfloat16": 700.0}}}))
    data = bench.merge_results(out, "cpu", [{"device": "cpu", "impl": "ours"}], {"float32": 0.1}, {})
    assert gpu_run in data["runs"] and {"device": "cpu", "impl": "old"} not in data["runs"]
    assert data["peak_tflops"] == {"cuda": {"bfloat16": 700.0}, "cpu": {"float32": 0.1}}
    assert json.loads(out.read_text()) == data


def test_inference_benchmark_times_three_equal_implementations(repo_root: Path) -> None:
    spec = importlib.util.spec_from_file_location("moe_inference_bench", repo_root / "benchmarks" / "moe_inference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.bench_shape(16, 24, 4, 2, 300, rounds=3)
    assert set(run["impls"]) == {"naive", "autograd_op", "ours"}
    for impl in run["impls"].values():
        assert len(impl["seconds"]) == 3 and impl["ms_best"] > 0
    for other in ("naive", "autograd_op"):
        assert run[f"ours_over_{other}"]["best"] > 0
        assert run[f"ours_over_{other}"]["max_abs_difference"] < 1e-5
