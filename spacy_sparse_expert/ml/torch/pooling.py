"""Pooling flat token vectors (N, width) into document vectors (B, ...) by segment.

``doc_index`` (N,) long gives each token's document; documents without tokens pool
to zeros. Only index_add / scatter_reduce are used, so there is no padding.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def segment_mean(x: Tensor, doc_index: Tensor, n_docs: int) -> Tensor:
    """x: (N, d) -> (B, d) mean per document (0 for empty documents)."""
    sums = x.new_zeros(n_docs, x.shape[1]).index_add(0, doc_index, x)
    counts = x.new_zeros(n_docs).index_add(0, doc_index, x.new_ones(x.shape[0]))
    return sums / counts.clamp_min(1.0).unsqueeze(1)


def segment_max(x: Tensor, doc_index: Tensor, n_docs: int) -> Tensor:
    """x: (N, d) -> (B, d) max per document (0 for empty documents)."""
    out = x.new_zeros(n_docs, x.shape[1])
    index = doc_index.unsqueeze(1).expand_as(x)
    return out.scatter_reduce(0, index, x, reduce="amax", include_self=False)


def segment_softmax(scores: Tensor, doc_index: Tensor, n_docs: int) -> Tensor:
    """scores: (N,) -> (N,) softmax within each document."""
    top = scores.new_full((n_docs,), float("-inf")).scatter_reduce(
        0, doc_index, scores, reduce="amax", include_self=True
    )
    e = (scores - top.detach()[doc_index]).exp()
    denom = scores.new_zeros(n_docs).index_add(0, doc_index, e)
    return e / denom[doc_index]


class MeanMaxPool(nn.Module):
    """(N, d) -> (B, 2d): mean and max concatenated."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.n_out = 2 * width

    def forward(self, x: Tensor, doc_index: Tensor, n_docs: int) -> Tensor:
        return _cat(segment_mean(x, doc_index, n_docs), segment_max(x, doc_index, n_docs))


class AttentionPool(nn.Module):
    """(N, d) -> (B, 2d): attention-weighted sum (one learned query) and the mean.

    The mean is kept beside the attention sum because with few training documents
    the attention weights are noisy early on; the mean is a stable fallback.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.score = nn.Linear(width, 1)
        nn.init.zeros_(self.score.weight)  # uniform attention (= mean) at start
        self.n_out = 2 * width

    def forward(self, x: Tensor, doc_index: Tensor, n_docs: int) -> Tensor:
        attn = segment_softmax(self.score(x).squeeze(1), doc_index, n_docs)
        summed = x.new_zeros(n_docs, x.shape[1]).index_add(0, doc_index, x * attn.unsqueeze(1))
        return _cat(summed, segment_mean(x, doc_index, n_docs))


def _cat(a: Tensor, b: Tensor) -> Tensor:
    return torch.cat([a, b], dim=1)


POOLINGS = {"mean_max": MeanMaxPool, "attention": AttentionPool}

__all__ = ["AttentionPool", "MeanMaxPool", "POOLINGS", "segment_max", "segment_mean", "segment_softmax"]
