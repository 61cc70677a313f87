"""Registered model builders. They only compose: Docs -> numpy features
(``featurize.py``) -> the wrapped torch classifier (``wrapper.py``,
``torch/classifier.py``).

The torch module is built in the model's ``init``: its shapes depend on the labels
and on the knowledge id space, known only once the component has its KB and rules.
The component puts these into ``model.attrs`` and sets ``nO`` before initializing.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

import torch
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats2d
from torch import nn

from ..errors import Errors
from ..registry import encoders, registry
from .featurize import HashFeaturizer, PieceFeaturizer, bow_doc_freq, featurize_batch
from .torch.classifier import MoEDocClassifier
from .torch.encoder import HashEncoder, TransformerEncoder
from .wrapper import TorchClassifier, get_torch_module, set_torch_module


@dataclass
class EncoderSpec:
    """A token encoder: ``featurize(docs)`` gives its numpy inputs, ``build()`` the
    torch module that turns them into (N, width) token vectors."""

    name: str
    width: int
    featurize: Callable[[Sequence[Doc]], Dict[str, Any]]
    build: Callable[[], nn.Module]


@registry.architectures("spacy-sparse-expert.HashEncoder.v1")
@encoders("spacy-sparse-expert.HashEncoder.v1")
def build_hash_encoder_v1(
    *,
    width: int = 64,
    attrs: Sequence[str] = ("NORM", "PREFIX", "SUFFIX", "SHAPE"),
    rows: Sequence[int] = (5000, 2500, 2500, 2500),
    n_hashes: int = 2,
    window_size: int = 1,
    depth: int = 2,
    d_hidden: int = 128,
    dropout: float = 0.1,
) -> EncoderSpec:
    """Hashed embeddings of token attributes + depthwise-separable window encoder.

    width (int): token vector width.
    attrs (Sequence[str]): spaCy token attributes to embed.
    rows (Sequence[int]): embedding rows per attribute.
    n_hashes (int): hashes per attribute value (rows summed).
    window_size (int): context tokens on each side per block.
    depth (int): number of window blocks.
    d_hidden (int): feed-forward width inside the blocks.
    dropout (float).
    """
    featurizer = HashFeaturizer(list(attrs), list(rows), n_hashes=n_hashes, window=window_size)
    return EncoderSpec(
        "hash",
        width,
        featurizer,
        lambda: HashEncoder(featurizer.n_rows, width, window=window_size, depth=depth, d_hidden=d_hidden,
                            dropout=dropout),
    )


@registry.architectures("spacy-sparse-expert.TransformerEncoder.v1")
@encoders("spacy-sparse-expert.TransformerEncoder.v1")
def build_transformer_encoder_v1(
    *,
    path: str,
    width: int = 64,
    frozen: bool = True,
    chunk: int = 128,
    max_length: int = 256,
) -> EncoderSpec:
    """A Hugging Face encoder read from the local directory ``path`` (no download).

    path (str): directory with the model's config, weights and tokenizer.
    width (int): projection width of the token vectors.
    frozen (bool): do not train the transformer's weights.
    chunk (int): spaCy tokens per transformer sequence.
    max_length (int): word pieces per sequence.
    """
    try:
        import transformers
    except ImportError as err:
        raise ImportError(Errors.E034.format(
            path=path, reason="the package 'transformers' is not installed; pip install "
                              "'spacy-sparse-expert[transformers]'")) from err
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        hf_config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(Errors.E034.format(path=path, reason=err)) from err
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(Errors.E034.format(path=path, reason="it has no fast tokenizer (word_ids needed)"))

    def build() -> nn.Module:
        hf_model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        return TransformerEncoder(hf_model, hf_config.hidden_size, width, frozen=frozen)

    return EncoderSpec("transformer", width, PieceFeaturizer(tokenizer, chunk=chunk, max_length=max_length), build)


@registry.architectures("spacy-sparse-expert.MoETextCat.v1")
def build_moe_textcat_v1(
    *,
    encoder: EncoderSpec,
    exclusive_classes: bool = True,
    n_experts: int = 4,
    k: int = 2,
    d_ff: int = 128,
    capacity_factor: Optional[float] = None,
    n_moe_layers: int = 1,
    d_knowledge: int = 16,
    pooling: str = "attention",
    bow_rows: int = 262144,
    ngram_size: int = 2,
    bow_scale: float = 1.0,
    path_dropout: float = 0.0,
    knowledge_bow: bool = False,
    dropout: float = 0.1,
    nO: Optional[int] = None,
) -> Model[List[Doc], Floats2d]:
    """Knowledge-biased sparse MoE text classifier: Docs -> (n_docs, n_labels) scores.

    encoder (EncoderSpec): token encoder (spacy-sparse-expert.HashEncoder.v1, ...).
    exclusive_classes (bool): softmax (one label per doc) or independent sigmoids.
    n_experts (int), k (int), d_ff (int): MoE size; k experts per token.
    capacity_factor (Optional[float]): per-expert capacity; null = dropless.
    n_moe_layers (int): stacked MoE blocks.
    d_knowledge (int): width of the per-token knowledge id embedding.
    pooling (str): "attention" or "mean_max".
    bow_rows (int): hashed bag-of-n-grams rows for the linear path (0 = off).
    ngram_size (int): longest n-gram of that path.
    bow_scale (float): the linear path's weights are stored divided by this, so under
        Adam they learn bow_scale times faster than the rest of the model (a sparse
        TF-IDF linear model wants a ~10x higher learning rate than the encoder).
    path_dropout (float): training-time probability of dropping a document's MoE and
        rule logits so the linear path alone must classify it (0 = off).
    knowledge_bow (bool): add a linear path over each document's bag of knowledge ids
        (entity types, relation predicates, rule hits); empty without knowledge.
    dropout (float).
    nO (Optional[int]): number of labels; set by the component.
    """
    for key, value, ok, reason in [
        ("k", k, 1 <= k <= n_experts, f"need 1 <= k <= n_experts ({n_experts})"),
        ("pooling", pooling, pooling in ("attention", "mean_max"), "use 'attention' or 'mean_max'"),
        ("capacity_factor", capacity_factor, capacity_factor is None or capacity_factor > 0,
         "use a positive number, or null for dropless"),
        ("ngram_size", ngram_size, ngram_size >= 1, "use 1 or more"),
        ("bow_scale", bow_scale, bow_scale > 0, "use a positive number"),
        ("path_dropout", path_dropout, 0.0 <= path_dropout < 1.0, "use a probability in [0, 1)"),
    ]:
        if not ok:
            raise ValueError(Errors.E033.format(key=key, value=value, reason=reason))

    def build(model: Model) -> nn.Module:
        return MoEDocClassifier(
            encoder.build(),
            width=encoder.width,
            n_labels=model.get_dim("nO"),
            n_experts=n_experts,
            k=k,
            d_ff=d_ff,
            capacity_factor=capacity_factor,
            n_moe_layers=n_moe_layers,
            n_knowledge_ids=model.attrs["n_knowledge_ids"],
            d_knowledge=d_knowledge,
            n_dense=model.attrs["n_dense"],
            pooling=pooling,
            bow_rows=bow_rows,
            bow_scale=bow_scale,
            path_dropout=path_dropout,
            knowledge_bow=knowledge_bow,
            exclusive=exclusive_classes,
            dropout=dropout,
        )

    return Model(
        "moe_textcat",
        _forward,
        init=_init,
        layers=[TorchClassifier()],
        dims={"nO": nO},
        attrs={
            "build": build,
            "token_featurizer": encoder.featurize,
            "knowledge_featurizer": None,
            "n_knowledge_ids": 1,
            "n_dense": 0,
            "n_experts": n_experts,
            "bow_rows": bow_rows,
            "ngram_size": ngram_size,
            "exclusive_classes": exclusive_classes,
        },
    )


def _init(model: Model, X: Optional[List[Doc]] = None, Y: Optional[Any] = None) -> None:
    if model.get_dim("nO") is None:
        raise ValueError(Errors.E033.format(key="nO", value=None, reason="the label count must be set first"))
    set_torch_module(model.layers[0], model.attrs["build"](model))


def _forward(model: Model, docs: List[Doc], is_train: bool):
    inputs = featurize_batch(
        docs,
        model.attrs["token_featurizer"],
        model.attrs["knowledge_featurizer"],
        bow_rows=model.attrs["bow_rows"],
        ngram_size=model.attrs["ngram_size"],
        n_dense=model.attrs["n_dense"],
        n_experts=model.attrs["n_experts"],
        n_labels=model.get_dim("nO"),
    )
    torch_layer = model.layers[0]
    if not is_train:
        with torch.inference_mode():
            scores, _ = torch_layer(inputs, False)
        return scores, lambda d_scores: []
    scores, backprop_torch = torch_layer(inputs, True)

    def backprop(d_scores: Floats2d) -> List[Doc]:
        backprop_torch(d_scores)
        return []

    return scores, backprop


def fit_bow_idf(model: Model, docs: Iterable[Doc], batch_size: int = 256) -> None:
    """Set the n-gram path's idf from the (training) docs of an initialized model."""
    rows, n = model.attrs["bow_rows"], 0
    if rows <= 0:
        return
    doc_freq = np.zeros(rows, dtype=np.float32)
    batch: List[Doc] = []
    for doc in itertools.chain(docs, [None]):
        if doc is not None:
            batch.append(doc)
        if batch and (doc is None or len(batch) >= batch_size):
            doc_freq += bow_doc_freq(batch, rows, ngram_size=model.attrs["ngram_size"])
            n += len(batch)
            batch = []
    torch_module(model).set_bow_idf(torch.from_numpy(doc_freq), n)


def torch_module(model: Model) -> nn.Module:
    """The :class:`MoEDocClassifier` inside an initialized model."""
    return get_torch_module(model.layers[0])


__all__ = ["EncoderSpec", "build_hash_encoder_v1", "fit_bow_idf", "build_moe_textcat_v1", "build_transformer_encoder_v1",
           "torch_module"]
