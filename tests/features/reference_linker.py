"""The alias linker as it was before the alias index, kept as the reference the fast
linker (`features/linker.py`) must agree with: a PhraseMatcher on LOWER over the
accent-folded aliases, Python per match and per mention (tests/features/test_alias_index.py).
It shares only the parts that did not change: LinkerConfig and the coherence method;
the default disambiguator is kept here as it was, too.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
from spacy.attrs import IS_ALPHA, IS_LOWER, IS_SPACE, IS_TITLE, IS_UPPER, LOWER, ORTH
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from spacy_sparse_expert.features.coherence import CoherenceDisambiguator
from spacy_sparse_expert.features.disambiguation import LinkResult, Mention
from spacy_sparse_expert.features.linker import (CASE_ANY, CASE_LOWER, CASE_NAME, _SENT_BREAK, LinkerConfig,
                                                 _stop_words, alias_table, blank_tokenizer, coherence_matrices)
from spacy_sparse_expert.kb.folding import fold_accents
from spacy_sparse_expert.kb.hierarchy import DEFAULT_MAX_TYPES_PER_ENTITY
from spacy_sparse_expert.kb.knowledge_base import normalize_alias

if TYPE_CHECKING:  # pragma: no cover
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
    from spacy_sparse_expert.kb.views import EntityArrays


class ReferenceLinker:
    """The PhraseMatcher linker as it was before the alias index (kept verbatim but for
    the name): link spans of a Doc to KB entities by alias matching.

    vocab (Vocab): the pipeline's vocab (the matcher stores pattern hashes in it).
    kb (KnowledgeBase): the compiled knowledge base.
    make_doc (Optional[Callable[[str], Doc]]): tokenizer for alias patterns; by default
        a blank tokenizer of `vocab.lang` sharing `vocab`.
    config (LinkerConfig): filter and disambiguation thresholds.
    """

    def __init__(
        self,
        vocab: Vocab,
        kb: "KnowledgeBase",
        *,
        make_doc: Optional[Callable[[str], Doc]] = None,
        config: Optional[LinkerConfig] = None,
    ) -> None:
        self.vocab = vocab
        self.kb = kb
        self.cfg = config or LinkerConfig()
        table = alias_table(kb)
        self.table = table
        stop = _stop_words(vocab)
        make_doc = blank_tokenizer(vocab) if make_doc is None else make_doc
        keep: List[int] = []
        for i, text in enumerate(table.texts):
            norm = text.strip().lower()
            if len(norm) < self.cfg.min_alias_chars or norm in stop or not any(c.isalpha() for c in norm):
                continue
            keep.append(i)
        # patterns are accent-folded and so is the text (`_folded`): "Sao Paulo" matches
        texts = [fold_accents(table.texts[i]) for i in keep]
        docs: Iterable[Doc] = map(make_doc, texts)
        self.matcher = PhraseMatcher(vocab, attr="LOWER")
        patterns: List[Doc] = []
        # tuple of LOWER hashes of the alias tokens -> alias rows (several KB spellings
        # of an alias may normalise to the same token sequence; their candidates merge)
        self._key2alias: Dict[Tuple[int, ...], List[int]] = {}
        for i, doc in zip(keep, docs):
            if len(doc) == 0:
                continue
            key = tuple(int(x) for x in doc.to_array(LOWER))
            rows = self._key2alias.get(key)
            if rows is None:
                self._key2alias[key] = [i]
                patterns.append(doc)
            else:
                rows.append(i)
        if patterns:
            self.matcher.add("KB_ALIAS", patterns)
        self._lowercase_alias = np.array([t == t.lower() for t in table.texts], dtype=bool)
        self._cands: Dict[Tuple[Tuple[int, ...], int], Tuple[np.ndarray, np.ndarray]] = {}
        self._disambiguate: Callable[[List[Mention]], LinkResult] = (
            CoherenceDisambiguator(kb.entity_arrays, self.cfg, coherence_matrices(kb))
            if self.cfg.method == "coherence"
            else ReferenceContextDisambiguator(kb.entity_arrays, self.cfg))
        self._titles = {vocab.strings.add(t.lower()) for t in self.cfg.titles}
        self._sent_break_arr = np.array(sorted(vocab.strings.add(x) for x in _SENT_BREAK), dtype=np.uint64)

    def __len__(self) -> int:
        """Number of distinct alias patterns in the matcher."""
        return len(self._key2alias)

    def candidates(self, key: Tuple[int, ...], case: int = CASE_ANY) -> Tuple[np.ndarray, np.ndarray]:
        """Candidates (entity ids, priors) of the alias with LOWER-hashes `key`, merged
        over the KB aliases that tokenize to it, for a mention written in `case`.

        Entities whose label is lowercase are concepts ("film", "prime minister"), the
        others names. CASE_LOWER (lowercase text) keeps concepts -- a single word only the
        concept it is the label of ("game" is not "video game") -- CASE_NAME (a single
        capitalised word inside a sentence) keeps names ("Mr Brown" is not the colour),
        CASE_ANY keeps both. Priors are renormalised over what is kept, highest first.
        """
        got = self._cands.get((key, case))
        if got is not None:
            return got
        rows = self._key2alias[key]
        t = self.table
        ents = np.concatenate([t.cand_entity[t.cand_indptr[r] : t.cand_indptr[r + 1]] for r in rows])
        pri = np.concatenate([t.cand_prior[t.cand_indptr[r] : t.cand_indptr[r + 1]] for r in rows])
        if len(rows) > 1:  # merge duplicates, keep the highest prior per entity
            order = np.lexsort((-pri, ents))
            ents, pri = ents[order], pri[order]
            first = np.ones(len(ents), dtype=bool)
            first[1:] = ents[1:] != ents[:-1]
            ents, pri = ents[first], pri[first]
        labels = [self.kb.labels[e] for e in ents.tolist()]
        concept = np.array([lab == lab.lower() for lab in labels], dtype=bool)
        single = len(key) == 1
        if case == CASE_LOWER:
            if single:
                norm = {fold_accents(self.kb.aliases[r]) for r in rows}
                keep = concept & np.array([fold_accents(normalize_alias(lab)) in norm for lab in labels], dtype=bool)
                if not self.cfg.link_lowercase_words:
                    keep[:] = False
            else:
                lower_surface = bool(self._lowercase_alias[rows].any())
                keep = concept | lower_surface
        elif case == CASE_NAME and single:
            keep = ~concept
        else:
            keep = np.ones(len(ents), dtype=bool)
            if single:  # concepts still only under their own label
                norm = {fold_accents(self.kb.aliases[r]) for r in rows}
                keep = ~concept | np.array([fold_accents(normalize_alias(lab)) in norm for lab in labels], dtype=bool)
        ents, pri = ents[keep], pri[keep]
        if len(pri):
            pri = pri / pri.sum()
        order = np.argsort(-pri, kind="stable")
        got = (ents[order], pri[order].astype(np.float32))
        self._cands[(key, case)] = got
        return got

    def __call__(self, doc: Doc) -> LinkResult:
        """Link one doc. Sets nothing on the doc; see KnowledgeFeaturizer for that."""
        mentions = self.mentions(doc)
        if not mentions:
            return LinkResult.empty()
        return self._disambiguate(mentions)

    def _folded(self, doc: Doc) -> Doc:
        """`doc`, or where a token has accents a Doc of the same tokens without them (the
        patterns are folded too); token i is token i of `doc`, so spans carry over."""
        if doc.text.isascii():
            return doc
        words = [t.text for t in doc]
        folded = [fold_accents(w) or w for w in words]
        if folded == words:
            return doc
        return Doc(self.vocab, words=folded, spaces=[bool(t.whitespace_) for t in doc])

    def mentions(self, doc: Doc) -> List[Mention]:
        """The doc's alias mentions before disambiguation: longest non-overlapping
        matches that pass the noise filters, sorted by start, each with its candidates
        (highest prior first) as the writing allows them (see `candidates`)."""
        if len(doc) == 0 or not self._key2alias:
            return []
        doc = self._folded(doc)
        matches = self.matcher(doc)
        if not matches:
            return []
        # one vectorised read of the token attributes the filters need, then plain lists
        # (per-match numpy calls would cost more than the matching itself)
        attrs = doc.to_array([LOWER, IS_TITLE, IS_UPPER, IS_ALPHA, IS_LOWER, ORTH, IS_SPACE])
        lowers = attrs[:, 0].tolist()
        # capitalised: Title, UPPER, or a word with any capital ("iPod")
        cap_arr = (attrs[:, 1] != 0) | (attrs[:, 2] != 0) | ((attrs[:, 3] != 0) & (attrs[:, 4] == 0))
        capital = cap_arr.tolist()
        # a token starts a sentence (as far as a tokenizer-only pipeline can tell) at the
        # start of the text or after sentence punctuation, a quote or a line break
        sent_start_arr = np.ones(len(doc), dtype=bool)
        sent_start_arr[1:] = (attrs[:-1, 6] != 0) | np.isin(attrs[:-1, 5], self._sent_break_arr)
        sent_start = sent_start_arr.tolist()
        lower_words: Optional[set] = None
        name_words: set = set()
        n_tok = len(doc)
        mentions: List[Mention] = []
        for _, start, end in matches:
            key = tuple(lowers[start:end])
            if key not in self._key2alias:  # pragma: no cover - matcher and table agree
                continue
            # Which readings the writing allows (see `candidates`): no capital -> a
            # concept; a capitalised single word inside a sentence -> a name; one at a
            # sentence start -> a concept if the doc also writes it in lowercase,
            # else either; a capitalised multi-word span -> either.
            if not any(capital[start:end]) or (
                # "The challenge ...": the only capital is the sentence start
                end - start > 1 and sent_start[start] and not any(capital[start + 1 : end])
            ):
                case = CASE_LOWER
            elif end - start > 1:
                case = CASE_ANY
            elif (start + 1 < n_tok and capital[start + 1] and not sent_start[start + 1]) or (
                start > 0 and capital[start - 1] and not sent_start[start - 1]
                and lowers[start - 1] not in self._titles
            ):
                # one word of a longer name the KB does not know ("Leicester Square",
                # "Prince Harry", "North Wales Police"): not the word's own entity;
                # a title before a name ("Mr", "President") does not count
                continue
            elif sent_start[start]:
                if lower_words is None:
                    lower_words = set(attrs[attrs[:, 4] != 0, 0].tolist())
                    name_words = set(attrs[cap_arr & ~sent_start_arr, 0].tolist())
                if key[0] in lower_words:
                    case = CASE_LOWER
                elif key[0] in name_words:  # "Brown said ..." after "Mr Brown"
                    case = CASE_NAME
                else:
                    case = CASE_ANY
            else:
                case = CASE_NAME
            cands = self.candidates(key, case)
            if not len(cands[0]):
                continue
            mentions.append((start, end, cands, case == CASE_LOWER))
        return _longest_first(mentions)


def _longest_first(mentions: List[Tuple]) -> List[Tuple]:
    """Longest non-overlapping mentions, as spacy.util.filter_spans chooses them (longest
    first, then earliest), sorted by start -- on tuples, without creating Spans."""
    taken: set = set()
    out = []
    for m in sorted(mentions, key=lambda m: (m[1] - m[0], -m[0]), reverse=True):
        if m[0] not in taken and m[1] - 1 not in taken:
            out.append(m)
            taken.update(range(m[0], m[1]))
    out.sort(key=lambda m: m[0])
    return out


class ReferenceContextDisambiguator:
    """features/disambiguation.py's ContextDisambiguator as it was before its loops were
    shortened (kept verbatim but for the name): choose among the candidates of a doc's
    mentions by prior and document context.

    arrays (EntityArrays): the KB's per-entity arrays (types, predicates, neighbours, IDF).
    config (LinkerConfig): the disambiguation thresholds (confident_prior, context_weight,
        max_flat_candidates, flat_prior, min_context_support, min_margin, neighbour_weight).
    Entity signatures are cached, so one disambiguator serves every doc of a linker.
    """

    def __init__(self, arrays: "EntityArrays", config: "LinkerConfig") -> None:
        self.cfg = config
        self._arrays = arrays
        self._sig_cache: Dict[int, Dict[int, float]] = {}

    def __call__(self, mentions: List[Mention]) -> LinkResult:
        """The chosen entity of each mention that is linked (`mentions`: non-overlapping,
        sorted by start), with its prior and number of candidates."""
        cfg = self.cfg
        # Context profile: types and predicates of the confidently linked entities
        # (a single candidate, or a prior of at least confident_prior).
        ctx_counts: Counter = Counter()
        ctx_entities: Counter = Counter()
        tops: List[Optional[int]] = []
        for _, _, (ents, pri), _ in mentions:
            if len(ents) == 1 or pri[0] >= cfg.confident_prior:
                top = int(ents[0])
                ctx_entities[top] += 1
                ctx_counts.update(self._signature(top).keys())
                tops.append(top)
            else:
                tops.append(None)
        chosen: List[int] = []
        prior: List[float] = []
        kept: List[int] = []
        n_cands: List[int] = []
        for j, (_, _, (ents, pri), _) in enumerate(mentions):
            flat = len(ents) > cfg.max_flat_candidates and pri[0] < cfg.flat_prior
            if len(ents) == 1 or not ctx_entities:
                if not flat:  # else nothing to disambiguate a very ambiguous alias with
                    chosen.append(int(ents[0]))
                    prior.append(float(pri[0]))
                    kept.append(j)
                    n_cands.append(len(ents))
                continue
            # Re-rank every ambiguous mention (confident ones too) by prior + context;
            # a confident mention's own contribution to the context is left out.
            own = tops[j]
            best, best_score, best_sim, second = 0, -1.0, 0.0, -1.0
            for k, ent in enumerate(ents.tolist()):
                sim = self._context_similarity(ent, ctx_counts, own=own)
                if cfg.neighbour_weight and self._linked_nearby(ent, ctx_entities, own):
                    sim += cfg.neighbour_weight
                score = float(pri[k]) + cfg.context_weight * sim
                if score > best_score:
                    best, best_score, best_sim, second = k, score, sim, best_score
                elif score > second:
                    second = score
            if flat and (best_sim < cfg.min_context_support or best_score - second < cfg.min_margin):
                continue
            chosen.append(int(ents[best]))
            prior.append(float(pri[best]))
            kept.append(j)
            n_cands.append(len(ents))
        starts = [mentions[j][0] for j in kept]
        ends = [mentions[j][1] for j in kept]
        return LinkResult(
            np.array(starts, dtype=np.int64),
            np.array(ends, dtype=np.int64),
            np.array(chosen, dtype=np.int64),
            np.array(prior, dtype=np.float32),
            np.array(n_cands, dtype=np.int64),
            np.array([mentions[j][3] for j in kept], dtype=bool),
        )

    def _signature(self, ent: int) -> Dict[int, float]:
        """An entity's context signature: its type ids and (negated) predicate ids, each
        weighted by IDF so that rare, specific types ("football club") count more than
        generic ones ("location")."""
        got = self._sig_cache.get(ent)
        if got is None:
            a = self._arrays
            # the nearest types only: a deep hierarchy would make every mention cost its depth
            begin = int(a.types_indptr[ent])
            ts = a.types[begin : min(int(a.types_indptr[ent + 1]), begin + DEFAULT_MAX_TYPES_PER_ENTITY)]
            ps = a.preds[a.preds_indptr[ent] : a.preds_indptr[ent + 1]]
            got = dict(zip(ts.tolist(), a.type_idf[ts].tolist()))
            got.update(zip((-1 - ps).tolist(), a.pred_idf[ps].tolist()))
            self._sig_cache[ent] = got
        return got

    def _context_similarity(self, ent: int, ctx: Dict[int, int], own: Optional[int]) -> float:
        """IDF-weighted fraction of the candidate's signature that other confidently
        linked entities of the doc share (0..1)."""
        sig = self._signature(ent)
        total = sum(sig.values())
        if not ctx or total <= 0.0:
            return 0.0
        own_sig = self._signature(own) if own is not None else {}
        hit = sum(w for f, w in sig.items() if ctx.get(f, 0) - (f in own_sig) > 0)
        return hit / total

    def _linked_nearby(self, ent: int, ctx_entities: Counter, own: Optional[int]) -> bool:
        """Direct evidence for a candidate: the same entity is linked confidently
        elsewhere in the doc ("England cricket team ... England"), or a KB edge joins it
        to a confidently linked entity ("Chelsea F.C." -homeGround-> "Stamford Bridge")."""
        if ctx_entities.get(ent, 0) - (ent == own) > 0:
            return True
        others = [x for x, c in ctx_entities.items() if c - (x == own) > 0 and x != ent]
        a = self._arrays
        nb = a.nbrs[a.nbr_indptr[ent] : a.nbr_indptr[ent + 1]]
        if not others or not len(nb):
            return False
        pos = np.minimum(np.searchsorted(nb, others), len(nb) - 1)  # neighbour rows are sorted
        return bool((nb[pos] == others).any())
