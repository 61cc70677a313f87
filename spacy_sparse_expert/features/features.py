"""Per-token knowledge features of a Doc: linked KB entities and rule hits turned into
sparse ids, dense features and router / label biases (the DocKnowledge the classifier
consumes).

Id space of `KnowledgeFeaturizer.n_ids`, in this order:

    [0, n_types)                         KB types (closure over rdfs:subClassOf)
    [n_types, +n_predicates)             predicates of the entity's outgoing relations
    [.., +n_rules)                       rules that hit the token
    last N_FLAGS ids                     flags: linked, begins a link, ambiguous link (the alias
                                         has several candidates), link written in lowercase (a
                                         concept such as "film", often a generic word), rule hit

Importing this module registers the Doc/Span extensions (see annotations.py; once,
re-import is harmless). Featurizing writes nothing on a doc: `analyse` returns the
annotations, `write_annotations` (the component's set_annotations) writes them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from spacy.tokens import Doc
from spacy.vocab import Vocab

from .annotations import DEFAULT_LABEL, DocAnnotations, LinkRecord, RuleHit, register_extensions, write_annotations
from ..kb.graph_features import sorted_unique
from ..kb.hierarchy import DEFAULT_MAX_TYPES_PER_ENTITY, check_type_limit
from .disambiguation import LinkResult
from .linker import AliasLinker, LinkerConfig, blank_tokenizer, get_linker
from .knowledge_arrays import BatchLinks, DocKnowledge, KnowledgeBatch, expand_spans, span_tokens
from .bounded_patterns import DocBatch, doc_batch
from .rule_matcher import FlatHits, RuleMatcher, csr_gather
from .entity_words import EntityWords, doc_words, entity_words as build_words

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase
    from ..rules.rules import RuleSet

FLAG_NAMES: Tuple[str, ...] = ("flag:linked", "flag:link_begin", "flag:ambiguous", "flag:lowercase_link", "flag:rule")
N_FLAGS = len(FLAG_NAMES)
_LINKED, _BEGIN, _AMBIGUOUS, _LOWERCASE, _RULE = range(N_FLAGS)
DENSE_TAIL: Tuple[str, ...] = ("is_linked", "link_prior")


register_extensions()


class KnowledgeFeaturizer:
    """Turn Docs into DocKnowledge: link aliases of `kb`, match `rules`, assemble arrays.

    vocab (Vocab): the pipeline's vocab (docs must share it).
    kb (Optional[KnowledgeBase]): the compiled KB; None disables linking.
    rules (Optional[RuleSet]): the rules; None disables rule hits.
    labels (Sequence[str]): the classifier's labels (columns of label_bias).
    n_experts (int): number of experts (columns of expert_bias).
    linker_config (Optional[LinkerConfig]): linker thresholds (defaults if None).
    max_types_per_entity (int): an entity's first types (asserted, then superclasses
        nearest first) that become features and `kb_types`; bounds the work per token
        whatever the KB's depth (default 64, see hierarchy.py).
    entity_words (bool): also give each doc the words of its linked entities'
        descriptions (``KnowledgeBatch.words``, see entity_words.py); off: no words.
    """

    def __init__(
        self,
        vocab: Vocab,
        kb: Optional["KnowledgeBase"],
        rules: Optional["RuleSet"],
        *,
        labels: Sequence[str],
        n_experts: int,
        linker_config: Optional[LinkerConfig] = None,
        max_types_per_entity: int = DEFAULT_MAX_TYPES_PER_ENTITY,
        entity_words: bool = False,
    ) -> None:
        self.vocab = vocab
        self.kb = kb
        self.rules = rules
        self.labels: Tuple[str, ...] = tuple(labels)
        self.n_experts = int(n_experts)
        check_type_limit(max_types_per_entity)
        self.max_types_per_entity = max_types_per_entity
        self.n_types = kb.n_types if kb is not None else 0
        self.n_predicates = kb.n_predicates if kb is not None else 0
        self.n_features = kb.n_features if kb is not None else 0
        has_rules = rules is not None and len(rules) > 0
        # one blank tokenizer for alias and phrase patterns (making one costs ~0.1 s)
        make_doc = blank_tokenizer(vocab) if has_rules or kb is not None else None
        self.linker: Optional[AliasLinker] = (
            get_linker(vocab, kb, linker_config, make_doc=make_doc) if kb is not None else None
        )
        self.rule_matcher: Optional[RuleMatcher] = (
            RuleMatcher(vocab, rules, kb, labels=self.labels, n_experts=self.n_experts, make_doc=make_doc)
            if has_rules else None
        )
        self.n_rules = len(self.rule_matcher) if self.rule_matcher is not None else 0
        self._rule_offset = self.n_types + self.n_predicates
        self._flag_offset = self._rule_offset + self.n_rules
        # used as they are (mapped from the KB folder when it stores them): a span gathers
        # its entity's first max_types_per_entity types and its predicates from them, so
        # nothing per entity is built here
        self._arrays = kb.entity_arrays if kb is not None else None
        self._make_doc = make_doc
        self._words: Optional[EntityWords] = None
        self.entity_words = bool(entity_words) and kb is not None
        # each linked entity's (IRI, type IRIs, span label), and each type's IRI, decoded once
        self._parts_cache: Dict[int, Tuple[str, Tuple[str, ...], str]] = {}
        self._type_iri: Dict[int, str] = {}
        # annotations of the last pipe() batch, keyed by (id, length) of its docs, for
        # the component's set_annotations (see annotations())
        # the last `pipe`'s docs (id, length), links and rule hits, for `annotations`
        self._pending: Tuple[List[Tuple[int, int]], List[LinkResult], FlatHits] = ([], [], FlatHits.empty())

    @property
    def n_ids(self) -> int:
        """Size of the sparse id space: types + predicates + rules + flags."""
        return self._flag_offset + N_FLAGS

    @property
    def n_dense(self) -> int:
        """Dense features per token: KB graph features + [is_linked, link_prior]."""
        return self.n_features + len(DENSE_TAIL)

    def id_name(self, i: int) -> str:
        """Human-readable name of sparse id `i` (type / predicate IRI, rule id, flag)."""
        if not 0 <= i < self.n_ids:
            raise IndexError(f"knowledge id {i} out of range [0, {self.n_ids})")
        if i < self.n_types:
            return "type:" + self.kb.types[i]  # type: ignore[union-attr]
        if i < self._rule_offset:
            return "predicate:" + self.kb.predicates[i - self.n_types]  # type: ignore[union-attr]
        if i < self._flag_offset:
            return "rule:" + self.rule_matcher.ids[i - self._rule_offset]  # type: ignore[union-attr]
        return FLAG_NAMES[i - self._flag_offset]

    def pipe(self, docs: Iterable[Doc]) -> KnowledgeBatch:
        """Featurize many docs (the matchers are built once and reused; pattern rules and
        the per-token arrays are computed once for the whole batch). Writes nothing on the
        docs (the model calls this in predict); the batch's annotations are kept for
        `annotations(docs)`, which makes them only when asked (training never asks)."""
        docs = list(docs)
        out, links, hits = self._analyse(docs)
        self._pending = ([(id(doc), len(doc)) for doc in docs], links, hits)
        return out

    def annotations(self, docs: Sequence[Doc]) -> List[DocAnnotations]:
        """The annotations of `docs`: those the last `pipe` computed if it was called on
        exactly these docs (the component's predict: the model featurized them), else
        computed now. Either way the kept batch is dropped."""
        keys, links, hits = self._pending
        self._pending = ([], [], FlatHits.empty())
        if keys != [(id(doc), len(doc)) for doc in docs]:
            _, links, hits = self._analyse(docs)
        return self._annotations(links, hits)

    def __call__(self, doc: Doc, *, annotate: bool = True) -> DocKnowledge:
        """Featurize one doc and (unless annotate=False) write its annotations:
        doc.spans["kb_entities"], span._.kb_link, doc._.rule_hits."""
        dk, ann = self.analyse(doc)
        if annotate:
            write_annotations(doc, ann)
        return dk

    def analyse(self, doc: Doc) -> Tuple[DocKnowledge, DocAnnotations]:
        """Featurize one doc without touching it: RETURNS (features, annotations)."""
        dks, anns = self.analyse_batch([doc])
        return dks[0], anns[0]

    def analyse_batch(self, docs: Sequence[Doc]) -> Tuple[KnowledgeBatch, List[DocAnnotations]]:
        """Featurize docs without touching them: RETURNS (features, annotations), one per doc."""
        out, links, hits = self._analyse(docs)
        return out, self._annotations(links, hits)

    def _analyse(self, docs: Sequence[Doc]) -> Tuple[KnowledgeBatch, List[LinkResult], FlatHits]:
        """The batch's features, and its links and rule hits (what its annotations are made of)."""
        # the tokens' ORTH and LOWER, read once for linking and rules (when there are any)
        batch = doc_batch(docs) if docs and (self.linker is not None or self.rule_matcher is not None) else None
        links = (self.linker.pipe(docs, batch.orths if batch is not None else None) if self.linker is not None
                 else [LinkResult.empty() for _ in docs])
        flat = BatchLinks.of(links)
        hits = self._rule_hits(docs, flat, batch)
        lengths = np.fromiter((len(doc) for doc in docs), dtype=np.int64, count=len(docs))
        return self._assemble(lengths, flat, hits), links, hits

    # --- steps -------------------------------------------------------------------------

    def _annotations(self, links: Sequence[LinkResult], hits: FlatHits) -> List[DocAnnotations]:
        """What set_annotations writes, as plain values, per doc."""
        ids = self.rule_matcher.ids if self.rule_matcher is not None else []
        triples = list(zip([ids[r] for r in hits.rules.tolist()], hits.starts.tolist(), hits.ends.tolist()))
        bounds = np.searchsorted(hits.docs, np.arange(len(links) + 1)).tolist()
        anns: List[DocAnnotations] = []
        for i, link in enumerate(links):
            rule_hits: Tuple[RuleHit, ...] = tuple(triples[bounds[i] : bounds[i + 1]])
            records, labels = self._annotate_links(link)
            anns.append(DocAnnotations(records, labels, rule_hits))
        return anns

    def _annotate_links(self, link: LinkResult) -> Tuple[Tuple[LinkRecord, ...], Tuple[str, ...]]:
        """(records, span labels) of the linked mentions, plain values sorted by start."""
        kb = self.kb
        if kb is None or not len(link.entities):
            return (), ()
        # a LinkResult is sorted by start, and its mentions do not overlap
        parts = [self._entity_parts(ent) for ent in link.entities.tolist()]
        records = tuple((s, e, iri, types, p) for s, e, (iri, types, _), p
                        in zip(link.starts.tolist(), link.ends.tolist(), parts, link.priors.tolist()))
        return records, tuple(label for _, _, label in parts)

    def _entity_parts(self, ent: int) -> Tuple[str, Tuple[str, ...], str]:
        """(IRI, type IRIs, span label) of an entity, cached: a batch links the same
        entities many times."""
        got = self._parts_cache.get(ent)
        if got is None:
            assert self.kb is not None
            got = self._parts_cache[ent] = (self.kb.entities[ent], self._type_iris(ent), self._span_label(ent))
        return got

    def _span_label(self, ent: int) -> str:
        """A readable type for displaCy and spaCy's span tools: the label of the entity's
        first asserted type, else DEFAULT_LABEL."""
        kb = self.kb
        assert kb is not None
        direct = kb.types_of(ent, direct_only=True)
        return (kb.type_labels[int(direct[0])].strip() if len(direct) else "") or DEFAULT_LABEL

    def _type_iris(self, ent: int) -> Tuple[str, ...]:
        """Type IRIs of an entity, nearest superclasses included, at most
        max_types_per_entity (each type's IRI decoded once: a KB has few types, shared by
        many entities)."""
        assert self.kb is not None and self._arrays is not None
        indptr = self._arrays.types_indptr
        start = int(indptr[ent])
        end = min(int(indptr[ent + 1]), start + self.max_types_per_entity)
        iris, types = self._type_iri, self.kb.types
        return tuple([iris[t] if t in iris else iris.setdefault(t, types[t])
                      for t in self._arrays.types[start:end].tolist()])

    def _rule_hits(self, docs: Sequence[Doc], links: BatchLinks, batch: Optional[DocBatch] = None) -> FlatHits:
        """Token and entity rule hits of a batch, sorted by doc (token hits first)."""
        rm = self.rule_matcher
        if rm is None:
            return FlatHits.empty()
        tok = rm.token_hits_flat(docs, batch)
        ent = rm.entity_hits_flat(links.entities, links.starts, links.ends, links.docs)
        if not len(ent.docs):
            return tok
        both = [np.concatenate([a, b]) for a, b in zip(tok, ent)]
        order = np.argsort(both[0], kind="stable")
        return FlatHits(*(a[order] for a in both))

    def _assemble(self, lengths: np.ndarray, links: BatchLinks, hits: FlatHits) -> KnowledgeBatch:
        """The batch's arrays in one pass over its flat tokens, then a view per doc."""
        n_docs, n = len(lengths), int(lengths.sum())
        offsets = np.cumsum(lengths) - lengths
        n_ids = self.n_ids
        dense = np.zeros((n, self.n_dense), dtype=np.float32)
        expert_bias = np.zeros((n, self.n_experts), dtype=np.float32)
        label_bias = np.zeros((n_docs, len(self.labels)), dtype=np.float32)
        linked = np.zeros((n,), dtype=np.bool_)
        tok_parts: List[np.ndarray] = []
        id_parts: List[np.ndarray] = []
        f0 = self._flag_offset
        if len(links.entities):
            arrays = self._arrays
            assert arrays is not None
            ents = links.entities
            starts, ends = links.starts + offsets[links.docs], links.ends + offsets[links.docs]
            n_spans = len(ents)
            # ids every token of a span gets: the entity's first types and its predicates,
            # linked (+ ambiguous, lowercase) flags (in any order: the ids are sorted below)
            ct, vt = csr_gather(arrays.types_indptr, arrays.types, ents, self.max_types_per_entity)
            cp, vp = csr_gather(arrays.preds_indptr, arrays.preds, ents)
            amb = np.flatnonzero(links.n_candidates > 1)
            low = np.flatnonzero(links.lowercase)
            span_idx = np.concatenate([np.repeat(np.arange(n_spans), ct), np.repeat(np.arange(n_spans), cp),
                                       np.arange(n_spans), amb, low])
            values = np.concatenate([
                vt,
                vp + self.n_types,
                np.full(n_spans, f0 + _LINKED, dtype=np.int64),
                np.full(len(amb), f0 + _AMBIGUOUS, dtype=np.int64),
                np.full(len(low), f0 + _LOWERCASE, dtype=np.int64),
            ])
            t, v = expand_spans(starts, ends, span_idx, values)
            tok_parts += [t, starts]
            id_parts += [v, np.full(n_spans, f0 + _BEGIN, dtype=np.int64)]
            # dense: graph features of the entity, is_linked, prior
            span_tok, tok = span_tokens(starts, ends)
            nf = self.n_features
            if nf:
                dense[tok, :nf] = arrays.features[ents[span_tok]]
            dense[tok, nf] = 1.0
            dense[tok, nf + 1] = links.priors[span_tok]
            linked[tok] = True
        if len(hits.docs):
            rm = self.rule_matcher
            assert rm is not None
            shift = offsets[hits.docs]
            rules = hits.rules
            hit_tok, tok = span_tokens(hits.starts + shift, hits.ends + shift)
            # a (token, rule) pair counts once even if overlapping matches of a pattern
            # rule cover the token several times
            n_rules = max(self.n_rules, 1)
            pair = sorted_unique(tok * n_rules + rules[hit_tok])
            ptok, prule = pair // n_rules, pair % n_rules
            np.add.at(expert_bias, ptok, rm.expert_weights[prule])
            np.add.at(label_bias, hits.docs, rm.label_weights[rules])
            tok_parts += [ptok, ptok]
            id_parts += [prule + self._rule_offset, np.full(len(ptok), f0 + _RULE, dtype=np.int64)]
            linked[ptok] = True
        words_indptr, words = self._doc_words(n_docs, links)
        if tok_parts:
            # numpy 2's hash-based np.unique takes ~1 s on 400k ids; one sort takes ms
            keys = sorted_unique(np.concatenate(tok_parts) * n_ids + np.concatenate(id_parts))
            ids = keys % n_ids
            counts = np.bincount(keys // n_ids, minlength=n)
        else:
            ids = np.zeros((0,), dtype=np.int64)
            counts = np.zeros((n,), dtype=np.int64)
        indptr = np.zeros((n + 1,), dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return KnowledgeBatch(lengths, indptr, ids.astype(np.int64, copy=False), dense, expert_bias, label_bias,
                              linked, words_indptr, words)

    def _doc_words(self, n_docs: int, links: BatchLinks) -> Tuple[np.ndarray, np.ndarray]:
        """Each doc's description words (entity_words.py), or none without the setting."""
        if not self.entity_words or not len(links.entities):
            return np.zeros(n_docs + 1, dtype=np.int64), np.zeros(0, dtype=np.uint64)
        if self._words is None:
            assert self.kb is not None and self._make_doc is not None
            self._words = build_words(self.kb, self._make_doc)
        return doc_words(self._words, links.docs, links.entities, n_docs)


__all__ = ["DocKnowledge", "KnowledgeBatch", "KnowledgeFeaturizer", "FLAG_NAMES", "N_FLAGS"]
