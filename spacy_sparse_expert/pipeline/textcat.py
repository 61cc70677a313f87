"""The ``sparse_expert_textcat`` and ``sparse_expert_textcat_multilabel`` components.

Like spaCy's textcat / textcat_multilabel: they fill ``doc.cats``. The model is a
knowledge-biased sparse MoE (``spacy-sparse-expert.MoETextCat.v1``); the KB and the
rules come in through ``initialize(kb_loader=..., rules_loader=...)`` (as spaCy's
entity_linker gets its KB) and are saved with the component (``serialize.py``). The
factories and default config are in ``factories.py``.
"""
# No `from __future__ import annotations`: spaCy validates initialize()'s settings
# with a pydantic model built from this signature, which needs real types.
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model

from ..errors import Errors, Warnings
from ..features.annotations import write_annotations
from ..features.features import KnowledgeFeaturizer
from ..features.label_prior import label_prior
from ..kb.knowledge_base import KnowledgeBase
from ..rules.rule_labels import warn_unknown_rule_labels
from ..rules.rules import RuleSet
from ..ml import architectures  # noqa: F401  (registers the model architectures)
from ..ml.architectures import fit_bow_idf, set_knowledge, set_label_prior, torch_module
from ..ml.output import aux_loss
from . import scorer as _scorer  # noqa: F401  (registers the scorers)
from . import serialize
from .gold import gold_arrays

if not Doc.has_extension("routing"):
    # list of (token_i, [experts], [weights]) of the first MoE layer, when store_routing
    Doc.set_extension("routing", default=None)


