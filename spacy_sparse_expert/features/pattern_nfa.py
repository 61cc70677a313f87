"""Every bounded token pattern of a rule set as one stacked NFA over a batch's tokens.

Running the patterns one by one costs a few dozen numpy calls per pattern and token step,
whatever the batch size: on short texts (a headline per doc) that fixed cost was most of
rule matching. Here the states of all patterns are the rows of one boolean matrix (row
`base + j` of a pattern: "its steps before j are done", one column per live start
position), so a token step is the same dozen calls for any number of patterns.

Transitions of step j of a pattern (kinds as in bounded_patterns.py): ONE / OPTIONAL move
row j to row j + 1 where the token passes the step's test, NOT where it fails (inside the
doc), STAR keeps row j; an OPTIONAL or STAR step may also be skipped (epsilon closure).
Every accepted (pattern, start, length) is a match, as spaCy's Matcher reports it.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

ONE, OPTIONAL, STAR, NOT = 0, 1, 2, 3


class StackedNFA:
    """patterns: (key, step kinds, step test indices) of bounded patterns (no STAR needed,
    but allowed: the run stops after `max_steps` tokens)."""

    def __init__(self, patterns: Sequence[Tuple[int, np.ndarray, np.ndarray]]) -> None:
        adv_src: List[int] = []
        adv_spec: List[int] = []
        not_src: List[int] = []
        not_spec: List[int] = []
        star_src: List[int] = []
        star_spec: List[int] = []
        skips: List[int] = []
        firsts: List[int] = []
        finals: List[int] = []
        keys: List[int] = []
        self.max_steps = 0
        base = 0
        for key, kinds, specs in patterns:
            kind_l, spec_l = kinds.tolist(), specs.tolist()
            for j, (kind, spec) in enumerate(zip(kind_l, spec_l)):
                src, sp = (adv_src, adv_spec) if kind in (ONE, OPTIONAL) else (
                    (not_src, not_spec) if kind == NOT else (star_src, star_spec))
                src.append(base + j)
                sp.append(spec)
                if kind in (OPTIONAL, STAR):
                    skips.append(base + j)
            firsts.append(base)
            finals.append(base + len(kind_l))
            keys.append(key)
            self.max_steps = max(self.max_steps, sum(k != STAR for k in kind_l))
            base += len(kind_l) + 1
        self.n_rows = base

        def arr(x: List[int]) -> np.ndarray:
            return np.asarray(x, dtype=np.int64)

        self.adv_src, self.adv_spec = arr(adv_src), arr(adv_spec)
        self.not_src, self.not_spec = arr(not_src), arr(not_spec)
        self.star_src, self.star_spec = arr(star_src), arr(star_spec)
        self.firsts, self.finals = arr(firsts), arr(finals)
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.open_rows = np.setdiff1d(np.arange(base, dtype=np.int64), self.finals)
        # the closure of a run of skippable steps j, j+1, ... must go in order: in waves,
        # wave w holds the w-th step of every run (rows of one wave never feed each other)
        skip_set = set(skips)
        waves: List[List[int]] = []
        for r in skips:
            depth = 0
            while r - depth - 1 in skip_set:
                depth += 1
            while len(waves) <= depth:
                waves.append([])
            waves[depth].append(r)
        self.waves = [arr(w) for w in waves]

    def _close(self, state: np.ndarray) -> None:
        for rows in self.waves:
            state[rows + 1] |= state[rows]

    def run(self, passes: np.ndarray, left: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every match: RETURNS (key, start, length) arrays.

        passes (np.ndarray): bool (n_tests, N): token i passes test t.
        left (np.ndarray): int64 (N,): tokens from each position to the end of its doc.
        """
        width = passes.shape[1]
        pos = np.arange(width, dtype=np.int64)
        state = np.zeros((self.n_rows, width), dtype=np.bool_)
        state[self.firsts] = True
        self._close(state)
        key_l: List[np.ndarray] = []
        start_l: List[np.ndarray] = []
        len_l: List[np.ndarray] = []
        for k in range(self.max_steps):
            inside = left > k  # token start + k is in the start's doc
            # each test's value at token start + k: at the first step, before any start
            # is dropped, that is `passes` itself (no gather, every start inside its doc)
            first = k == 0 and pos.shape[0] == width
            tests = passes if first else passes[:, np.minimum(pos + k, width - 1)]
            nxt = np.zeros_like(state)
            if len(self.adv_src):
                nxt[self.adv_src + 1] = state[self.adv_src] & tests[self.adv_spec]
            if len(self.not_src):
                nxt[self.not_src + 1] = state[self.not_src] & ~tests[self.not_spec]
            if len(self.star_src):
                nxt[self.star_src] |= state[self.star_src] & tests[self.star_spec]
            if not first:
                nxt &= inside
            self._close(nxt)
            final = nxt[self.finals]  # (patterns, live starts), C-ordered
            # the same pairs, in the same order, as np.nonzero(final), which takes ~15x as
            # long on a 2-D bool array (numpy 2.4)
            hit = np.flatnonzero(final)
            if len(hit):
                pattern, col = hit // final.shape[1], hit % final.shape[1]
                key_l.append(self.keys[pattern])
                start_l.append(pos[col])
                len_l.append(np.full(len(col), k + 1, dtype=np.int64))
            live = nxt[self.open_rows].any(axis=0)
            if not live.any():
                break
            if 2 * int(live.sum()) < live.size:  # drop the dead starts
                nxt, pos, left = nxt[:, live], pos[live], left[live]
            state = nxt
        if not key_l:
            z = np.zeros(0, dtype=np.int64)
            return z.astype(np.uint64), z, z
        return np.concatenate(key_l), np.concatenate(start_l), np.concatenate(len_l)


__all__ = ["StackedNFA"]
