"""Scorers of the text classifiers: spaCy's ``Scorer.score_cats`` on ``doc.cats``
(cats_score, cats_macro_f, cats_macro_auc, cats_f_per_type, ...), as spaCy's
textcat and textcat_multilabel score."""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable

from spacy.scorer import Scorer
from spacy.training import Example

from ..registry import registry


def textcat_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Exclusive classes: the predicted label is the argmax of doc.cats."""
    return Scorer.score_cats(examples, "cats", multi_label=False, **kwargs)


def textcat_multilabel_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    """Multi-label: a label is predicted when its score >= the component's threshold."""
    return Scorer.score_cats(examples, "cats", multi_label=True, **kwargs)


@registry.scorers("spacy-sparse-expert.textcat_scorer.v1")
def make_textcat_scorer() -> Callable[..., Dict[str, Any]]:
    return textcat_score


@registry.scorers("spacy-sparse-expert.textcat_multilabel_scorer.v1")
def make_textcat_multilabel_scorer() -> Callable[..., Dict[str, Any]]:
    return textcat_multilabel_score


__all__ = ["make_textcat_multilabel_scorer", "make_textcat_scorer", "textcat_multilabel_score", "textcat_score"]
