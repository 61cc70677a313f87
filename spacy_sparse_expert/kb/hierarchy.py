"""The class hierarchy: superclasses of a class through rdfs:subClassOf (or the
`--subclass-predicate`), transitively, cycles included, nearest first.

Only the closures the KB needs are computed, one breadth-first walk per class that some
entity is typed with, so time and memory follow the size of the answer. Building the
closure of every class instead (as a condensation of the whole class graph would) is
quadratic in the depth of the hierarchy: a subClassOf chain 3,000 deep took 700 MB that
way, and a deeper one would exhaust memory.

The closure of a deep hierarchy is long (a chain 3,000 deep gives its leaf 3,000 types),
and every type of a linked entity becomes a feature of every token of its mention: a
50,000-character document took 44 s and 2 GB that way. So the featurizer keeps only the
first `DEFAULT_MAX_TYPES_PER_ENTITY` types of an entity (`first_per_row`): the asserted
types, then the superclasses nearest first, the order the KB stores them in.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import Errors, SparseExpertError

# Types of one entity that become token features: asserted types and the nearest
# superclasses. 64 covers the depth of real ontologies (DBpedia ~7, YAGO/WordNet ~20)
# with room to spare, and bounds a token's type ids whatever the KB's depth.
DEFAULT_MAX_TYPES_PER_ENTITY = 64


def superclass_closure(
    sub: np.ndarray, sup: np.ndarray, classes: Iterable[int], *, max_superclasses: int | None = None
) -> dict[int, tuple[int, ...]]:
    """Strict superclasses of each class in `classes`, nearest first.

    sub, sup (np.ndarray): int node ids of the edges `sub[i] subClassOf sup[i]`.
    classes (Iterable[int]): the classes whose closure is wanted.
    max_superclasses (int | None): keep only this many, the nearest (the walk stops
        there, so a deep hierarchy costs O(classes * max_superclasses)); None keeps all.
    RETURNS (dict[int, tuple[int, ...]]): class -> every class reachable from it, in
        breadth-first order (by distance, then edge order). Inside a cycle every member is
        a superclass of every other member, never of itself.
    """
    if max_superclasses is not None and (
        isinstance(max_superclasses, bool) or not isinstance(max_superclasses, int) or max_superclasses < 0
    ):
        raise SparseExpertError(Errors.E122.format(value=max_superclasses))
    up: dict[int, list[int]] = {}
    for s, o in zip(sub.tolist(), sup.tolist()):
        up.setdefault(s, []).append(o)
    limit = max_superclasses
    closure: dict[int, tuple[int, ...]] = {}
    for start in dict.fromkeys(classes):  # first-seen order, so the walk order is stable
        seen: set[int] = {start}
        found: list[int] = []
        todo = deque(up.get(start, ()))
        while todo and (limit is None or len(found) < limit):
            node = todo.popleft()
            if node not in seen:
                seen.add(node)
                found.append(node)
                todo.extend(up.get(node, ()))
        closure[start] = tuple(found)
    return closure


def inferred_types(asserted: Sequence[int], closure: dict[int, tuple[int, ...]]) -> list[int]:
    """The superclasses of an entity's asserted classes that are not asserted themselves,
    nearest first: rank by rank over the classes' closures (so one deep class does not
    push the others' parents back), each once."""
    chains = [closure.get(c, ()) for c in asserted]
    skip = set(asserted)
    out: list[int] = []
    for rank in range(max((len(c) for c in chains), default=0)):
        for chain in chains:
            if rank < len(chain) and chain[rank] not in skip:
                skip.add(chain[rank])
                out.append(chain[rank])
    return out


def check_type_limit(limit: int) -> None:
    """Raise E121 unless `limit` (types kept per entity) is an int >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SparseExpertError(Errors.E121.format(value=limit))


def first_per_row(indptr: np.ndarray, values: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR matrix cut to its first `limit` values per row.

    indptr (np.ndarray): int (n_rows + 1,); values (np.ndarray): (nnz,).
    limit (int): most values kept per row (>= 1).
    RETURNS (tuple[np.ndarray, np.ndarray]): (indptr, values); the inputs if no row is longer.
    """
    check_type_limit(limit)
    indptr = np.asarray(indptr, dtype=np.int64)
    lengths = np.diff(indptr)
    if not len(lengths) or lengths.max() <= limit:
        return indptr, values
    counts = np.minimum(lengths, limit)
    out_indptr = np.zeros_like(indptr)
    np.cumsum(counts, out=out_indptr[1:])
    total = int(out_indptr[-1])
    # value j of row r sits at indptr[r] + j
    pos = np.repeat(indptr[:-1], counts) + (np.arange(total, dtype=np.int64) - np.repeat(out_indptr[:-1], counts))
    return out_indptr, values[pos]


__all__ = ["DEFAULT_MAX_TYPES_PER_ENTITY", "check_type_limit", "first_per_row", "inferred_types", "superclass_closure"]
