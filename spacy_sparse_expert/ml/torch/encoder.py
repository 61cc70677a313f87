"""Token encoders: flat token ids in, flat token vectors (N, width) out.

Every encoder returns one row per spaCy token of the whole batch, in document order
(doc 0's tokens, then doc 1's, ...). Nothing downstream pads: the MoE, the knowledge
bag and the pooling all work on that flat layout.

* :class:`HashEncoder` - hashed embeddings of a few lexical attributes (NORM, PREFIX,
  SUFFIX, SHAPE) summed into one vector, then depthwise-separable window
  convolutions. The documents are packed into one sequence with ``window`` zero rows
  between them, so a convolution never mixes two documents and no padding is wasted.
* :class:`TransformerEncoder` - a Hugging Face encoder; word pieces are mean-pooled
  back onto the spaCy tokens.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:
        """x: (P, width); keep: (P, 1) 1.0 on token rows, 0.0 on the gaps."""
        h = self.depthwise(x.t().unsqueeze(0)).squeeze(0).t()
        h = self.down(F.gelu(self.up(h)))
        # the gaps must stay zero, or the next block would leak across documents
        return self.norm(x + self.dropout(h)) * keep


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
        packed = x.new_zeros(n_packed, self.width).index_copy(0, packed_pos, x)
        keep = x.new_zeros(n_packed, 1).index_fill(0, packed_pos, 1.0)
        for block in self.blocks:
            packed = block(packed, keep)
        return packed.index_select(0, packed_pos)


class TransformerEncoder(nn.Module):
    """A Hugging Face encoder (``AutoModel``) with word pieces pooled onto tokens.

    hf_model (nn.Module): the loaded transformer; its output ``last_hidden_state``
        has width ``hidden_size``.
    hidden_size (int): the transformer's width.
    width (int): output width (a linear projection; the classifier's width).
    frozen (bool): keep the transformer's weights fixed and run it without autograd.

    forward(input_ids (S, L), attention_mask (S, L), piece_token (S, L) long, n_tokens
    int) -> (N, width): ``piece_token`` maps each piece to its spaCy token row
    (n_tokens = "no token": special pieces, padding); tokens without any piece (e.g.
    whitespace) get the projection of a zero vector.
    """

    def __init__(self, hf_model: Any, hidden_size: int, width: int, *, frozen: bool = False) -> None:
        super().__init__()
        self.transformer = hf_model
        self.frozen = frozen
        self.proj = nn.Linear(hidden_size, width)
        self.width = width
        if frozen:
            for p in self.transformer.parameters():
                p.requires_grad_(False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, piece_token: Tensor, n_tokens: int) -> Tensor:
        if input_ids.shape[0] == 0:
            return self.proj.weight.new_zeros(n_tokens, self.width)
        if self.frozen:
            self.transformer.eval()
            with torch.no_grad():
                hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        flat = hidden.reshape(-1, hidden.shape[-1])
        target = piece_token.reshape(-1)
        sums = flat.new_zeros(n_tokens + 1, flat.shape[1]).index_add(0, target, flat)
        counts = flat.new_zeros(n_tokens + 1).index_add(0, target, flat.new_ones(target.shape[0]))
        pooled = sums[:n_tokens] / counts[:n_tokens].clamp_min(1.0).unsqueeze(1)
        return self.proj(pooled)


__all__ = ["HashEncoder", "TransformerEncoder", "WindowBlock"]