class SparseExpertTextCategorizer(TrainablePipe):
    """Text classification with a knowledge-biased sparse mixture of experts."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "sparse_expert_textcat",
        *,
        exclusive: bool = True,
        threshold: float = 0.5,
        use_knowledge: bool = True,
        store_routing: bool = False,
        load_balancing_weight: float = 0.01,
        z_loss_weight: float = 0.001,
        scorer: Optional[Callable] = None,
        max_batch_tokens: int = 100_000,
        check_knowledge: bool = True,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self._rehearsal_model = None
        self.scorer = scorer
        if isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens < 0:
            raise ValueError(Errors.E033.format(key="max_batch_tokens", value=max_batch_tokens,
                                                reason="use a whole number of tokens >= 0 (0 = no limit)"))
        self.max_batch_tokens = max_batch_tokens
        self.cfg: Dict[str, Any] = {
            "labels": [],
            "threshold": threshold,
            "exclusive": exclusive,
            "use_knowledge": use_knowledge,
            "store_routing": store_routing,
            "load_balancing_weight": load_balancing_weight,
            "z_loss_weight": z_loss_weight,
            "n_knowledge_ids": None,
            "n_dense": None,
            "check_knowledge": bool(check_knowledge),
            # the last dev-set check in training (see `score`): {"on": bool, "metric":
            # str, "with": float, "without": float}; None = never checked, knowledge on
            "knowledge_check": None,
        }
        self.kb: Optional[KnowledgeBase] = None
        self.rules: Optional[RuleSet] = None
        self.featurizer: Optional[KnowledgeFeaturizer] = None
        self._warned_drop = False
        # set by `update`: the next `score` (spaCy's evaluation on the dev set during
        # training) checks whether knowledge helps
        self._trained_since_check = False

    # --- labels ------------------------------------------------------------------------

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> List[str]:
        return list(self.labels)

    @property
    def store_routing(self) -> bool:
        return bool(self.cfg["store_routing"])

    @store_routing.setter
    def store_routing(self, value: bool) -> None:
        self.cfg["store_routing"] = bool(value)

    def add_label(self, label: str) -> int:
        if not isinstance(label, str):
            raise ValueError(Errors.E033.format(key="label", value=label, reason="labels are strings"))
        if label in self.labels:
            return 0
        self._allow_extra_label()
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    # --- knowledge ---------------------------------------------------------------------

    def set_knowledge(self, kb: Optional[KnowledgeBase], rules: Optional[RuleSet]) -> None:
        """Give the component its KB and rules (either may be None) and rebuild the
        knowledge featurizer. With use_knowledge=false both are dropped."""
        if not self.cfg["use_knowledge"]:
            kb, rules = None, None
        n_experts = self.model.attrs["n_experts"]
        if rules is not None and rules.max_expert >= n_experts:
            bad = next(r for r in rules if any(e >= n_experts for e in r.experts))
            raise ValueError(Errors.E031.format(index=max(bad.experts), rule=bad.id, n_experts=n_experts,
                                                max_index=n_experts - 1))
        self.kb, self.rules = kb, rules
        words = float(self.model.attrs["settings"].get("knowledge_words", 0.0)) > 0.0
        self.featurizer = KnowledgeFeaturizer(self.vocab, kb, rules, labels=self.labels, n_experts=n_experts,
                                              entity_words=words)
        set_knowledge(self.model, self.featurizer)

    # --- initialize / predict ----------------------------------------------------------

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Iterable[str]] = None,
        kb_loader: Optional[Callable[[Vocab], Optional[KnowledgeBase]]] = None,
        rules_loader: Optional[Callable[[Vocab], Optional[RuleSet]]] = None,
        label_descriptions: Optional[Dict[str, str]] = None,
    ) -> None:
        """Initialize for training: labels, knowledge, model weights.

        get_examples (Callable[[], Iterable[Example]]): training examples (labels are
            read from their cats unless `labels` is given).
        nlp (Language): the pipeline.
        labels (Optional[Iterable[str]]): the labels, e.g. from `init labels`.
        kb_loader (Optional[Callable[[Vocab], KnowledgeBase]]): e.g. spacy-sparse-expert.KBLoader.v1.
        rules_loader (Optional[Callable[[Vocab], RuleSet]]): e.g. spacy-sparse-expert.RulesLoader.v1.
        label_descriptions (Optional[Dict[str, str]]): words for some labels, matched with
            the label's name against the KB's type and predicate names when the model has
            label_prior > 0 (e.g. {"tech": "technology computer software internet"});
            used only here, never at inference.
        """
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        if self.cfg["exclusive"]:
            self._validate_categories(get_examples(), "of the examples given to initialize")
        if labels is None:
            for example in get_examples():
                for cat in example.y.cats:
                    self.add_label(cat)
        else:
            for label in labels:
                self.add_label(label)
        if not self.labels:
            raise ValueError(Errors.E030.format(name=self.name))
        kb = kb_loader(self.vocab) if kb_loader is not None else None
        rules = rules_loader(self.vocab) if rules_loader is not None else None
        if self.cfg["use_knowledge"] and kb is None and rules is None:
            # knowledge asked for and none given: it would train as a plain classifier
            warnings.warn(Warnings.W030.format(name=self.name), stacklevel=2)
        self.set_knowledge(kb, rules)
        # A rule label the model lacks ("Sport" for "sport") is dropped by the matcher, so
        # the rule fires and does nothing; say so once, here, where the labels are final.
        warn_unknown_rule_labels(self.rules, self.labels, component=self.name)
        self._init_model()
        fit_bow_idf(self.model, (eg.reference for eg in get_examples()))
        self._init_label_prior(label_descriptions)

    def _init_label_prior(self, descriptions: Optional[Dict[str, str]]) -> None:
        """Start the knowledge bag at the zero-shot label prior (model setting label_prior)."""
        if descriptions is not None:
            self._check_descriptions(descriptions)
        strength = float(self.model.attrs["settings"].get("label_prior", 0.0))
        if strength <= 0.0 or self.featurizer is None or self.featurizer.kb is None:
            return
        prior = label_prior(self.featurizer, self.labels, descriptions)
        set_label_prior(self.model, prior.matrix)
        unmatched = prior.unmatched()
        if unmatched:
            warnings.warn(Warnings.W080.format(name=self.name, strength=strength, labels=unmatched,
                                               example=unmatched[0]), stacklevel=3)

    def _check_descriptions(self, descriptions: Any) -> None:
        """label_descriptions: a mapping from this component's labels to non-empty strings (SSE-E291)."""
        def fail(reason: str) -> ValueError:
            return ValueError(Errors.E291.format(name=self.name, reason=reason, labels=list(self.labels),
                                                 example=self.labels[0]))
        if not isinstance(descriptions, dict):
            raise fail(f"it is a {type(descriptions).__name__}, not a mapping")
        for key, value in descriptions.items():
            if key not in self.labels:
                raise fail(f"{key!r} is not a label of the component")
            if not isinstance(value, str) or not value.strip():
                raise fail(f"the description of {key!r} is {value!r}, not a non-empty string")

    def _init_model(self) -> None:
        self.cfg["n_knowledge_ids"] = self.model.attrs["n_knowledge_ids"]
        self.cfg["n_dense"] = self.model.attrs["n_dense"]
        self.model.set_dim("nO", len(self.labels), force=True)
        self.model.initialize()

    # a batch of `nlp.pipe` is grown past its batch_size docs until it holds this many
    # tokens (see `pipe`); 0 = spaCy's batches of batch_size docs
    pipe_min_tokens: int = 4096

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Apply the component to a stream of docs, in order (spaCy's ``TrainablePipe.pipe``
        but for the batches). A batch holds at least ``batch_size`` docs and grows until it
        holds ``pipe_min_tokens`` tokens (at most ``max_batch_tokens`` per forward pass,
        see `predict`), so that a stream of headlines costs per word about what long
        documents do instead of paying the per-batch work for every 64 short texts.
        Batches of long documents are as before; a doc's scores depend on its batch only
        through float rounding (equal to 1e-6).

        stream (Iterable[Doc]): the docs.
        batch_size (int): docs per batch at least.
        YIELDS (Doc): the docs, annotated.
        """
        error_handler = self.get_error_handler()
        for docs in _word_batches(stream, batch_size, self.pipe_min_tokens):
            try:
                scores = self.predict(docs)
                self.set_annotations(docs, scores)
                yield from docs
            except Exception as e:
                error_handler(self.name, self, docs, e)

    def predict(self, docs: Iterable[Doc]) -> Dict[str, Any]:
        """Scores (n_docs, n_labels), the knowledge annotations (linked spans, rule hits)
        and, with store_routing, the routing of the batch. Writes nothing on the docs."""
        docs = list(docs)
        featurizer = self._check_initialized()
        torch_module(self.model).knowledge_on = self.knowledge_on
        parts = _token_batches(docs, self.max_batch_tokens)
        if len(parts) == 1:
            out = self.model.predict(docs)
            to_numpy = self.model.ops.to_numpy
            routing: Optional[Tuple[Any, ...]] = None
            if self.store_routing:
                routing = (to_numpy(out.expert_indices), to_numpy(out.expert_weights))
            # the model's forward featurized (and linked) these docs; reuse that work
            annotations = featurizer.annotations(docs)
            return {"scores": to_numpy(out.scores), "routing": routing, "annotations": annotations}
        outputs = [self.predict(part) for part in parts]
        routing = None
        if self.store_routing:
            routing = tuple(np.concatenate([out["routing"][i] for out in outputs]) for i in (0, 1))
        return {
            "scores": np.concatenate([out["scores"] for out in outputs]),
            "routing": routing,
            "annotations": [ann for out in outputs for ann in out["annotations"]],
        }

    def set_annotations(self, docs: Iterable[Doc], predictions: Dict[str, Any]) -> None:
        docs = list(docs)
        labels = self.labels
        # tolist() gives the Python floats float(scores[i, j]) gives, without a numpy
        # scalar per cell
        for doc, row in zip(docs, np.asarray(predictions["scores"]).tolist()):
            doc.cats.update(zip(labels, row))
        annotations = predictions.get("annotations")
        if annotations is not None:
            for doc, ann in zip(docs, annotations):
                write_annotations(doc, ann)
        routing = predictions.get("routing")
        if routing is None:
            return
        indices, weights = routing
        start = 0
        for doc in docs:
            end = start + len(doc)
            doc._.routing = [
                (i, experts, ws)
                for i, (experts, ws) in enumerate(zip(indices[start:end].tolist(), weights[start:end].tolist()))
            ]
            start = end

    # --- training ----------------------------------------------------------------------

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Any] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch: cross-entropy (or binary cross-entropy) on the labels plus
        the weighted MoE load-balancing and z losses.

        drop (float): not applied; the first value > 0 that differs from the model's
            ``dropout`` warns once (SSE-W031). The torch model has several dropouts with
            different jobs (the encoder's, the MoE's ``dropout``, ``path_dropout`` that
            trains the n-gram path alone), which one number cannot set, and `spacy train`
            passes ``[training] dropout`` on every call, so applying it would override
            the model's settings in every run. As in spacy-transformers, dropout is set
            in the model's config.
        """
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.update")
        self._check_initialized()
        model_dropout = self.model.attrs["settings"]["dropout"]
        if drop and drop != model_dropout and not self._warned_drop:
            self._warned_drop = True
            warnings.warn(Warnings.W031.format(name=self.name, drop=drop, dropout=model_dropout), stacklevel=2)
        if self.cfg["exclusive"]:
            self._validate_categories(examples, "of the batch given to update")
        if not examples:
            return losses
        out, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_scores = self.get_loss(examples, out.scores)
        aux, d_aux = aux_loss(out.aux_losses, self.aux_loss_weights)
        backprop((d_scores, d_aux))
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss + aux
        self._trained_since_check = True
        return losses

    # --- knowledge on or off, chosen on the dev set ------------------------------------

    @property
    def knowledge_on(self) -> bool:
        """Whether predictions use the knowledge inputs: true unless the last dev-set
        check in training found the model better without them (see `score`)."""
        check = self.cfg.get("knowledge_check")
        return True if not check else bool(check["on"])

    def score(self, examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
        """Score ``doc.cats`` (the component's scorer). In training (after `update`,
        with ``check_knowledge`` and a KB or rules), the examples are the dev set: the
        component first predicts them with its knowledge inputs and without them, keeps
        knowledge on only if that scores strictly higher on the main score
        (``cats_score``), records both scores in ``cfg["knowledge_check"]`` (saved with
        the pipeline) and scores the setting it kept. Training still uses knowledge; only
        predictions follow the check. A loaded pipeline never re-checks, so `spacy
        evaluate` on a test set cannot change it."""
        examples = list(examples)
        featurizer = self.featurizer
        if (self._trained_since_check and self.cfg.get("check_knowledge", True) and self.cfg["use_knowledge"]
                and featurizer is not None and (self.kb is not None or self.rules is not None) and examples):
            self._trained_since_check = False
            self._check_knowledge(examples, **kwargs)
        return super().score(examples, **kwargs)

    def _check_knowledge(self, examples: List[Example], **kwargs: Any) -> None:
        docs = [eg.predicted for eg in examples]
        scores: Dict[bool, float] = {}
        predictions: Dict[bool, Dict[str, Any]] = {}
        previous = self.cfg.get("knowledge_check")
        for on in (True, False):
            self.cfg["knowledge_check"] = {"on": on}
            predictions[on] = self.predict(docs)
            self.set_annotations(docs, predictions[on])
            value = super().score(examples, **kwargs).get("cats_score")
            if value is None:  # nothing to score (no gold cats): leave the setting as it was
                self.cfg["knowledge_check"] = previous
                self.set_annotations(docs, self.predict(docs))
                return
            scores[on] = round(float(value), 6)  # as the saved cfg (JSON) keeps it
        on = scores[True] > scores[False]
        self.cfg["knowledge_check"] = {"on": on, "metric": "cats_score", "with": scores[True],
                                       "without": scores[False]}
        self.set_annotations(docs, predictions[on])

    @property
    def aux_loss_weights(self) -> Tuple[float, float]:
        """(load_balancing_weight, z_loss_weight) of the MoE auxiliary losses."""
        return float(self.cfg["load_balancing_weight"]), float(self.cfg["z_loss_weight"])

    def get_loss(self, examples: Iterable[Example], scores: Any) -> Tuple[float, Any]:
        """Cross-entropy (exclusive) or binary cross-entropy (multilabel), averaged
        over documents. The gradient is w.r.t. the logits: (scores - truths) / n."""
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.get_loss")
        gold = gold_arrays(examples, self.labels, self.cfg["exclusive"])
        xp = self.model.ops.xp
        truths = xp.asarray(gold.gold)
        not_missing = xp.asarray(gold.not_missing)
        n = max(len(examples), 1)
        eps = 1e-7
        if self.cfg["exclusive"]:
            loss = -(truths * xp.log(scores + eps) * not_missing).sum()
        else:
            loss = -((truths * xp.log(scores + eps) + (1 - truths) * xp.log(1 - scores + eps)) * not_missing).sum()
        d_scores = (scores - truths) * not_missing / n
        return float(loss) / n, d_scores

    def _check_initialized(self) -> KnowledgeFeaturizer:
        """The featurizer that initialize built; raises E233/E030 before initialize."""
        if self.featurizer is None:
            # labels without a model (add_label, no initialize) is a different mistake from no labels
            if self.labels:
                raise ValueError(Errors.E233.format(name=self.name, labels=list(self.labels)))
            raise ValueError(Errors.E030.format(name=self.name))
        return self.featurizer

    def _validate_categories(self, examples: Iterable[Example], where: str) -> None:
        """A data error, naming the example (its index in `examples`, `where` they come
        from, and its text), for cats that exclusive classes cannot learn from."""
        for i, eg in enumerate(examples):
            values = list(eg.reference.cats.values())
            if values.count(1.0) > 1 or any(v not in (0.0, 1.0) for v in values):
                text = eg.reference.text
                raise ValueError(Errors.E234.format(
                    index=i, where=where, text=text if len(text) <= 80 else text[:77] + "...",
                    cats=eg.reference.cats, name=self.name))

    def add_to_rehearsal(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover
        raise NotImplementedError("rehearse is not supported by this component")

    # --- serialization (serialize.py) ---------------------------------------------------

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return serialize.to_bytes(self, exclude=exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "SparseExpertTextCategorizer":
        serialize.from_bytes(self, bytes_data, exclude=exclude)
        self._trained_since_check = False
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serialize.to_disk(self, path, exclude=exclude)

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "SparseExpertTextCategorizer":
        serialize.from_disk(self, path, exclude=exclude)
        self._trained_since_check = False
        return self


def _word_batches(stream: Iterable[Doc], min_docs: int, min_tokens: int) -> Iterator[List[Doc]]:
    """`stream` in order, in batches of at least `min_docs` docs (>= 1) that end at the
    first doc that brings them to `min_tokens` tokens; the last batch may be smaller."""
    min_docs = max(int(min_docs), 1)
    batch: List[Doc] = []
    size = 0
    for doc in stream:
        batch.append(doc)
        size += len(doc)
        if len(batch) >= min_docs and size >= min_tokens:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _token_batches(docs: List[Doc], max_tokens: int) -> List[List[Doc]]:
    """`docs` in order, cut into runs of at most `max_tokens` tokens (one run if 0)."""
    if not max_tokens or sum(len(doc) for doc in docs) <= max_tokens:
        return [docs]
    parts: List[List[Doc]] = [[]]
    size = 0
    for doc in docs:
        if parts[-1] and size + len(doc) > max_tokens:
            parts.append([])
            size = 0
        parts[-1].append(doc)
        size += len(doc)
    return parts


__all__ = ["SparseExpertTextCategorizer"]
