"""Docs -> the inputs of :class:`~.torch.classifier.MoEDocClassifier`: the one
builder used by the component's model (``architectures.py``) and by distillation.

``build_inputs`` gives numpy arrays (and two ints); ``to_torch`` moves them onto a
device. Shapes and featurizers come from the initialized ``MoETextCat`` model, so a
caller never restates a setting.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

import numpy as np
import torch
from spacy.tokens import Doc
from thinc.api import Model

from ..errors import Errors
from .featurize import featurize_batch

if TYPE_CHECKING:  # the features side is not imported at run time: ml/ sits below it
    from ..features.features import DocKnowledge


def build_inputs(model: Model, docs: Sequence[Doc], *, knowledge: Optional[Sequence["DocKnowledge"]] = None,
                 lazy_hash_ids: bool = False) -> Dict[str, Any]:
    """Numpy inputs of the torch classifier for ``docs``.

    model (Model): the initialized ``spacy-sparse-expert.MoETextCat.v1`` model.
    docs (Sequence[Doc]): the batch.
    knowledge (Optional[Sequence[DocKnowledge]]): per-doc knowledge features computed
        earlier, one per doc; None computes them with the model's knowledge featurizer
        (none without a KB or rules: the knowledge inputs are then empty).
    lazy_hash_ids (bool): hashed ids made only for the tokens the forward asks for
        (``featurize.LazyHashIds``): for inference from the token cache.
    RETURNS (Dict[str, Any]): keyword arguments of ``MoEDocClassifier.forward``.
    """
    if knowledge is None:
        featurizer = model.attrs["knowledge_featurizer"]
        knowledge = featurizer.pipe(docs) if featurizer is not None else []
    elif len(knowledge) != len(docs):
        raise ValueError(Errors.E160.format(n_knowledge=len(knowledge), n_docs=len(docs)))
    return featurize_batch(
        docs,
        model.attrs["token_featurizer"],
        knowledge,
        bow_rows=model.attrs["bow_rows"],
        ngram_size=model.attrs["ngram_size"],
        n_dense=model.attrs["n_dense"],
        n_experts=model.attrs["n_experts"],
        n_labels=model.get_dim("nO"),
        words_weight=float(model.attrs["settings"].get("knowledge_words", 0.0)),
        lazy_hash_ids=lazy_hash_ids,
    )


def to_torch(value: Any, device: torch.device) -> Any:
    """numpy arrays (also inside dicts) -> tensors on ``device``; other values as they are."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)).to(device)
    if isinstance(value, dict):
        return {k: to_torch(v, device) for k, v in value.items()}
    return value


__all__ = ["build_inputs", "to_torch"]
