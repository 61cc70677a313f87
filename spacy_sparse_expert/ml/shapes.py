"""The classifier's tensor shapes from its settings, without allocating it.

Two uses: the parameter budget (``settings.check_budget``) and naming the setting
behind a weights file that does not fit. For the second, the classifier is built
on the meta device once per setting with that setting nudged (width + 1, depth - 1,
knowledge_bow flipped, ...); the tensor dimensions and tensor names that move are
the ones the setting decides. A file whose differences are exactly those of some
settings was saved with other settings (SSE-E119); any other difference is damage.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterator, Optional, Set, Tuple

import torch
from torch import nn

from .settings import LIMITS, meta_shapes
from .torch.classifier import MoEDocClassifier
from .torch.pooling import POOLINGS
from .weights import Mismatch

Shapes = Dict[str, Tuple[torch.dtype, Tuple[int, ...]]]


@dataclass(frozen=True)
class ClassifierParts:
    """Everything the classifier's shapes depend on. encoder: an ``EncoderSpec``;
    settings: the checked MoETextCat settings; the rest comes from the component."""

    encoder: Any
    settings: Dict[str, Any]
    n_labels: int
    n_knowledge_ids: int
    n_dense: int


def build_classifier(encoder: nn.Module, parts: ClassifierParts) -> MoEDocClassifier:
    s = parts.settings
    return MoEDocClassifier(
        encoder, width=parts.encoder.width, n_labels=parts.n_labels, n_experts=s["n_experts"], k=s["k"],
        d_ff=s["d_ff"], capacity_factor=s["capacity_factor"], n_moe_layers=s["n_moe_layers"],
        n_knowledge_ids=parts.n_knowledge_ids, d_knowledge=s["d_knowledge"], n_dense=parts.n_dense,
        pooling=s["pooling"], bow_rows=s["bow_rows"], bow_scale=s["bow_scale"], path_dropout=s["path_dropout"],
        knowledge_bow=s["knowledge_bow"], knowledge_gate=s.get("knowledge_gate", False),
        knowledge_dropout=s.get("knowledge_dropout", 0.0), exclusive=s["exclusive_classes"], dropout=s["dropout"])


def meta_classifier_shapes(parts: ClassifierParts) -> Shapes:
    """The state dict's shapes; an encoder that reads files to build (a transformer)
    is left out: its size is that of the model on disk."""
    meta_ok = parts.encoder.rebuild is not None
    return meta_shapes(lambda: build_classifier(parts.encoder.build() if meta_ok else nn.Identity(), parts))


def _pattern(name: str) -> str:
    """'moe.1.router.gate.weight' -> 'moe.#.router.gate.weight': layer copies alike."""
    return re.sub(r"(?<=\.)\d+(?=\.)", "#", name)


def _variants(parts: ClassifierParts) -> Iterator[Tuple[str, ClassifierParts]]:
    """(setting as the config has it, parts with that setting nudged)."""
    s = parts.settings
    for key in ("n_experts", "d_ff", "n_moe_layers", "d_knowledge", "bow_rows"):
        value = s[key]
        for alt in {value + 1, value - 1, 0}:
            if alt != value and alt >= LIMITS[key][0] and not (key == "n_experts" and alt < s["k"]):
                yield f"{key}={value}", replace(parts, settings={**s, key: alt})
    yield f"knowledge_bow={json.dumps(s['knowledge_bow'])}", replace(
        parts, settings={**s, "knowledge_bow": not s["knowledge_bow"]})
    gate = bool(s.get("knowledge_gate", False))
    yield f"knowledge_gate={json.dumps(gate)}", replace(parts, settings={**s, "knowledge_gate": not gate})
    for pooling in POOLINGS:
        if pooling != s["pooling"]:
            yield f"pooling={json.dumps(s['pooling'])}", replace(parts, settings={**s, "pooling": pooling})
    enc = parts.encoder
    if enc.rebuild is not None:
        es = enc.settings
        for key in ("width", "window_size", "depth", "d_hidden"):
            for alt in (es[key] + 1, es[key] - 1):
                if alt >= LIMITS[key][0]:
                    yield f"encoder {key}={es[key]}", replace(parts, encoder=lambda k=key, a=alt: enc.rebuild(**{k: a}))
        yield f"encoder rows={es['rows']}", replace(
            parts, encoder=lambda: enc.rebuild(rows=[es["rows"][0] + 1] + es["rows"][1:]))
    yield f"{parts.n_labels} labels (the component's cfg)", replace(parts, n_labels=parts.n_labels + 1)
    for key in ("n_knowledge_ids", "n_dense"):
        yield (f"{key}={getattr(parts, key)} (the component's cfg, from its kb and rules)",
               replace(parts, **{key: getattr(parts, key) + 1}))


def _dependencies(parts: ClassifierParts) -> Iterator[Tuple[str, Set[Tuple[str, int]], Set[str]]]:
    """Per nudge of a setting: (the setting, the (tensor, dim) sizes that moved, the
    tensor name patterns that appeared or disappeared)."""
    base = meta_classifier_shapes(parts)
    for label, variant in _variants(parts):
        try:
            if callable(variant.encoder):  # a lazily rebuilt encoder spec
                variant = replace(variant, encoder=variant.encoder())
            shapes = meta_classifier_shapes(variant)
        except (ValueError, RuntimeError):  # a nudge outside the allowed range: no information
            continue
        dims: Set[Tuple[str, int]] = set()
        for name in base.keys() & shapes.keys():
            a, b = base[name][1], shapes[name][1]
            dims.update((name, d) for d in range(max(len(a), len(b))) if len(a) != len(b) or a[d] != b[d])
        yield label, dims, {_pattern(name) for name in base.keys() ^ shapes.keys()}


def explain_mismatch(parts: ClassifierParts, mismatch: Mismatch) -> Optional[str]:
    """The settings that account for *every* difference between the file and the
    model, as a sentence; None if some difference is not a setting's doing.

    A nudge of a setting explains differences when everything it moves differs in
    the file too (sizes of the tensors the file has, names the file lacks or adds):
    one tampered tensor does not look like a changed width, which moves dozens."""
    present = set(mismatch.wanted) - mismatch.missing
    diff = {_pattern(name) for name in mismatch.missing | mismatch.extra}
    covered_dims: Set[Tuple[str, int]] = set()
    covered_names: Set[str] = set()
    reasons: Dict[str, str] = {}
    for label, dims, names in _dependencies(parts):
        dims = {(name, d) for name, d in dims if name in present}
        if not (dims or names) or not dims <= mismatch.dims or not names <= diff:
            continue
        covered_dims |= dims
        covered_names |= names
        if dims:
            name = min(n for n, _ in dims)
            what = f"tensor {name!r} is {mismatch.found[name]} in the file, {mismatch.wanted[name]} from the settings"
        else:
            lacks = sorted(n for n in mismatch.missing if _pattern(n) in names)
            extra = sorted(n for n in mismatch.extra if _pattern(n) in names)
            what = f"the file lacks tensor {lacks[0]!r}" if lacks else f"the file has an extra tensor {extra[0]!r}"
        reasons.setdefault(label, f"{label}, but the weights were saved with another value ({what})")
    if reasons and mismatch.dims <= covered_dims and diff <= covered_names:
        return "; ".join(reasons.values())
    return None


__all__ = ["ClassifierParts", "build_classifier", "explain_mismatch", "meta_classifier_shapes"]
