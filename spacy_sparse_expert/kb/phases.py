"""The steps of an RDF import, timed and reported as they start and end: parse,
entities, types, relations, graph features, aliases, alias index, entity arrays, write.
A long compile step then shows its name and, when done, its counts and seconds, instead
of a stalled triple count."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Phase:
    """One step of an import, reported to a ``phase`` callback when it starts (seconds
    None, no counts) and when it ends. The steps, in order: parse, entities, types,
    relations, graph features, aliases, then (``import_rdf`` only) alias index, entity
    arrays and write."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float | None = None


PhaseCallback = Callable[[Phase], None]


class PhaseClock:
    """Times the steps of an import and tells ``callback`` (if any) where it is, so a
    long compile step shows its name instead of a stalled triple count."""

    def __init__(self, callback: PhaseCallback | None = None) -> None:
        self.callback = callback
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._start = 0.0

    def start(self, name: str) -> None:
        self._name, self._start = name, time.perf_counter()
        if self.callback is not None:
            self.callback(Phase(name))

    def end(self, **counts: int) -> None:
        if self._name is None:
            raise RuntimeError("PhaseClock.end() was called without a start()")
        seconds = self.seconds[self._name] = round(time.perf_counter() - self._start, 4)
        if self.callback is not None:
            self.callback(Phase(self._name, counts, seconds))
        self._name = None


__all__ = ["Phase", "PhaseCallback", "PhaseClock"]
