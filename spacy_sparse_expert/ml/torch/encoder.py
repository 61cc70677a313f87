"""Token encoders: flat token ids in, flat token vectors (N, width) out.

Every encoder returns one row per spaCy token of the whole batch, in document order
(doc 0's tokens, then doc 1's, ...). Nothing downstream pads: the MoE, the knowledge
bag and the pooling all work on that flat layout.

* :class:`HashEncoder` - hashed embeddings of a few lexical attributes (NORM, PREFIX,
  SUFFIX, SHAPE) summed into one vector, then depthwise-separable window
  convolutions. The documents are packed into one sequence with ``window`` zero rows
  between them, so a convolution never mixes two documents and no padding is wasted.
* :class:`TransformerEncoder` - a Hugging Face encoder over overlapping windows of
  word pieces; each piece is read from the window where it is most central, and the
  pieces are mean-pooled back onto the spaCy tokens. Frozen, it can cache each
  document's token vectors (``vector_cache.py``).
"""
from __future__ import annotations

from typing import Any, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vector_cache import VectorCache


def depthwise_window(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """What ``nn.Conv1d(width, width, 2w+1, padding=w, groups=width)`` computes, on
    rows: x (P, width), weight (width, 1, 2w+1), bias (width,) -> (P, width), with
    ``out[t] = bias + sum_j weight[:, 0, j] * x[t + j - w]`` (rows outside x are 0).

    One multiply-add per offset on shifted row slices: on CPU ~10x faster than
    torch's grouped convolution (which runs one tiny convolution per channel), and
    no (1, width, P) transposes."""
    n, span = x.shape[0], weight.shape[-1]
    w = span // 2
    taps = weight.reshape(weight.shape[0], span).t()  # (2w+1, width)
    out = torch.addcmul(bias, x, taps[w]) if bias is not None else x * taps[w]
    for j in range(span):
        shift = j - w
        if shift == 0 or abs(shift) >= n:
            continue
        if shift < 0:  # out[t] += taps[j] * x[t - |shift|]
            out[-shift:].addcmul_(x[: n + shift], taps[j])
        else:
            out[: n - shift].addcmul_(x[shift:], taps[j])
    return out


class WindowBlock(nn.Module):
    """One residual block: depthwise conv over ``2*window+1`` positions, then a
    pointwise feed-forward, then LayerNorm. x: (P, width) packed -> (P, width)."""

    def __init__(self, width: int, window: int, d_hidden: int, dropout: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, 2 * window + 1, padding=window, groups=width)
        self.up = nn.Linear(width, d_hidden)
        self.down = nn.Linear(d_hidden, width)
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, keep: Optional[Tensor]) -> Tensor:
        """x: (P, width); keep: (P, 1) 1.0 on token rows, 0.0 on the gaps, or None after
        the last block (whose gap rows nothing reads)."""
        h = depthwise_window(x, self.depthwise.weight, self.depthwise.bias)
        h = self.down(F.gelu(self.up(h)))
        out = self.norm(x + self.dropout(h))
        # the gaps must stay zero, or the next block would leak across documents
        return out if keep is None else out * keep


class HashEncoder(nn.Module):
    """Hashed attribute embeddings + window encoder.

    n_rows (int): rows of the one embedding table shared by all attributes (each
        attribute's ids were already offset into its own slice of it).
    width (int): token vector width.
    window (int): tokens of context on each side per block.
    depth (int): number of :class:`WindowBlock` (0 = embeddings only).
    d_hidden (int): hidden width of the blocks' feed-forward.

    forward(hash_ids (N, C) long, packed_pos (N,) long, n_packed int) -> (N, width):
    each token's C ids (attributes x hashes) are summed; ``packed_pos`` places token
    rows in a (n_packed, width) sequence whose other rows are the zero gaps.
    """

    def __init__(
        self, n_rows: int, width: int, *, window: int = 1, depth: int = 2, d_hidden: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.width = width
        self.window = window
        self.embed = nn.EmbeddingBag(n_rows, width, mode="sum")
        nn.init.normal_(self.embed.weight, std=0.1)
        self.embed_norm = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(WindowBlock(width, window, d_hidden, dropout) for _ in range(depth))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hash_ids: Tensor, packed_pos: Tensor, n_packed: int) -> Tensor:
        x = self.dropout(self.embed_norm(self.embed(hash_ids)))
        if not len(self.blocks) or x.shape[0] == 0:
            return x
        packed = x.new_zeros(n_packed, self.width).index_copy_(0, packed_pos, x)
        keep = x.new_zeros(n_packed, 1).index_fill_(0, packed_pos, 1.0)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            packed = block(packed, None if i == last else keep)
        return packed.index_select(0, packed_pos)


