"""The checks of a KB's tables and arrays (kb/knowledge_base.py): what costs nothing at
load (`check_structure`: sizes, dimensions, lengths, the ends of every CSR index array)
and, per group of arrays, the value checks that read every value (`CheckedArrays`: ids
in range, index arrays ascending, priors, flags, graph features), run on the group's
first use for a memory-mapped KB and at once for one built in memory. A failed value
check is the coded error naming the folder, file and field (E009 / E110).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Errors, KBFormatError
from . import kb_numbers, storage

if TYPE_CHECKING:  # pragma: no cover
    from .knowledge_base import KnowledgeBase

# The groups of arrays checked together, and the group of each array.
GROUPS = ("aliases", "types", "relations", "features")
GROUP_OF = {
    "alias_indptr": "aliases", "alias_entities": "aliases", "alias_priors": "aliases",
    "type_indptr": "types", "type_ids": "types", "type_direct": "types",
    "relation_indptr": "relations", "relation_predicates": "relations", "relation_objects": "relations",
    "graph_features": "features",
}


class BadArray(ValueError):
    """The values of array `array` do not fit the KB (a value check failed)."""

    def __init__(self, array: str, message: str) -> None:
        super().__init__(message)
        self.array = array


def csr_layout(kb: "KnowledgeBase") -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    """(index array, rows, the value arrays it indexes) of each CSR group."""
    return (("alias_indptr", kb.n_aliases, ("alias_entities", "alias_priors")),
            ("type_indptr", kb.n_entities, ("type_ids", "type_direct")),
            ("relation_indptr", kb.n_entities, ("relation_predicates", "relation_objects")))


def check_structure(kb: "KnowledgeBase", raw: Mapping[str, np.ndarray], *, check_tables: bool) -> None:
    """Raise ValueError unless `kb`'s tables and arrays `raw` fit together in what costs
    nothing to check: sizes, dimensions, lengths and both ends of every CSR index array."""
    if check_tables:
        for name in storage.TABLE_NAMES:
            if not all(isinstance(x, str) for x in getattr(kb, name)):
                raise ValueError(f"table {name!r} holds values that are not strings")
    elif not all(isinstance(x, str) for x in kb.feature_names):
        raise ValueError("table 'feature_names' holds values that are not strings")
    n_ent, a = kb.n_entities, raw
    for name, array in a.items():
        if array.ndim != (2 if name == "graph_features" else 1):
            raise ValueError(f"array {name!r} has {array.ndim} dimensions")
    pairs = (("labels", kb.labels, n_ent), ("type_labels", kb.type_labels, kb.n_types),
             ("alias_surfaces", kb.alias_surfaces, kb.n_aliases), ("descriptions", kb.descriptions, n_ent))
    for name, table, n in pairs:
        if len(table) != n:
            raise ValueError(f"table {name!r} has {len(table)} rows, expected {n}")
    for indptr_name, rows, values in csr_layout(kb):
        indptr, n_values = a[indptr_name], a[values[0]].shape[0]
        if (indptr.shape[0] != rows + 1 or indptr[0] != 0 or indptr[-1] != n_values
                or any(a[v].shape != (n_values,) for v in values)):
            raise ValueError(f"array {indptr_name!r} does not index {'/'.join(values)}")
    if a["graph_features"].shape != (n_ent, kb.n_features):
        raise ValueError(f"array 'graph_features' has shape {a['graph_features'].shape}, "
                         f"expected {(n_ent, kb.n_features)}")


def check_group(kb: "KnowledgeBase", raw: Mapping[str, np.ndarray], group: str, version: int) -> None:
    """Check the values of one group of arrays (O(size)): index arrays ascending, ids in
    range, then numbers (`kb_numbers`). Raises BadArray or kb_numbers.BadNumber."""
    a, file = raw, storage.data_file
    for indptr_name, _, values in csr_layout(kb):
        if GROUP_OF[indptr_name] == group and np.any(a[indptr_name][1:] < a[indptr_name][:-1]):
            raise BadArray(indptr_name, f"array {indptr_name!r} does not index {'/'.join(values)}")
    ids = (("alias_entities", kb.n_entities), ("type_ids", kb.n_types),
           ("relation_predicates", kb.n_predicates), ("relation_objects", kb.n_entities))
    for name, n in ids:
        if GROUP_OF[name] == group and a[name].size and (a[name].min() < 0 or a[name].max() >= n):
            raise BadArray(name, f"array {name!r} holds ids outside 0..{n - 1}")
    if group == "aliases":
        kb_numbers.check_priors(a["alias_priors"], a["alias_indptr"], file=file("alias_priors", version))
    elif group == "features":
        kb_numbers.check_graph_features(a["graph_features"], kb.feature_names, kb.n_entities,
                                        file=file("graph_features", version))
    elif group == "types":
        kb_numbers.check_flags(a["type_direct"], "type_direct", file=file("type_direct", version))


class CheckedArrays(Mapping[str, np.ndarray]):
    """A KB's arrays, each handed out after its group's value checks: run once, on the
    group's first access (lazy) or all now; a failure is the coded error naming `where`
    (the folder), the array's file and field."""

    def __init__(self, kb: "KnowledgeBase", raw: Mapping[str, np.ndarray], *, version: int,
                 where: Path | str, lazy: bool) -> None:
        self._kb, self._raw, self._version, self._where = kb, raw, version, where
        self._checked: set[str] = set()
        self._lock = threading.Lock()
        if not lazy:  # checked now, raising the plain ValueError of the checks (as made in memory)
            for group in GROUPS:
                check_group(kb, raw, group, version)
                self._checked.add(group)

    @property
    def checked(self) -> frozenset[str]:
        """The groups whose value checks have run."""
        return frozenset(self._checked)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._raw:
            raise KeyError(name)
        group = GROUP_OF[name]
        if group not in self._checked:
            with self._lock:
                if group not in self._checked:
                    try:
                        check_group(self._kb, self._raw, group, self._version)
                    except kb_numbers.BadNumber as err:
                        raise KBFormatError(Errors.E110.format(path=self._where, file=err.file,
                                                               field=repr(err.field), reason=err.reason)) from err
                    except BadArray as err:
                        where = storage.data_file(err.array, self._version)
                        raise KBFormatError(Errors.E009.format(path=self._where, reason=f"{where}: {err}")) from err
                    self._checked.add(group)
        return self._raw[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


__all__ = ["BadArray", "CheckedArrays", "GROUPS", "GROUP_OF", "check_group", "check_structure", "csr_layout"]
