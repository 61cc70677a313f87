"""Alias-matching entity linker: the KB's alias index (token hashes of the accent-folded
aliases, stored beside the KB) -> every alias span of a batch of docs, found from their
LOWER hashes by array lookups (`alias_spans.py`) -> noise filters over arrays -> longest
non-overlapping mentions -> disambiguation by prior and the confidently linked entities
(`disambiguation.py`; or the coherence of the doc's candidates, `coherence.py`).

Like spaCy's EntityLinker the KB is injected, but candidates come from matching the KB's
alias table against the text instead of from an NER component, so linking needs no
trained model. The spans are exactly those a PhraseMatcher(attr="LOWER") over the folded
aliases finds (tests/features/reference_linker.py keeps that implementation to check).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from spacy.attrs import ORTH
from spacy.strings import hash_string
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..errors import Errors
from ..kb.folding import fold_accents
from ..kb.knowledge_base import normalize_alias
from . import lexeme_table as lex
from .alias_spans import AliasPatterns, ensure_alias_index, longest_first
from .coherence import CoherenceDisambiguator, CoherenceMatrices
from .disambiguation import ContextDisambiguator, LinkResult, Mention, MentionArrays
from .segments import isin_sorted, segment_positions

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase

METHODS = ("coherence", "confident_context")

# How a mention is written decides which candidates it may refer to (see candidates()).
CASE_LOWER, CASE_NAME, CASE_ANY = 0, 1, 2

_TITLES = frozenset({
    "mr", "mrs", "ms", "miss", "dr", "sir", "dame", "lady", "lord", "prof", "professor", "president",
    "senator", "governor", "chancellor", "minister", "secretary", "judge", "general", "captain", "coach",
    "manager", "chairman", "chief", "king", "queen", "pope", "st", "saint",
})

# Sentence-final punctuation, quotes, dashes, brackets: a capitalised word after these (or
# at the start of the text or a line) may be capitalised only because it starts a sentence.
_SENT_BREAK = frozenset({".", "!", "?", ":", ";", '"', "'", "``", "''", "\u201c", "\u2018", "--", "\u2013", "(", "["})


@dataclass(frozen=True)
class LinkerConfig:
    """Thresholds of the linker's noise filters and disambiguation.

    min_alias_chars (int): aliases shorter than this are never matched.
    max_flat_candidates (int): an alias with more candidates than this whose best prior
        is below `flat_prior` is too ambiguous to link without context support.
    flat_prior (float): see max_flat_candidates.
    confident_prior (float): a mention whose best candidate has at least this prior (or
        a single candidate) is linked in the first pass and feeds the context.
    context_weight (float): weight of the context similarity added to the prior.
    min_context_support (float): an ambiguous (flat) mention is kept only if its best
        candidate's context similarity reaches this ...
    min_margin (float): ... and its score beats the runner-up's by this much (context
        that fits all candidates equally does not disambiguate).
    neighbour_weight (float): added to the context similarity of a candidate that is
        linked confidently elsewhere in the doc or has a KB edge to such an entity.
    link_lowercase_words (bool): link single-token lowercase aliases (concepts such as
        "film", "law") at all.
    titles (frozenset): words that may precede a one-word name without making it part of
        a longer unknown name ("Mr Brown", "President Bush").
    method (str): how mentions are disambiguated: "confident_context" (`disambiguation.py`:
        against the confidently linked entities; context_weight, min_context_support,
        neighbour_weight and confident_prior apply; the default: 27 of 40 dev mentions of the
        linking set right against 26 for the best coherence setting) or "coherence"
        (`coherence.py`: every candidate against every other alias's candidates).
    coherence_weight (float): weight of the coherence added to the log prior.
    edge_weight (float): relatedness of two candidates joined by a KB edge (or equal).
    edge_specificity (bool): scale an edge by the smaller specificity of its ends
        (log inverse degree), so that an edge to a hub counts little.
    shared_neighbour_weight (float): weight of the cosine of their KB neighbour sets.
    shared_type_weight (float): weight of the cosine of their IDF type/predicate profiles.
    coherence_rounds (int): rounds of belief refinement.
    coherence_top_k (int): coherence averages the support of this many most supportive
        other aliases (0: all of them).
    min_coherence (float): an ambiguous (flat) alias is kept under "coherence" only if its
        winner's coherence reaches this (and its belief margin `min_margin`).
    The method and the coherence defaults were chosen on the dev part of the hand-checked
    linking set (benchmarks/linking.py --tune; benchmarks/data/README.md).
    """

    min_alias_chars: int = 3
    max_flat_candidates: int = 3
    flat_prior: float = 0.5
    confident_prior: float = 0.6
    context_weight: float = 1.0
    min_context_support: float = 0.5
    min_margin: float = 0.1
    neighbour_weight: float = 0.5
    link_lowercase_words: bool = True
    titles: frozenset = _TITLES
    method: str = "confident_context"
    coherence_weight: float = 1.0
    edge_weight: float = 1.0
    edge_specificity: bool = False
    shared_neighbour_weight: float = 0.0
    shared_type_weight: float = 1.0
    coherence_rounds: int = 2
    coherence_top_k: int = 1
    min_coherence: float = 0.05

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(Errors.E200.format(value=self.method, options=", ".join(METHODS)))


@dataclass
class AliasTable:
    """The KB's alias -> candidates table as flat arrays (row = alias)."""

    texts: Sequence[str]            # alias as written in the KB (the KB's table, decoded per row)
    cand_indptr: np.ndarray         # int64 (n_aliases + 1,)
    cand_entity: np.ndarray         # int64 (nnz,) entity row in the KB
    cand_prior: np.ndarray          # float32 (nnz,) P(entity | alias)


def alias_table(kb: "KnowledgeBase") -> AliasTable:
    """Read the alias table of a KnowledgeBase: surfaces (original case) + candidate CSR.
    The surfaces stay the KB's table, read per row when a candidate list is first made:
    listing them would decode every alias at load (~0.4 s for 476k aliases)."""
    return AliasTable(
        kb.alias_surfaces,
        np.asarray(kb.array("alias_indptr"), dtype=np.int64),
        np.asarray(kb.array("alias_entities"), dtype=np.int64),
        np.asarray(kb.array("alias_priors"), dtype=np.float32),
    )


def _stop_words(vocab: Vocab) -> frozenset:
    try:
        from spacy.util import get_lang_class

        return frozenset(get_lang_class(vocab.lang or "en").Defaults.stop_words)
    except Exception:  # pragma: no cover - unknown language code
        from spacy.lang.en.stop_words import STOP_WORDS

        return frozenset(STOP_WORDS)


class AliasLinker:
    """Link spans of a Doc to KB entities by alias matching.

    vocab (Vocab): the pipeline's vocab.
    kb (KnowledgeBase): the compiled knowledge base.
    make_doc (Optional[Callable[[str], Doc]]): tokenizer for alias patterns; by default
        a blank tokenizer of `vocab.lang` sharing `vocab`. The aliases are tokenized once
        per KB and tokenizer and the result stored beside the KB (`alias_spans.py`).
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
        self.table = alias_table(kb)
        make_doc = blank_tokenizer(vocab) if make_doc is None else make_doc
        index = ensure_alias_index(kb, make_doc, vocab.lang or "en")
        a = index.arrays
        stop = np.array(sorted(hash_string(w) for w in _stop_words(vocab)), dtype=np.uint64)
        keep = ((a["alias_norm_chars"] >= self.cfg.min_alias_chars) & a["alias_has_alpha"]
                & ~isin_sorted(a["alias_norm_hash"], stop))
        self.patterns = AliasPatterns(index, keep)
        self._key2pattern: Optional[Dict[Tuple[int, ...], int]] = None
        self._cands: Dict[Tuple[int, int], Tuple[np.ndarray, np.ndarray]] = {}
        self._n_cands = np.full((len(self.patterns), 3), -1, dtype=np.int64)  # -1: not yet computed
        # every (pattern, case) seen so far: its candidates in one pool, from _pool_start
        self._pool_start = np.full((len(self.patterns), 3), -1, dtype=np.int64)
        self._pool_entities = np.zeros(0, dtype=np.int64)
        self._pool_priors = np.zeros(0, dtype=np.float32)
        self._disambiguate: Callable[[List[Mention]], LinkResult] = (
            CoherenceDisambiguator(kb.entity_arrays, self.cfg, coherence_matrices(kb))
            if self.cfg.method == "coherence"
            else ContextDisambiguator(kb.entity_arrays, self.cfg))
        self.lexemes = lex.LexemeTable(vocab, self.patterns, self.cfg.titles, _SENT_BREAK)

    def __len__(self) -> int:
        """Number of distinct alias patterns (token sequences) the linker matches."""
        return len(self.patterns)

    def candidates(self, key: Tuple[int, ...], case: int = CASE_ANY) -> Tuple[np.ndarray, np.ndarray]:
        """Candidates (entity ids, priors) of the alias with LOWER-hashes `key`, merged
        over the KB aliases that tokenize to it, for a mention written in `case`.

        Entities whose label is lowercase are concepts ("film", "prime minister"), the
        others names. CASE_LOWER (lowercase text) keeps concepts -- a single word only the
        concept it is the label of ("game" is not "video game") -- CASE_NAME (a single
        capitalised word inside a sentence) keeps names ("Mr Brown" is not the colour),
        CASE_ANY keeps both. Priors are renormalised over what is kept, highest first.
        """
        if self._key2pattern is None:
            p = self.patterns
            self._key2pattern = {tuple(p.tokens[p.indptr[i] : p.indptr[i + 1]].tolist()): i for i in range(len(p))}
        return self._candidates(self._key2pattern[tuple(int(x) for x in key)], case)

    def _candidates(self, pattern: int, case: int) -> Tuple[np.ndarray, np.ndarray]:
        got = self._cands.get((pattern, case))
        if got is not None:
            return got
        p, t = self.patterns, self.table
        rows = p.rows[p.rows_indptr[pattern] : p.rows_indptr[pattern + 1]].tolist()
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
        single = int(p.lengths[pattern]) == 1
        if case == CASE_LOWER:
            if single:
                norm = {fold_accents(self.kb.aliases[r]) for r in rows}
                keep = concept & np.array([fold_accents(normalize_alias(lab)) in norm for lab in labels], dtype=bool)
                if not self.cfg.link_lowercase_words:
                    keep[:] = False
            else:
                keep = concept | any(t.texts[r] == t.texts[r].lower() for r in rows)
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
        self._cands[(pattern, case)] = got
        return got

    def __call__(self, doc: Doc) -> LinkResult:
        """Link one doc. Sets nothing on the doc; see KnowledgeFeaturizer for that."""
        return self.pipe([doc])[0]

    def pipe(self, docs: Sequence[Doc], orths: Optional[np.ndarray] = None) -> List[LinkResult]:
        """Link a batch of docs: one vectorised alias search and filter pass for the
        batch, then each doc's mentions disambiguated (`orths`: the ORTH hashes of the
        batch's tokens, one doc after another, when the caller has them already)."""
        if isinstance(self._disambiguate, ContextDisambiguator):
            return self._disambiguate.choose(self.mention_arrays(docs, orths), len(docs))
        return [self._disambiguate(m) if m else LinkResult.empty() for m in self.mentions_batch(docs, orths)]

    def mentions(self, doc: Doc) -> List[Mention]:
        """The doc's alias mentions before disambiguation: longest non-overlapping
        matches that pass the noise filters, sorted by start, each with its candidates
        (highest prior first) as the writing allows them (see `candidates`)."""
        return self.mentions_batch([doc])[0]

    def mentions_batch(self, docs: Sequence[Doc], orths: Optional[np.ndarray] = None) -> List[List[Mention]]:
        """`mentions` of every doc, the alias search and the filters done for the batch
        at once (positions run through the batch, one doc after another)."""
        out: List[List[Mention]] = [[] for _ in docs]
        found = self._find_mentions(docs, orths)
        if found is None:
            return out
        docs_of, starts, ends, pats, case = found
        for d, s, e, p, c in zip(docs_of.tolist(), starts.tolist(), ends.tolist(), pats.tolist(), case.tolist()):
            out[d].append((s, e, self._candidates(p, c), c == CASE_LOWER))
        return out

    def mention_arrays(self, docs: Sequence[Doc], orths: Optional[np.ndarray] = None) -> MentionArrays:
        """`mentions_batch` as flat arrays (what disambiguation reads): the candidates
        gathered from a pool that holds each (alias, case)'s candidates once."""
        found = self._find_mentions(docs, orths)
        if found is None:
            z = np.zeros(0, dtype=np.int64)
            return MentionArrays(z, z, z, np.zeros(0, dtype=bool), np.zeros(1, dtype=np.int64), z,
                                 np.zeros(0, dtype=np.float32))
        docs_of, starts, ends, pats, case = found
        begin = self._pool_start[pats, case]
        if (begin < 0).any():
            self._add_to_pool(np.unique(pats[begin < 0] * 3 + case[begin < 0]))
            begin = self._pool_start[pats, case]
        sizes = self._n_cands[pats, case]
        indptr = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        pos = segment_positions(begin, sizes)
        return MentionArrays(docs_of, starts, ends, case == CASE_LOWER, indptr, self._pool_entities[pos],
                             self._pool_priors[pos])

    def _add_to_pool(self, pairs: np.ndarray) -> None:
        """Put the candidates of (pattern * 3 + case) `pairs` into the pool."""
        ents, pris = [self._pool_entities], [self._pool_priors]
        at = len(self._pool_entities)
        for pair in pairs.tolist():
            e, p = self._candidates(pair // 3, pair % 3)
            self._pool_start[pair // 3, pair % 3] = at
            at += len(e)
            ents.append(e)
            pris.append(p)
        self._pool_entities = np.concatenate(ents).astype(np.int64, copy=False)
        self._pool_priors = np.concatenate(pris).astype(np.float32, copy=False)

    def _find_mentions(self, docs: Sequence[Doc], orths: Optional[np.ndarray]) -> Optional[Tuple[np.ndarray, ...]]:
        """The batch's mentions, sorted by doc and start: (doc, start, end within the doc,
        alias pattern, case), or None when there is none."""
        lengths = np.array([len(doc) for doc in docs], dtype=np.int64)
        if not lengths.sum() or not len(self.patterns):
            return None
        # each token's word (accents folded: the patterns are folded too), by ORTH
        if orths is None:
            orths = np.concatenate([doc.to_array(ORTH) for doc in docs if len(doc)])
        rows = self.lexemes.rows(orths)
        lowers, flags = self.lexemes.lower[rows], self.lexemes.flags[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        doc_of = np.repeat(np.arange(len(docs)), lengths)
        doc_start, doc_end = offsets[doc_of], offsets[doc_of + 1]
        starts, ends, pats = self.patterns.find(lowers, doc_end, self.lexemes.first_row[rows])
        if not starts.size:
            return None
        cap = (flags & lex.CAP) != 0  # Title, UPPER, or a word with any capital ("iPod")
        # a token starts a sentence (as far as a tokenizer-only pipeline can tell) at the
        # start of the text or after sentence punctuation, a quote or a line break
        sent_start = np.ones(lowers.shape[0], dtype=bool)
        sent_start[1:] = (flags[:-1] & (lex.SPACE | lex.SENT_BREAK)) != 0
        sent_start[offsets[:-1][lengths > 0]] = True
        cum_cap = np.concatenate([[0], np.cumsum(cap)])
        single = ends - starts == 1
        # Which readings the writing allows (see `candidates`): no capital -> a concept
        # (so is a multi-word span whose only capital is the sentence start: "The
        # challenge ..."); a capitalised multi-word span -> either; a capitalised single
        # word inside a sentence -> a name; one at a sentence start -> a concept if the
        # doc also writes it in lowercase, a name if it writes it capitalised inside a
        # sentence ("Brown said ..." after "Mr Brown"), else either.
        lower = (cum_cap[ends] == cum_cap[starts]) | (
            ~single & sent_start[starts] & (cum_cap[ends] == cum_cap[starts + 1]))
        case = np.where(lower, CASE_LOWER, np.where(single, CASE_NAME, CASE_ANY))
        # one word of a longer name the KB does not know ("Leicester Square", "Prince
        # Harry", "North Wales Police") is not the word's own entity; a title before a
        # name ("Mr", "President") does not make a longer name
        nxt = np.minimum(starts + 1, lowers.shape[0] - 1)
        prv = np.maximum(starts - 1, 0)
        inside_name = ((starts + 1 < doc_end[starts]) & cap[nxt] & ~sent_start[nxt]) | (
            (starts > doc_start[starts]) & cap[prv] & ~sent_start[prv] & ((flags[prv] & lex.TITLE) == 0))
        drop = single & ~lower & inside_name
        at_start = single & ~lower & ~drop & sent_start[starts]
        if at_start.any():
            # (doc, word) as one int: the word's LOWER id in the lexeme table
            words = self.lexemes.lower_id[rows]
            word_in_doc = doc_of * (int(words.max()) + 1) + words
            asked = word_in_doc[starts[at_start]]
            in_lower = isin_sorted(asked, np.sort(word_in_doc[(flags & lex.LOWERCASE) != 0]))
            in_name = isin_sorted(asked, np.sort(word_in_doc[cap & ~sent_start]))
            case[at_start] = np.where(in_lower, CASE_LOWER, np.where(in_name, CASE_NAME, CASE_ANY))
        kept = np.flatnonzero(~drop)
        # how many candidates each (pattern, case) keeps, from a table filled on first
        # sight, so that Python runs only for the mentions chosen below
        n_cands = self._n_cands[pats[kept], case[kept]]
        if (n_cands < 0).any():
            for pair in np.unique(pats[kept][n_cands < 0] * 3 + case[kept][n_cands < 0]).tolist():
                self._n_cands[pair // 3, pair % 3] = len(self._candidates(pair // 3, pair % 3)[0])
            n_cands = self._n_cands[pats[kept], case[kept]]
        kept = kept[n_cands > 0]
        kept = kept[longest_first(starts[kept], ends[kept])]
        kept = kept[np.argsort(starts[kept], kind="stable")]
        if not len(kept):
            return None
        d = doc_of[starts[kept]]
        return d, starts[kept] - offsets[d], ends[kept] - offsets[d], pats[kept], case[kept]


class BlankTokenizer:
    """spaCy's blank tokenizer of `vocab.lang` sharing `vocab`, made on the first call: a
    linker whose KB has a stored alias index never tokenizes, and making the tokenizer
    costs ~0.1 s of every pipeline load. `alias_index_key` names it without making it (a
    blank tokenizer is fixed by the spaCy version and the language; `alias_spans.py`)."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.lang = vocab.lang or "en"
        self._tokenizer: Optional[Callable[[str], Doc]] = None

    @property
    def alias_index_key(self) -> str:
        from spacy import about

        return f"spacy-{about.__version__}/{self.lang}/blank"

    def __call__(self, text: str) -> Doc:
        if self._tokenizer is None:
            import spacy

            self._tokenizer = spacy.blank(self.lang, vocab=self.vocab).tokenizer
        return self._tokenizer(text)


def blank_tokenizer(vocab: Vocab) -> Callable[[str], Doc]:
    """A blank tokenizer of `vocab.lang` sharing `vocab`, for alias and phrase patterns
    (a `BlankTokenizer`: made on first use), so a featurizer makes one and hands it to its
    linker and rule matcher."""
    return BlankTokenizer(vocab)


def coherence_matrices(kb: "KnowledgeBase") -> CoherenceMatrices:
    """The KB's coherence matrices, built once per KB and shared by its linkers."""
    return kb.derived(("coherence_matrices",), lambda: CoherenceMatrices(kb.entity_arrays))


def get_linker(vocab: Vocab, kb: "KnowledgeBase", config: Optional[LinkerConfig] = None, *,
               make_doc: Optional[Callable[[str], Doc]] = None) -> AliasLinker:
    """The AliasLinker for (kb, vocab, config), built once per KB: every component and
    command that links with the same KB and vocab can share it (it is read-only once
    built but for its caches).
    make_doc (Optional[Callable[[str], Doc]]): tokenizer for a newly built linker."""
    config = config or LinkerConfig()
    return kb.derived(("alias_linker", vocab, config), lambda: AliasLinker(vocab, kb, make_doc=make_doc, config=config))


__all__ = ["AliasLinker", "AliasTable", "BlankTokenizer", "LinkerConfig", "alias_table", "blank_tokenizer", "coherence_matrices",
           "get_linker"]
