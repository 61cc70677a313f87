"""Uncertainty of accuracy figures: macro-F1 with a paired bootstrap over test documents.

One small module that every benchmark uses, so every interval in the README is made the
same way:

    from stats import macro_f1, bootstrap_interval, paired_difference, seed_summary

- ``bootstrap_interval(gold, pred)``: 95% percentile interval of macro-F1 over 1,000
  resamples of the test documents (with replacement).
- ``paired_difference(gold, pred_a, pred_b)``: the difference a - b of macro-F1 and its
  95% interval, both systems scored on the *same* resamples (paired), with the verdict
  "no measurable difference" where the interval contains zero.
- ``seed_summary(values)``: mean and sample standard deviation over seeds.
- ``median_interval(values)``: the median of repeated measurements (per-round speed
  ratios) and its 95% percentile interval over resamples of the rounds.

Resampling draws from ``numpy.random.default_rng(seed)``, so a figure is reproducible
from its results file. Macro-F1 is computed exactly as scikit-learn's
``f1_score(average="macro", labels=LABELS, zero_division=0)`` (a test checks this).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

N_RESAMPLES = 1000
CONFIDENCE = 0.95


def _indicators(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    g = np.array([index.get(x, -1) for x in gold])
    p = np.array([index.get(x, -1) for x in pred])
    if (g < 0).any():
        raise ValueError(f"gold label {gold[int(np.argmax(g < 0))]!r} is not one of {list(labels)}")
    # (n_docs, n_labels) one-hot; a prediction outside `labels` counts as wrong for every label
    return g[:, None] == np.arange(len(labels)), p[:, None] == np.arange(len(labels))


def _macro_f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Counts of shape (..., n_labels) -> macro-F1 of shape (...); F1 = 0 where undefined."""
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape, dtype=np.float64), where=denom > 0)
    return f1.mean(axis=-1)


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 over `labels` (a label absent from gold and pred scores 0)."""
    g, p = _indicators(gold, pred, labels)
    tp, fp, fn = (g & p).sum(0), (~g & p).sum(0), (g & ~p).sum(0)
    return float(_macro_f1_from_counts(tp, fp, fn))


def _resampled_f1(g: np.ndarray, p: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Macro-F1 of each resample. draws: (n_resamples, n_docs) document indices."""
    weights = np.zeros((draws.shape[0], g.shape[0]), dtype=np.int64)
    np.add.at(weights, (np.arange(draws.shape[0])[:, None], draws), 1)  # how often each doc is drawn
    tp = weights @ (g & p).astype(np.int64)
    fp = weights @ (~g & p).astype(np.int64)
    fn = weights @ (g & ~p).astype(np.int64)
    return _macro_f1_from_counts(tp, fp, fn)


def _draws(n_docs: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_docs, size=(n_resamples, n_docs))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


Predictions = Union[Sequence[str], Sequence[Sequence[str]]]


def _per_seed(pred: Predictions) -> list[Sequence[str]]:
    """One prediction list, or one per seed, as a list of lists."""
    if len(pred) and not isinstance(pred[0], str):
        return list(pred)  # type: ignore[arg-type]
    return [pred]  # type: ignore[list-item]


def _mean_f1(gold: Sequence[str], pred: Predictions, labels: Sequence[str], draws: np.ndarray | None) -> Any:
    """Macro-F1 averaged over seeds: a float, or (n_resamples,) over `draws`."""
    runs = _per_seed(pred)
    if draws is None:
        return sum(macro_f1(gold, p, labels) for p in runs) / len(runs)
    total = np.zeros(draws.shape[0])
    for p in runs:
        g, ind = _indicators(gold, p, labels)
        total += _resampled_f1(g, ind, draws)
    return total / len(runs)


def bootstrap_interval(gold: Sequence[str], pred: Predictions, labels: Sequence[str], *,
                       n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                       seed: int = 0) -> dict[str, Any]:
    """Macro-F1 and its percentile bootstrap interval over test documents. `pred` is one
    prediction list, or one per training seed (averaged inside each resample, so the
    interval is that of the seeds' mean).
    RETURNS (dict): macro_f1, low, high, n_resamples, confidence."""
    draws = _draws(len(gold), n_resamples, seed)
    low, high = _interval(_mean_f1(gold, pred, labels, draws), confidence)
    return {"macro_f1": _mean_f1(gold, pred, labels, None), "low": low, "high": high,
            "n_resamples": n_resamples, "confidence": confidence}


def paired_difference(gold: Sequence[str], pred_a: Predictions, pred_b: Predictions,
                      labels: Sequence[str], *, n_resamples: int = N_RESAMPLES,
                      confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """Macro-F1 of a minus that of b, with a paired bootstrap interval: both are scored on
    the same resampled documents, so the interval reflects only how they differ. Each
    side may be one prediction list or one per seed (mean over seeds).
    RETURNS (dict): difference, low, high, verdict ("a better", "b better" or
    "no measurable difference"), n_resamples, confidence."""
    draws = _draws(len(gold), n_resamples, seed)
    diffs = _mean_f1(gold, pred_a, labels, draws) - _mean_f1(gold, pred_b, labels, draws)
    low, high = _interval(diffs, confidence)
    verdict = "a better" if low > 0 else "b better" if high < 0 else "no measurable difference"
    return {"difference": _mean_f1(gold, pred_a, labels, None) - _mean_f1(gold, pred_b, labels, None),
            "low": low, "high": high, "verdict": verdict, "n_resamples": n_resamples, "confidence": confidence}


def seed_summary(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of per-seed scores."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values")
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0, "n": int(arr.size)}


def median_interval(values: Sequence[float], *, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                    seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): the median of `values` and its percentile-bootstrap interval."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values")
    medians = np.median(arr[_draws(arr.size, n_resamples, seed)], axis=1)
    return (float(np.median(arr)), *_interval(medians, confidence))


__all__ = ["macro_f1", "bootstrap_interval", "median_interval", "paired_difference", "seed_summary"]
