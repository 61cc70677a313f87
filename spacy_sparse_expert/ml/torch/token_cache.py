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

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

Rows = Dict[str, Tensor]  # name -> (n, ...) one row per token


class TokenCache:
    """A direct-mapped cache: a token's digest picks one of ``slots`` slots (its low
    bits); a lookup is one gather and one comparison per token, with no sort or search.
    A token whose slot holds another token is computed and takes the slot over, as in a
    CPU cache; with the default 2**18 slots that is a few percent of a news test set's
    tokens. 0 slots turns the cache off. Memory: about 100 bytes per slot, allocated at
    the first use.

    The rows of a slot lie side by side in one table per dtype (float rows in one, the
    expert indices in another), so a lookup reads each token's rows with one gather per
    table, not one per row name; an empty slot ``s`` holds the key ``~s``, which no
    digest of that slot (whose low bits are ``s``) equals, so no flag is read either."""

    def __init__(self, slots: int = 1 << 18) -> None:
        if slots & (slots - 1) or slots == 1:
            # (one slot has no low bits to tell a digest from the empty slot's ~0)
            raise ValueError(f"token cache slots must be a power of 2 from 2 on (or 0), got {slots}")
        self.slots = slots
        self.keys: Optional[Tensor] = None  # (slots,) int64: the digest in each slot, ~slot when empty
        self.tables: Dict[torch.dtype, Tensor] = {}  # dtype -> (slots, columns)
        # row name -> (dtype, first column, end column, shape after the token dim)
        self.layout: Dict[str, Tuple[torch.dtype, int, int, Tuple[int, ...]]] = {}
        self._versions: Optional[Tuple[int, ...]] = None
        # tokens of the batches found in the cache / distinct tokens computed
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        self.keys, self.tables, self.layout, self._versions = None, {}, {}, None

    def __len__(self) -> int:
        if self.keys is None:
            return 0
        own = torch.arange(self.slots, device=self.keys.device)
        return int(((self.keys & (self.slots - 1)) == own).sum())

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
            out: Dict[torch.dtype, Tensor] = {}
        else:
            found = self.keys.index_select(0, slot) == keys
            # gathered before any slot is taken over below
            out = {dtype: table.index_select(0, slot) for dtype, table in self.tables.items()}
        n_found = int(found.sum())
        self.hits += n_found
        if n_found == keys.shape[0]:
            return self._split(out, keys.shape[0])
        where = torch.nonzero(~found).squeeze(1)
        unique, inverse = torch.unique(keys.index_select(0, where), return_inverse=True)
        # one occurrence of each missing digest
        first = torch.full_like(unique, keys.shape[0]).scatter_reduce_(0, inverse, where, "amin")
        self.misses += int(unique.shape[0])
        fresh = self._join(compute(first))
        for dtype, block in fresh.items():
            if dtype not in out:
                out[dtype] = block.new_zeros((keys.shape[0], block.shape[1]))
            out[dtype].index_copy_(0, where, block.index_select(0, inverse))
        self._store(unique, fresh)
        return self._split(out, keys.shape[0])

    def _join(self, rows: Rows) -> Dict[torch.dtype, Tensor]:
        """Rows by name -> one (m, columns) block per dtype (the layout is fixed by the
        first rows stored after a clear)."""
        if not self.layout:
            ends: Dict[torch.dtype, int] = {}
            for name, r in rows.items():
                start = ends.get(r.dtype, 0)
                ends[r.dtype] = start + math.prod(r.shape[1:])
                self.layout[name] = (r.dtype, start, ends[r.dtype], tuple(r.shape[1:]))
        parts: Dict[torch.dtype, List[Tensor]] = {}
        for name, (dtype, _, _, _) in self.layout.items():
            parts.setdefault(dtype, []).append(rows[name].reshape(rows[name].shape[0], -1))
        return {dtype: torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0] for dtype, blocks in parts.items()}

    def _split(self, blocks: Dict[torch.dtype, Tensor], n: int) -> Rows:
        """Blocks -> rows by name (views of the blocks' columns)."""
        return {name: blocks[dtype][:, start:end].reshape((n,) + shape)
                for name, (dtype, start, end, shape) in self.layout.items()}

    def _store(self, keys: Tensor, blocks: Dict[torch.dtype, Tensor]) -> None:
        """Store each new token in its slot; of new tokens that share a slot, the one
        with the largest digest keeps it (a deterministic choice)."""
        if self.keys is None:
            self.keys = ~torch.arange(self.slots, dtype=keys.dtype, device=keys.device)
            self.tables = {dtype: b.new_zeros((self.slots, b.shape[1])) for dtype, b in blocks.items()}
        slot = keys & (self.slots - 1)
        # keys are sorted (torch.unique): the last of each run of equal slots, after a
        # stable sort by slot, is the largest digest of that slot
        order = torch.argsort(slot, stable=True)
        slot, picked = slot[order], order
        last = torch.ones_like(slot, dtype=torch.bool)
        last[:-1] = slot[1:] != slot[:-1]
        slot, picked = slot[last], picked[last]
        self.keys[slot] = keys[picked]
        for dtype, b in blocks.items():
            self.tables[dtype][slot] = b.index_select(0, picked)


__all__ = ["Rows", "TokenCache"]
