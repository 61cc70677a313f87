"""What the knowledge layer writes on a Doc, in the forms every Doc serialiser keeps.

    doc.spans["kb_entities"]    the linked spans: kb_id_ = entity IRI, label_ = a readable
                                type of the entity ("football club") or "ENTITY"
    span._.kb_link              (IRI, (type IRI, ...), prior) of a linked span, kept by
                                spaCy in doc.user_data under the span's character offsets
    span._.kb_iri / kb_types / kb_prior
                                getters over kb_link (tuple, float), None if not linked
    doc._.kb_entities           getter (and setter) of doc.spans["kb_entities"], as before
    doc._.rule_hits             ((rule id, start, end), ...), always tuples
    doc.ents[i].kb_id_          the IRI, on each entity (from an NER or entity ruler earlier in
                                the pipeline) with exactly the bounds of a linked span and no
                                kb_id of its own, as spaCy's entity_linker sets it

displaCy draws the linked spans with ``style="span", options={"spans_key": "kb_entities"}``
and the entities with their IRIs with ``style="ent", options={"kb_url_template": "{}"}``.

Spans live where spaCy keeps spans and everything in ``doc.user_data`` is a plain tuple,
string or number. A Span there (as ``doc._.kb_entities`` used to hold) cannot be pickled
or msgpacked, which broke ``nlp.pipe(n_process=2)``, ``spacy apply``,
``DocBin(store_user_data=True)``, ``doc.to_bytes()`` and ``doc.copy()`` on every doc with
a linked entity. spaCy reads user_data back as lists on some paths (``Doc.from_bytes``)
and tuples on others (``DocBin``), so the getters normalise to tuples. Per-span values
sit under spaCy's own span keys so ``Doc.from_docs`` shifts them with the spans.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Dict, Iterable, NamedTuple, Optional, Tuple, cast

from spacy.tokens import Doc, Span, SpanGroup

from ..errors import Errors, SparseExpertError

SPANS_KEY = "kb_entities"
DEFAULT_LABEL = "ENTITY"

# (start, end, IRI, type IRIs with superclasses, prior): one linked mention
LinkRecord = Tuple[int, int, str, Tuple[str, ...], float]
# (rule id, start, end)
RuleHit = Tuple[str, int, int]

_RULE_HITS_KEY = ("._.", "rule_hits", None, None)  # where a default Doc extension would keep it
_LINK_EXT = "kb_link"
# where spaCy keeps span._.kb_link: ("._.", name, start_char, end_char)
_LINK_KEY_PREFIX = ("._.", _LINK_EXT)


class LinkedSpanError(SparseExpertError):
    """Linked-span data on a doc is not what the component writes."""


class DocAnnotations(NamedTuple):
    """What the component writes on one doc (plain values; see write_annotations).

    links (Tuple[LinkRecord, ...]): linked mentions, sorted by start.
    labels (Tuple[str, ...]): span label of each link (a readable type or "ENTITY").
    rule_hits (Tuple[RuleHit, ...]): rule matches.
    """

    links: Tuple[LinkRecord, ...]
    labels: Tuple[str, ...]
    rule_hits: Tuple[RuleHit, ...]

    @classmethod
    def empty(cls) -> "DocAnnotations":
        return cls((), (), ())


def write_annotations(doc: Doc, annotations: DocAnnotations) -> None:
    """Write `annotations` on `doc`, replacing what an earlier run wrote: the span
    group, each span's kb_link, doc._.rule_hits.

    doc (Doc): the doc the annotations were computed for.
    annotations (DocAnnotations): from KnowledgeFeaturizer.analyse / .annotations.
    """
    user_data = _user_data(doc)
    # links of an earlier run (another KB) must not linger under offsets not linked now
    if user_data:
        for key in [key for key in user_data if isinstance(key, tuple) and key[:2] == _LINK_KEY_PREFIX]:
            del user_data[key]
    earlier = {(s.start, s.end): s.kb_id_ for s in doc.spans[SPANS_KEY]} if SPANS_KEY in doc.spans else {}
    spans = [Span(doc, link[0], link[1], label=label, kb_id=link[2])
             for link, label in zip(annotations.links, annotations.labels)]
    for span, (_, _, iri, types, prior) in zip(spans, annotations.links):
        # what `span._.kb_link = value` stores, without an Underscore object per span
        user_data[_LINK_KEY_PREFIX + (span.start_char, span.end_char)] = (iri, tuple(types), float(prior))
    doc.spans[SPANS_KEY] = spans
    # the featurizer's own hits, (rule id, start, end) inside the doc: stored as the
    # setter of doc._.rule_hits stores them, without checking each one again
    user_data[_RULE_HITS_KEY] = tuple(annotations.rule_hits)
    if doc.ents or earlier:
        _link_ents(doc, {(s.start, s.end): s.kb_id_ for s in spans}, earlier)


def _link_ents(doc: Doc, links: Dict[Tuple[int, int], str], earlier: Dict[Tuple[int, int], str]) -> None:
    """Set kb_id_ on the entities of `doc` that a link covers exactly, as spaCy's
    entity_linker does (on every token of the entity).

    spaCy links an entity as a whole, so a link over part of an entity (or over more than
    it) says nothing about the entity and is left out. An entity that already has a kb_id
    keeps it (another linker's answer is not ours to replace) unless this component set
    it in an earlier run (`earlier` holds those links): that one is replaced or cleared.
    """
    for ent in doc.ents:
        bounds = (ent.start, ent.end)
        ours = ent.kb_id_ and earlier.get(bounds) == ent.kb_id_
        if ent.kb_id_ and not ours:
            continue
        iri = links.get(bounds, "")
        if iri != ent.kb_id_:
            for token in ent:
                token.ent_kb_id_ = iri


# --- getters / setters ------------------------------------------------------------------


def _get_kb_entities(doc: Doc) -> Optional[SpanGroup]:
    # None (the old default) until the component has run, so `doc._.kb_entities or []`
    # in user code keeps meaning "nothing linked"
    return doc.spans[SPANS_KEY] if SPANS_KEY in doc.spans else None


def _set_kb_entities(doc: Doc, value: Optional[Iterable[Span]]) -> None:
    if value is None:
        if SPANS_KEY in doc.spans:
            del doc.spans[SPANS_KEY]
        return
    spans = list(value)
    for i, span in enumerate(spans):
        if not isinstance(span, Span) or span.doc is not doc:
            raise LinkedSpanError(Errors.E131.format(value=_short(span), index=i))
    doc.spans[SPANS_KEY] = spans


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def link_of(span: Span) -> Optional[Tuple[str, Tuple[str, ...], float]]:
    """(IRI, types, prior) of a linked span (any Span over the same tokens), else None.
    Raises LinkedSpanError (E130) for a value the component does not write."""
    value = span._.kb_link
    if value is None:
        return None

    def bad(reason: str) -> LinkedSpanError:
        return LinkedSpanError(Errors.E130.format(span=span.text[:80], start=span.start, end=span.end,
                                                  value=_short(value), reason=reason))

    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise bad("not a 3-tuple")
    iri, types, prior = value
    if not isinstance(iri, str) or not iri:
        raise bad("the IRI is not a non-empty string")
    if not isinstance(types, (tuple, list)) or not all(isinstance(t, str) for t in types):
        raise bad("the types are not a tuple of strings")
    # renormalised float32 priors may sit a rounding error above 1
    if isinstance(prior, bool) or not isinstance(prior, Real) or not (math.isfinite(prior) and 0 <= float(prior) <= 1.0001):
        raise bad("the prior is not a number in [0, 1]")
    return iri, tuple(types), float(prior)


def _get_kb_iri(span: Span) -> Optional[str]:
    link = link_of(span)
    return link[0] if link is not None else None


def _get_kb_types(span: Span) -> Optional[Tuple[str, ...]]:
    link = link_of(span)
    return link[1] if link is not None else None


def _get_kb_prior(span: Span) -> Optional[float]:
    link = link_of(span)
    return link[2] if link is not None else None


def _user_data(doc: Doc) -> Dict[Any, Any]:
    # spaCy keys extension values by tuples; its stubs type user_data as Dict[str, Any]
    return cast(Dict[Any, Any], doc.user_data)


def _get_rule_hits(doc: Doc) -> Optional[Tuple[RuleHit, ...]]:
    raw = _user_data(doc).get(_RULE_HITS_KEY)
    if raw is None:
        return None
    return _checked_hits(doc, raw)


def rule_hits_of(doc: Doc) -> Tuple[RuleHit, ...]:
    """doc._.rule_hits, checked as the getter checks them, () when nothing set them:
    the getter called directly, without building an Underscore object per doc."""
    return _get_rule_hits(doc) or ()


def _set_rule_hits(doc: Doc, value: Optional[Iterable[Any]]) -> None:
    if value is None:
        _user_data(doc).pop(_RULE_HITS_KEY, None)
    else:
        _user_data(doc)[_RULE_HITS_KEY] = _checked_hits(doc, value)


def _checked_hits(doc: Doc, value: Any) -> Tuple[RuleHit, ...]:
    n = len(doc)
    if not isinstance(value, (tuple, list)):
        raise LinkedSpanError(Errors.E132.format(index=0, value=_short(value), reason="not a tuple", n_tokens=n))
    out = []
    for i, hit in enumerate(value):
        ok = isinstance(hit, (tuple, list)) and len(hit) == 3 and isinstance(hit[0], str)
        if ok:
            rule, start, end = hit
            ok = isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= n
        if not ok:
            raise LinkedSpanError(Errors.E132.format(index=i, value=_short(hit), n_tokens=n,
                                                     reason="not (rule id, start, end) inside this doc"))
        out.append((rule, start, end))
    return tuple(out)


def register_extensions() -> None:
    """Register the Doc/Span extensions (once; calling again is harmless)."""
    if not Doc.has_extension("rule_hits"):
        Doc.set_extension("rule_hits", getter=_get_rule_hits, setter=_set_rule_hits)
    if not Doc.has_extension("kb_entities"):
        Doc.set_extension("kb_entities", getter=_get_kb_entities, setter=_set_kb_entities)
    if not Span.has_extension(_LINK_EXT):
        Span.set_extension(_LINK_EXT, default=None)
    for name, getter in (("kb_iri", _get_kb_iri), ("kb_types", _get_kb_types), ("kb_prior", _get_kb_prior)):
        if not Span.has_extension(name):
            Span.set_extension(name, getter=getter)


register_extensions()


__all__ = [
    "DEFAULT_LABEL",
    "DocAnnotations",
    "LinkRecord",
    "LinkedSpanError",
    "RuleHit",
    "SPANS_KEY",
    "link_of",
    "register_extensions",
    "rule_hits_of",
    "write_annotations",
]
