"""Per-token states of a context-free model, computed once per distinct token.

When the encoder sees each token alone (a :class:`~.encoder.HashEncoder` with no window
blocks), no token has knowledge inputs and the MoE has no capacity limit, everything the
classifier computes per token (its routing, its router logits and, with attention
pooling, its attention score and its two projections through the output layer) is a
function of the token's hashed ids only. In inference the classifier then computes
these once per distinct token and gathers them for every occurrence: the work per word
becomes a lookup, as in a bag-of-words model, while the scores stay those of the full
forward (to float rounding).

Tokens are keyed by a 64-bit digest of the attribute keys their hashed ids are made from
(``featurize.token_digests``), so a token found in the cache is never hashed (the
inputs carry ``featurize.LazyHashIds``); two different tokens share an entry only on a
64-bit collision. The cache has a fixed
number of slots (see :class:`TokenCache`) and is dropped whenever a parameter of the
model changes (torch's version counters: an optimizer step, ``load_state_dict``,
pruning or any in-place edit).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

Rows = Dict[str, Tensor]  # name -> (n, ...) one row per token


class TokenCache:
    """A direct-mapped cache: a token's digest picks one of ``slots`` slots (its low
    bits); a lookup is one gather and one comparison per token, with no sort or search.
    A token whose slot holds another token is computed and takes the slot over, as in a
    CPU cache; with the default 2**18 slots that is a few percent of a news test set's
    tokens. 0 slots turns the cache off. Memory: about 100 bytes per slot, allocated at
    the first use."""

    def __init__(self, slots: int = 1 << 18) -> None:
        if slots & (slots - 1):
            raise ValueError(f"token cache slots must be a power of 2 (or 0), got {slots}")
        self.slots = slots
        self.keys: Optional[Tensor] = None  # (slots,) int64 digest per slot
        self.filled: Optional[Tensor] = None  # (slots,) bool
        self.rows: Rows = {}
        self._versions: Optional[Tuple[int, ...]] = None
        # tokens of the batches found in the cache / distinct tokens computed
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self.keys, self.filled, self.rows, self._versions = None, None, {}, None

    def __len__(self) -> int:
        return 0 if self.filled is None else int(self.filled.sum())

    def gather(self, keys: Tensor, params: Sequence[Tensor], compute: Callable[[Tensor], Rows]) -> Rows:
        """The rows of the N tokens with these digests; ``compute(positions)`` gives
        the rows of the tokens at those positions, for digests not cached yet."""
        versions = tuple(p._version for p in params)
        if versions != self._versions:
            self.clear()
            self._versions = versions
        slot = keys & (self.slots - 1)
        if self.keys is None:
            found = torch.zeros_like(keys, dtype=torch.bool)
            out: Rows = {}
        else:
            assert self.filled is not None
            found = (self.keys.index_select(0, slot) == keys) & self.filled.index_select(0, slot)
            # gathered before any slot is taken over below
            out = {name: r.index_select(0, slot) for name, r in self.rows.items()}
        n_found = int(found.sum())
        self.hits += n_found
        if n_found == keys.shape[0]:
            return out
        where = torch.nonzero(~found).squeeze(1)
        unique, inverse = torch.unique(keys.index_select(0, where), return_inverse=True)
        # one occurrence of each missing digest
        first = torch.full_like(unique, keys.shape[0]).scatter_reduce_(0, inverse, where, "amin")
        self.misses += int(unique.shape[0])
        rows = compute(first)
        for name, r in rows.items():
            if name not in out:
                out[name] = r.new_zeros((keys.shape[0],) + tuple(r.shape[1:]))
            out[name].index_copy_(0, where, r.index_select(0, inverse))
        self._store(unique, rows)
        return out

    def _store(self, keys: Tensor, rows: Rows) -> None:
        """Store each new token in its slot; of new tokens that share a slot, the one
        with the largest digest keeps it (a deterministic choice)."""
        if self.keys is None:
            self.keys = keys.new_zeros(self.slots)
            self.filled = torch.zeros(self.slots, dtype=torch.bool, device=keys.device)
            self.rows = {name: r.new_zeros((self.slots,) + tuple(r.shape[1:])) for name, r in rows.items()}
        assert self.filled is not None
        slot = keys & (self.slots - 1)
        # keys are sorted (torch.unique): the last of each run of equal slots, after a
        # stable sort by slot, is the largest digest of that slot
        order = torch.argsort(slot, stable=True)
        slot, picked = slot[order], order
        last = torch.ones_like(slot, dtype=torch.bool)
        last[:-1] = slot[1:] != slot[:-1]
        slot, picked = slot[last], picked[last]
        self.keys[slot] = keys[picked]
        self.filled[slot] = True
        for name, r in rows.items():
            self.rows[name][slot] = r.index_select(0, picked)


__all__ = ["Rows", "TokenCache"]
