"""Gold-label arrays from ``doc.cats``: the one place they are built, for the
component's loss and for distillation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np
from spacy.tokens import Doc
from spacy.training import Example


@dataclass
class GoldArrays:
    """gold, not_missing: (n_docs, n_labels) float32; has_gold: (n_docs,) bool, False
    for a document without cats."""

    gold: np.ndarray
    not_missing: np.ndarray
    has_gold: np.ndarray


def gold_arrays(docs: Sequence[Union[Doc, Example]], labels: Sequence[str], exclusive: bool) -> GoldArrays:
    """Gold labels of ``docs`` (or of the examples' reference docs) over ``labels``.

    A label missing from a doc's cats counts as 0.0 for exclusive classes (one label
    names them all) and as unknown (not_missing 0.0) for independent labels. Cats
    not in ``labels`` are left out; callers that must refuse them check first.
    """
    index = {label: j for j, label in enumerate(labels)}
    gold = np.zeros((len(docs), len(labels)), dtype=np.float32)
    not_missing = np.ones_like(gold)
    has_gold = np.zeros(len(docs), dtype=bool)
    for i, item in enumerate(docs):
        cats = item.reference.cats if isinstance(item, Example) else item.cats
        has_gold[i] = bool(cats)
        for label, j in index.items():
            if label in cats:
                gold[i, j] = float(cats[label])
            elif not exclusive:
                not_missing[i, j] = 0.0
    return GoldArrays(gold, not_missing, has_gold)


__all__ = ["GoldArrays", "gold_arrays"]
