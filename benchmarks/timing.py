"""Throughput of a prediction function, measured the same way by every benchmark: one
warm-up pass (its predictions are returned), then `passes` timed passes; best and median.

Two systems are only compared when measured in the same process, interleaved, with the
same thread settings; a words/s figure alone says little on a shared machine.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def count_words(texts: Sequence[str]) -> int:
    """Words = whitespace-split tokens, the same count for every system."""
    return sum(len(t.split()) for t in texts)


def throughput(predict: Callable[[list[str]], list[Any]], texts: list[str], passes: int = 3) -> dict[str, Any]:
    """RETURNS (dict): words_per_second_best, words_per_second_median, passes, and
    predictions (those of the warm-up pass)."""
    if passes < 1:
        raise ValueError(f"passes must be at least 1, got {passes}")
    predictions = predict(texts)
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        predict(texts)
        seconds.append(time.perf_counter() - start)
    words = count_words(texts)
    return {"words_per_second_best": words / min(seconds), "words_per_second_median": words / statistics.median(seconds),
            "passes": passes, "predictions": predictions}


__all__ = ["count_words", "throughput"]
