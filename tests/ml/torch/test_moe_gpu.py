"""CUDA checks of the dispatch backends (run with ``pytest -m gpu --gpu``)."""
from __future__ import annotations

import pytest
import torch

from spacy_sparse_expert.ml.torch import SparseMoE, naive_moe_forward
from spacy_sparse_expert.ml.torch.experts import grouped_mm_fn
from spacy_sparse_expert.ml.torch.moe import _build_layout, _grouped_mm_ok

pytestmark = pytest.mark.gpu


def _moe(backend: str, dtype: torch.dtype, capacity_factor=None) -> SparseMoE:
    torch.manual_seed(0)
    moe = SparseMoE(64, 128, 8, 2, n_knowledge=8, capacity_factor=capacity_factor, dispatch=backend)
    with torch.no_grad():
        moe.router.knowledge_proj.weight.normal_()
    return moe.to("cuda", dtype)


@pytest.mark.parametrize("capacity_factor", [None, 0.75])
@pytest.mark.parametrize("backend", ["loop", "padded"])
def test_cuda_fp32_matches_naive(backend: str, capacity_factor) -> None:
    moe = _moe(backend, torch.float32, capacity_factor)
    x = torch.randn(300, 64, device="cuda")
    kn = torch.randn(300, 8, device="cuda")
    out = moe(x, kn)
    ref = naive_moe_forward(moe, x, kn, capacity=moe.capacity(300))
    torch.testing.assert_close(out.output, ref, rtol=1e-3, atol=1e-3)  # TF32 may be on


@pytest.mark.parametrize("capacity_factor", [None, 0.75])
def test_cuda_bf16_grouped_mm_matches_naive(capacity_factor) -> None:
    moe = _moe("auto", torch.bfloat16, capacity_factor)
    x = torch.randn(1000, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    if not _grouped_mm_ok(x, moe.experts):
        pytest.skip("grouped_mm needs bf16 on sm80+ and torch.nn.functional.grouped_mm")
    moe.dispatch = "grouped_mm"
    out = moe(x)
    ref = naive_moe_forward(moe, x, capacity=moe.capacity(1000))
    torch.testing.assert_close(out.output.float(), ref.float(), rtol=3e-2, atol=3e-2)
    out.output.float().pow(2).sum().backward()
    for name, p in moe.named_parameters():
        if name.startswith("router.knowledge_proj"):
            continue  # no knowledge passed
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_layout_needs_no_host_sync() -> None:
    idx = torch.randint(0, 8, (512, 2), device="cuda")
    w = torch.rand(512, 2, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _build_layout(idx, w, 8, None, align=16, n_rows=512 * 2 + 15 * 8)
        _build_layout(idx, w, 8, 100, rows_per_expert=100)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_grouped_mm_available() -> None:
    # documents what the installed torch offers; the layer falls back to bmm otherwise
    gmm = grouped_mm_fn()
    if gmm is None:
        pytest.skip("this torch has no grouped_mm")
    a = torch.randn(48, 64, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(3, 64, 32, device="cuda", dtype=torch.bfloat16)
    offs = torch.tensor([16, 32, 48], device="cuda", dtype=torch.int32)
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("grouped_mm needs sm80+")
    out = gmm(a, b, offs=offs)
    torch.testing.assert_close(out[16:32].float(), (a[16:32] @ b[1]).float(), rtol=2e-2, atol=2e-1)
