"""The class hierarchy: superclasses of a class through rdfs:subClassOf (or the
`--subclass-predicate`), transitively, cycles included.

Only the closures the KB needs are computed, one walk per class that some entity is
typed with, so time and memory follow the size of the answer. Building the closure of
every class instead (as a condensation of the whole class graph would) is quadratic in
the depth of the hierarchy: a subClassOf chain 3,000 deep took 700 MB that way, and a
deeper one would exhaust memory.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def superclass_closure(sub: np.ndarray, sup: np.ndarray, classes: Iterable[int]) -> dict[int, frozenset[int]]:
    """Strict superclasses of each class in `classes`.

    sub, sup (np.ndarray): int node ids of the edges `sub[i] subClassOf sup[i]`.
    classes (Iterable[int]): the classes whose closure is wanted.
    RETURNS (dict[int, frozenset[int]]): class -> every class reachable from it. Inside a
        cycle every member is a superclass of every other member, never of itself.
    """
    up: dict[int, list[int]] = {}
    for s, o in zip(sub.tolist(), sup.tolist()):
        up.setdefault(s, []).append(o)
    closure: dict[int, frozenset[int]] = {}
    for start in set(classes):
        seen: set[int] = set()
        todo = list(up.get(start, ()))
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(up.get(node, ()))
        seen.discard(start)
        closure[start] = frozenset(seen)
    return closure


__all__ = ["superclass_closure"]
