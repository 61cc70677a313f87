"""Distillation data: documents with or without gold labels, their model inputs, and
what the teacher says about them.

Both pipelines read the same tokens: a ``.spacy`` file is read once per vocab, an
unlabelled JSONL file is tokenized by each pipeline's tokenizer. Model inputs come
from the component's own builder (``ml.inputs.build_inputs``); the knowledge features
(linking and rule matching, the costly part) are computed once per document and
handed to it every epoch. Gold arrays are the component's (``pipeline.gold``).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from thinc.api import Model

from ..errors import Errors, SparseExpertError
from ..jsonl import check_input_file, json_lines
from ..ml.architectures import torch_module
from ..ml.inputs import build_inputs, to_torch
from ..ml.torch.pruning import MoEImportance, measure_moe_importance
from ..pipeline.gold import GoldArrays
from ..pipeline.gold import gold_arrays as _gold_arrays

if TYPE_CHECKING:
    from ..features.features import DocKnowledge

_NOT_A_DOCBIN = (ValueError, KeyError, TypeError, IndexError, AttributeError, AssertionError, ZeroDivisionError,
                 OverflowError, zlib.error)


def check_docbin_file(path: Union[str, Path]) -> Path:
    """Refuse, without reading it whole, what cannot be a ``.spacy`` file: a path that is
    not a regular file (E042, E140, E141) or one that does not start with the zlib header
    every DocBin starts with (E143: JSONL given to --train, say)."""
    path = check_input_file(Path(path), Errors.E042.format(path=path), suffix=".spacy")
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError as err:
        raise SparseExpertError(Errors.E013.format(path=path, reason=err.strerror or err)) from None
    if len(head) < 2 or head[0] & 0x0F != 8 or (head[0] << 8 | head[1]) % 31:
        what = "it is empty" if not head else "it does not start with a zlib header" + (
            " (it looks like JSON)" if head[:1] in (b"{", b"[") else "")
        raise SparseExpertError(Errors.E143.format(path=path, reason=what))
    return path


def read_docbin(path: Union[str, Path], nlp: Language) -> List[Doc]:
    """The documents of a ``.spacy`` file, in the vocab of ``nlp``. A path that is not a
    regular file raises E042, E140 or E141; a file that is not a DocBin raises E143."""
    path = check_docbin_file(path)
    try:
        return list(DocBin().from_disk(path).get_docs(nlp.vocab))
    except OSError as err:
        raise SparseExpertError(Errors.E013.format(path=path, reason=err.strerror or err)) from None
    except _NOT_A_DOCBIN as err:  # what zlib, msgpack and DocBin raise on other or damaged bytes
        text = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        reason = text if isinstance(err, ValueError) and text else f"{type(err).__name__} {text}".strip()
        raise SparseExpertError(Errors.E143.format(path=path, reason=reason)) from None


def read_unlabelled(path: Union[str, Path]) -> List[str]:
    """Texts of a JSONL file, one ``{"text": ...}`` object a line (other keys ignored),
    read by the same line reader as rule files and ``data convert``."""
    texts: List[str] = []
    for lineno, record in json_lines(path, Errors.E074):
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str) or not text.strip():
            found = (f"found a JSON {_json_kind(record)}, not an object" if not isinstance(record, dict)
                     else "no \"text\" string" if not isinstance(text, str) else "the \"text\" is blank")
            raise SparseExpertError(Errors.E074.format(path=path, line=lineno, reason=found))
        texts.append(text)
    if not texts:
        raise SparseExpertError(Errors.E043.format(path=path))
    return texts


def _json_kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def crop_pairs(teacher_docs: Sequence[Doc], student_docs: Sequence[Doc], n_crops: int, *, seed: int = 0,
               low: float = 0.25, high: float = 0.75, min_tokens: int = 8) -> Tuple[List[Doc], List[Doc]]:
    """``n_crops`` random contiguous windows (``low``-``high`` of the tokens) of each
    document of at least ``min_tokens`` tokens, cut at the same tokens from the
    teacher's and the student's copy, without cats: a larger transfer set that only the
    teacher can label."""
    rng = np.random.default_rng(seed)
    t_out: List[Doc] = []
    s_out: List[Doc] = []
    for t_doc, s_doc in zip(teacher_docs, student_docs):
        n = len(s_doc)
        if n < min_tokens or len(t_doc) != n:
            continue
        for _ in range(n_crops):
            length = int(rng.integers(max(1, int(low * n)), max(2, int(high * n)) + 1))
            start = int(rng.integers(0, n - length + 1))
            for doc, out in ((t_doc, t_out), (s_doc, s_out)):
                crop = doc[start:start + length].as_doc()
                crop.cats = {}
                out.append(crop)
    return t_out, s_out


def gold_arrays(docs: Sequence[Doc], labels: Sequence[str], *, exclusive: bool, source: str = "") -> GoldArrays:
    """Gold labels of ``docs`` over ``labels`` (the component's arrays). A document
    without cats has no gold; a label the teacher does not know, or exclusive cats
    that are not exactly one label at 1.0, is an error (E075)."""
    known = set(labels)
    for i, doc in enumerate(docs):
        if not doc.cats:
            continue
        unknown = sorted(set(doc.cats) - known)
        if unknown:
            raise ValueError(Errors.E075.format(path=source or "<docs>", labels=", ".join(labels),
                                                reason=f"document {i} has label(s) {unknown}"))
        if exclusive and sum(float(doc.cats.get(label, 0.0)) for label in labels) != 1.0:
            raise ValueError(Errors.E075.format(path=source or "<docs>", labels=", ".join(labels),
                                                reason=f"document {i} has cats {doc.cats}, not exactly one label "
                                                       "at 1.0 (the teacher's labels are exclusive)"))
    return _gold_arrays(docs, labels, exclusive)


class Features:
    """Model inputs for the documents of one pipeline's component model.

    model (Model): the component's (initialized) model, for its featurizers and sizes.
    docs (Sequence[Doc]): the documents.
    """

    def __init__(self, model: Model, docs: Sequence[Doc], *, chunk: int = 256) -> None:
        self.model = model
        self.docs = list(docs)
        knowledge = model.attrs["knowledge_featurizer"]
        self.knowledge: Optional[List["DocKnowledge"]] = None
        if knowledge is not None:
            self.knowledge = []
            for start in range(0, len(self.docs), chunk):
                self.knowledge.extend(knowledge.pipe(self.docs[start:start + chunk]))

    def __len__(self) -> int:
        return len(self.docs)

    def rebind(self, model: Model, experts: Sequence[int]) -> "Features":
        """The same documents for a pruned model that kept ``experts`` (old ids): the
        cached knowledge keeps only those columns of the rules' expert bias."""
        new = Features.__new__(Features)
        new.model, new.docs = model, self.docs
        keep = np.asarray(list(experts), dtype=np.int64)
        new.knowledge = None if self.knowledge is None or model.attrs["knowledge_featurizer"] is None else [
            dk._replace(expert_bias=dk.expert_bias[:, keep]) for dk in self.knowledge]
        return new

    def batch(self, index: Sequence[int], device: Optional[torch.device] = None) -> Dict[str, Any]:
        """Keyword inputs of the classifier's forward for documents ``index``."""
        docs = [self.docs[i] for i in index]
        known = [self.knowledge[i] for i in index] if self.knowledge is not None else None
        return to_torch(build_inputs(self.model, docs, knowledge=known), device or torch.device("cpu"))

    def batches(self, batch_size: int, order: Optional[Sequence[int]] = None,
                device: Optional[torch.device] = None) -> Iterator[Tuple[List[int], Dict[str, Any]]]:
        order = list(range(len(self))) if order is None else list(order)
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            yield index, self.batch(index, device)


@dataclass
class TeacherView:
    """What the teacher says about the training documents.

    logits: (n_docs, n_labels) float64, the teacher's logits.
    router_logits: per document (n_tokens, E_teacher) float32 of its first MoE layer,
        or None when not asked for.
    importance: the teacher's expert / unit importance under its own routing.
    row_counts: (embedding rows,) hits of the hashed embedding rows (hashed encoders).
    """

    logits: np.ndarray
    router_logits: Optional[List[np.ndarray]]
    importance: Optional[MoEImportance]
    row_counts: Optional[torch.Tensor]


@torch.no_grad()
def teacher_view(model: Model, docs: Sequence[Doc], *, batch_size: int = 64,
                 with_router: bool = False, with_importance: bool = True) -> TeacherView:
    """One pass of the teacher (eval mode) over ``docs``: its logits, router logits and,
    measured on the same pass, its expert usage and hidden unit importance."""
    module = torch_module(model)
    was_training = module.training
    module.eval()
    device = next(module.parameters()).device
    features = Features(model, docs)
    batches = list(features.batches(batch_size, device=device))
    logits: List[np.ndarray] = []
    routers: List[np.ndarray] = []
    n_rows = getattr(getattr(module.encoder, "embed", None), "num_embeddings", 0)
    counts = torch.zeros(n_rows) if n_rows else None

    def record(i: int, out: Any) -> None:
        index, inputs = batches[i]
        logits.append(out.logits.double().cpu().numpy())
        if with_router:
            lengths = [len(features.docs[d]) for d in index]
            flat = out.router_logits[0].float().cpu().numpy() if out.router_logits else \
                np.zeros((sum(lengths), module.n_experts), dtype=np.float32)
            routers.extend(np.split(flat, np.cumsum(lengths)[:-1]))
        if counts is not None and "hash_ids" in inputs["enc"]:
            counts.add_(torch.bincount(inputs["enc"]["hash_ids"].reshape(-1).cpu(), minlength=n_rows).float())

    importance = None
    try:
        if with_importance and len(module.moe):
            importance = measure_moe_importance(module, (inputs for _, inputs in batches), on_output=record)
        else:
            for i, (_, inputs) in enumerate(batches):
                record(i, module(**inputs))
    finally:
        module.train(was_training)
    all_logits = np.concatenate(logits) if logits else np.zeros((0, model.get_dim("nO")))
    return TeacherView(all_logits, routers if with_router else None, importance, counts)


__all__ = ["Features", "GoldArrays", "TeacherView", "check_docbin_file", "crop_pairs", "gold_arrays", "read_docbin",
           "read_unlabelled", "teacher_view"]
