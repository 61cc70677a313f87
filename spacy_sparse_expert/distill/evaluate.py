"""Measuring teacher and student the same way: parameters, size on disk, CPU words per
second through the whole pipeline (tokenization included) and macro-F1.

words/s = whitespace-split words of the texts / seconds of the fastest of ``passes``
``nlp.pipe`` passes after one warm-up pass (as benchmarks/bbc.py measures).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from spacy.language import Language

from ..ml.architectures import torch_module
from .pipelines import dir_bytes


@dataclass
class ModelStats:
    """params: parameters of the torch classifier; disk_bytes: the pipeline folder;
    words_per_second: CPU throughput; macro_f1: on the evaluation texts (None without
    gold labels)."""

    params: int
    disk_bytes: Optional[int]
    words_per_second: Optional[float]
    macro_f1: Optional[float]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def macro_f1(scores: np.ndarray, gold: np.ndarray, *, exclusive: bool, threshold: float = 0.5,
             not_missing: Optional[np.ndarray] = None) -> float:
    """Mean F1 over labels. Exclusive: prediction = argmax of the scores; multilabel:
    score >= threshold per label (labels marked missing in ``not_missing`` ignored).
    scores, gold: (n_docs, n_labels)."""
    if len(scores) == 0:
        return 0.0
    if exclusive:
        pred = np.eye(scores.shape[1], dtype=bool)[scores.argmax(1)]
        truth = np.eye(gold.shape[1], dtype=bool)[gold.argmax(1)]
        mask = np.ones_like(pred)
    else:
        pred, truth = scores >= threshold, gold >= 0.5
        mask = np.ones_like(pred) if not_missing is None else not_missing > 0
    tp = (pred & truth & mask).sum(0)
    fp = (pred & ~truth & mask).sum(0)
    fn = (~pred & truth & mask).sum(0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1.mean())


def count_words(texts: Sequence[str]) -> int:
    return sum(len(text.split()) for text in texts)


def pipeline_scores(nlp: Language, name: str, texts: Sequence[str], passes: int = 3) -> tuple[np.ndarray, float]:
    """Scores (n_texts, n_labels) of component ``name`` on ``texts`` and the words/s of
    the fastest of ``passes`` timed passes after a warm-up pass."""
    labels = list(nlp.get_pipe(name).labels)

    def run() -> np.ndarray:
        docs = nlp.pipe(texts, batch_size=nlp.batch_size)
        return np.array([[doc.cats.get(label, 0.0) for label in labels] for doc in docs], dtype=np.float32)

    scores = run()
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return scores.reshape(len(texts), len(labels)), count_words(texts) / max(best, 1e-9)


def model_stats(nlp: Language, name: str, texts: Sequence[str], *, gold: Optional[np.ndarray] = None,
                path: Optional[Union[str, Path]] = None, passes: int = 3) -> ModelStats:
    """The four numbers of the distillation report for one pipeline."""
    pipe = nlp.get_pipe(name)
    params = sum(p.numel() for p in torch_module(pipe.model).parameters())
    wps, f1 = None, None
    if texts:
        scores, wps = pipeline_scores(nlp, name, texts, passes=passes)
        if gold is not None and len(gold):
            f1 = macro_f1(scores, gold, exclusive=pipe.cfg["exclusive"], threshold=pipe.cfg["threshold"])
    return ModelStats(params, dir_bytes(path) if path is not None else None, wps, f1)


def stats_table(rows: Dict[str, ModelStats]) -> List[List[str]]:
    """Printable rows: model, params, disk bytes, words/s, macro-F1."""
    out = [["model", "params", "disk bytes", "words/s (CPU)", "macro-F1"]]
    for key, s in rows.items():
        out.append([key, f"{s.params:,}", "-" if s.disk_bytes is None else f"{s.disk_bytes:,}",
                    "-" if s.words_per_second is None else f"{s.words_per_second:,.0f}",
                    "-" if s.macro_f1 is None else f"{s.macro_f1:.4f}"])
    return out


__all__ = ["ModelStats", "count_words", "macro_f1", "model_stats", "pipeline_scores", "stats_table"]
