"""Checks of every number a compiled KB reads from its files (arrays.npz, meta.json).

`KnowledgeBase` checks the structure (lengths, CSR index arrays, ids in range); this
module checks the values and types that structure cannot see, so that a damaged or
hand-edited KB fails when it is loaded instead of putting NaN into ``doc.cats``:

- dtypes: each array has exactly its declared kind and width (byte order aside). A
  float64 array is refused rather than cast, since the cast would silently turn 1e39
  into inf; int8 ids or a bool array in place of int32 mean the file is not ours.
- values: priors are finite, in [0, 1], highest first, summing to 1 per alias; graph
  features are finite and non-negative, counts are whole numbers of at most n_entities,
  PageRank is at most 1; ``type_direct`` holds only 0 and 1.
- meta.json ``counts``: whole numbers, equal to the sizes of the tables they describe
  (``kb info`` prints them).

Every failure is a `BadNumber` naming the file, the field and the offending value;
`KnowledgeBase` turns it into KBFormatError E110.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Priors are float32 quotients score / total: their per-alias sums are 1 within about
# 1e-6; 1e-3 leaves room for any float32 rounding and still catches a tampered prior.
PRIOR_SUM_TOLERANCE = 1e-3
# PageRank sums to 1 over all nodes, so no single value exceeds 1 (plus float32 rounding).
PAGERANK_MAX = 1.0 + 1e-3
COUNT_FEATURES = frozenset({"in_degree", "out_degree", "degree", "core_number"})


class BadNumber(ValueError):
    """A number read from a KB file is wrong.

    file (str): the file it came from, e.g. "arrays.npz", "meta.json".
    field (str): the array or key, e.g. "alias_priors", "counts.entities".
    reason (str): what is wrong, quoting the value and its position.
    """

    def __init__(self, file: str, field: str, reason: str) -> None:
        super().__init__(f"{file} field {field!r} {reason}")
        self.file, self.field, self.reason = file, field, reason


def check_dtypes(arrays: Mapping[str, Any], expected: Mapping[str, type], *, file: str) -> None:
    """Raise BadNumber unless each expected array is an ndarray of exactly its dtype
    (same kind and item size; either byte order). Missing arrays are left to the caller."""
    for name, want in expected.items():
        if name not in arrays:
            continue
        array = arrays[name]
        if not isinstance(array, np.ndarray):
            raise BadNumber(file, name, f"is a {type(array).__name__}, not a numeric array")
        have, want_dtype = array.dtype, np.dtype(want)
        if have.hasobject or have.kind != want_dtype.kind or have.itemsize != want_dtype.itemsize:
            raise BadNumber(file, name, f"has dtype {have.str} ({have}); a KB stores it as {want_dtype}")


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.ravel())[0])


def check_priors(priors: np.ndarray, indptr: np.ndarray, *, file: str) -> None:
    """Priors: finite, in [0, 1], non-increasing within each alias, each alias's summing to 1.

    priors (np.ndarray): float32 (n_alias_links,). indptr (np.ndarray): int64 (n_aliases + 1,),
    already checked to be a valid CSR index over `priors`.
    """
    if priors.size == 0:
        return
    bad = ~np.isfinite(priors) | (priors < 0) | (priors > 1)
    if bad.any():
        i = _first_bad(bad)
        raise BadNumber(file, "alias_priors", f"holds {float(priors[i]):.7g} at index {i}; priors are "
                        "probabilities in [0, 1]")
    counts = np.diff(indptr)
    alias_of = np.repeat(np.arange(counts.size), counts)
    rises = (np.diff(priors) > 0) & (alias_of[1:] == alias_of[:-1])
    if rises.any():
        i = _first_bad(rises) + 1
        raise BadNumber(file, "alias_priors", f"rises to {float(priors[i]):.7g} at index {i} (alias "
                        f"{int(alias_of[i])}); each alias's candidates are stored highest prior first")
    sums = np.bincount(alias_of, weights=priors.astype(np.float64), minlength=counts.size)
    off = (counts > 0) & (np.abs(sums - 1.0) > PRIOR_SUM_TOLERANCE)
    if off.any():
        a = _first_bad(off)
        raise BadNumber(file, "alias_priors", f"of alias {a} sum to {sums[a]:.6g}; each alias's priors "
                        f"sum to 1 (within {PRIOR_SUM_TOLERANCE})")


def check_graph_features(features: np.ndarray, names: list[str], n_entities: int, *, file: str) -> None:
    """Raw graph features (n_entities, n_features): finite and >= 0; counts are whole
    numbers <= n_entities; PageRank <= 1. Columns with other names need only be finite."""
    if features.size == 0:
        return
    finite = np.isfinite(features)
    if not finite.all():
        row, col = divmod(_first_bad(~finite), features.shape[1])
        raise BadNumber(file, "graph_features", f"holds {float(features[row, col]):.7g} at entity {row}, column "
                        f"{names[col]!r}; graph features are finite numbers")
    for j, name in enumerate(names):
        column = features[:, j].astype(np.float64)
        if name in COUNT_FEATURES:
            bad = (column < 0) | (column > n_entities) | (column != np.floor(column))
            rule = f"a count: a whole number in 0..{n_entities} (the number of entities)"
        elif name == "pagerank":
            bad = (column < 0) | (column > PAGERANK_MAX)
            rule = "a PageRank value in [0, 1]"
        else:
            continue
        if bad.any():
            row = _first_bad(bad)
            raise BadNumber(file, "graph_features", f"holds {float(features[row, j]):.7g} at entity {row}, column "
                            f"{name!r}; it must be {rule}")


def check_flags(flags: np.ndarray, name: str, *, file: str) -> None:
    """A bool array read raw from a file may hold bytes other than 0 and 1."""
    raw = flags.view(np.uint8)
    if raw.size and raw.max() > 1:
        i = _first_bad(raw > 1)
        raise BadNumber(file, name, f"holds byte {int(raw[i])} at index {i}; a boolean array holds 0 or 1")


def check_meta_counts(meta: Mapping[str, Any], sizes: Mapping[str, int], *, file: str) -> None:
    """meta.json `counts` (optional): non-negative whole numbers; those in `sizes` equal them."""
    counts = meta.get("counts")
    if counts is None:
        return
    if not isinstance(counts, Mapping):
        raise BadNumber(file, "counts", f"is {counts!r}; it must be an object of name -> count")
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadNumber(file, f"counts.{key}", f"is {value!r}; counts are non-negative whole numbers")
        if key in sizes and value != sizes[key]:
            raise BadNumber(file, f"counts.{key}", f"is {value}, but the KB's tables hold {sizes[key]}")