class TransformerEncoder(nn.Module):
    """A Hugging Face encoder (``AutoModel``) whose word pieces are pooled onto tokens.

    hf_model (nn.Module): the loaded transformer; its output ``last_hidden_state``
        has width ``hidden_size``.
    hidden_size (int): the transformer's width.
    width (int): output width (a linear projection; the classifier's width).
    frozen (bool): keep the transformer's weights fixed and run it without autograd.
    cache (Optional[VectorCache]): per-document token vectors of the frozen
        transformer; None = always run it. Ignored when not frozen.
    lr_scale (float): the transformer's learning rate as a fraction of the
        optimizer's when it is trained (read by the thinc shim's update).

    forward(input_ids (S, L), attention_mask (S, L), piece_token (S, L) long, n_tokens
    int, doc_starts (D,), doc_lengths (D,), doc_keys Optional[List[str]], cached (D,)
    bool) -> (N, width).

    The S sequences are windows over the documents' word pieces (``PieceFeaturizer``);
    ``piece_token`` maps each piece to its spaCy token row, or to n_tokens ("none") for
    special pieces, padding, and pieces that another, overlapping window holds closer
    to its centre. A token's vector is the mean of its pieces' vectors; tokens without
    any piece (whitespace) get the projection of a zero vector. Documents flagged
    ``cached`` have no windows: their vectors come from the cache, and the vectors
    of the others go into it.
    """

    def __init__(self, hf_model: Any, hidden_size: int, width: int, *, frozen: bool = False,
                 cache: Optional[VectorCache] = None, lr_scale: float = 1.0) -> None:
        super().__init__()
        self.transformer = hf_model
        # on the transformer itself, so that the projection learns at the full rate
        self.transformer.lr_scale = lr_scale
        self.frozen = frozen
        self.hidden_size = hidden_size
        self.proj = nn.Linear(hidden_size, width)
        self.width = width
        self.cache = cache if frozen and cache is not None and cache.enabled else None
        if frozen:
            for p in self.transformer.parameters():
                p.requires_grad_(False)

    def token_vectors(self, input_ids: Tensor, attention_mask: Tensor, piece_token: Tensor, n_tokens: int) -> Tensor:
        """(N, hidden_size): the transformer's pooled output per token, before the projection."""
        if input_ids.shape[0] == 0:
            return self.proj.weight.new_zeros(n_tokens, self.hidden_size)
        if self.frozen:
            # eval: no dropout, so a frozen transformer is a fixed function of the text (cacheable)
            self.transformer.eval()
            with torch.no_grad():
                hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1])
        target = piece_token.reshape(-1)
        sums = flat.new_zeros(n_tokens + 1, flat.shape[1]).index_add(0, target, flat)
        counts = flat.new_zeros(n_tokens + 1).index_add(0, target, flat.new_ones(target.shape[0]))
        return sums[:n_tokens] / counts[:n_tokens].clamp_min(1.0).unsqueeze(1)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, piece_token: Tensor, n_tokens: int,
                doc_starts: Optional[Tensor] = None, doc_lengths: Optional[Tensor] = None,
                doc_keys: Optional[List[str]] = None, cached: Optional[Tensor] = None) -> Tensor:
        pooled = self.token_vectors(input_ids, attention_mask, piece_token, n_tokens)
        if self.cache is not None and doc_keys is not None and doc_starts is not None and doc_lengths is not None:
            pooled = self._through_cache(pooled, doc_starts.tolist(), doc_lengths.tolist(), doc_keys,
                                         cached.tolist() if cached is not None else [False] * len(doc_keys))
        return self.proj(pooled)

    def _through_cache(self, pooled: Tensor, starts: List[int], lengths: List[int], keys: List[str],
                       cached: List[bool]) -> Tensor:
        assert self.cache is not None
        # read every cached document before writing any: a write may evict
        found = {}
        for i, key in enumerate(keys):
            if cached[i]:
                value = self.cache.get(key, pooled.device)
                if value is None or value.shape != (lengths[i], self.hidden_size):
                    raise RuntimeError(f"token vectors of document {i} (key {key}) left the cache between "
                                       "featurizing and the forward pass; run them again")
                found[i] = value.to(pooled.dtype)
        for i, key in enumerate(keys):
            if not cached[i]:
                self.cache.put(key, pooled[starts[i]: starts[i] + lengths[i]])
        if found:
            pooled = pooled.clone()
            for i, value in found.items():
                pooled[starts[i]: starts[i] + lengths[i]] = value
        return pooled


__all__ = ["HashEncoder", "TransformerEncoder", "WindowBlock"]
