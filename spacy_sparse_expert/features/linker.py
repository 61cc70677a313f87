"""Alias-matching entity linker: KB aliases -> PhraseMatcher(attr="LOWER") -> longest
non-overlapping matches -> noise filters -> disambiguation by prior and document context
(`disambiguation.py`).

Like spaCy's EntityLinker the KB is injected, but candidates come from matching the KB's
alias table against the text instead of from an NER component, so linking needs no
trained model. The matcher is built once per (KB, vocab) and reused for every doc.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
from spacy.attrs import IS_ALPHA, IS_LOWER, IS_SPACE, IS_TITLE, IS_UPPER, LOWER, ORTH
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..kb.knowledge_base import normalize_alias
from .disambiguation import ContextDisambiguator, LinkResult, Mention

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase

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


@dataclass
class AliasTable:
    """The KB's alias -> candidates table as flat arrays (row = alias)."""

    texts: List[str]                # alias as written in the KB
    cand_indptr: np.ndarray         # int64 (n_aliases + 1,)
    cand_entity: np.ndarray         # int64 (nnz,) entity row in the KB
    cand_prior: np.ndarray          # float32 (nnz,) P(entity | alias)


def alias_table(kb: "KnowledgeBase") -> AliasTable:
    """Read the alias table of a KnowledgeBase: surfaces (original case) + candidate CSR."""
    return AliasTable(
        list(kb.alias_surfaces),
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
        texts = [table.texts[i] for i in keep]
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
        self._disambiguate = ContextDisambiguator(kb.entity_arrays, self.cfg)
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
                norm = {self.kb.aliases[r] for r in rows}
                keep = concept & np.array([normalize_alias(lab) in norm for lab in labels], dtype=bool)
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
                norm = {self.kb.aliases[r] for r in rows}
                keep = ~concept | np.array([normalize_alias(lab) in norm for lab in labels], dtype=bool)
        ents, pri = ents[keep], pri[keep]
        if len(pri):
            pri = pri / pri.sum()
        order = np.argsort(-pri, kind="stable")
        got = (ents[order], pri[order].astype(np.float32))
        self._cands[(key, case)] = got
        return got

    def __call__(self, doc: Doc) -> LinkResult:
        """Link one doc. Sets nothing on the doc; see KnowledgeFeaturizer for that."""
        if len(doc) == 0 or not self._key2alias:
            return LinkResult.empty()
        matches = self.matcher(doc)
        if not matches:
            return LinkResult.empty()
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
        if not mentions:
            return LinkResult.empty()
        return self._disambiguate(_longest_first(mentions))


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


def blank_tokenizer(vocab: Vocab) -> Callable[[str], Doc]:
    """A blank tokenizer of `vocab.lang` sharing `vocab`, for alias and phrase patterns.
    It costs ~0.1 s, so a featurizer makes one and hands it to its linker and rule matcher."""
    import spacy

    return spacy.blank(vocab.lang or "en", vocab=vocab).tokenizer


def get_linker(vocab: Vocab, kb: "KnowledgeBase", config: Optional[LinkerConfig] = None, *,
               make_doc: Optional[Callable[[str], Doc]] = None) -> AliasLinker:
    """The AliasLinker for (kb, vocab, config), built once per KB: building the
    PhraseMatcher for ~30k aliases is the costly part, and every component and command
    that links with the same KB and vocab can share it (it is read-only once built).
    make_doc (Optional[Callable[[str], Doc]]): tokenizer for a newly built linker."""
    config = config or LinkerConfig()
    return kb.derived(("alias_linker", vocab, config), lambda: AliasLinker(vocab, kb, make_doc=make_doc, config=config))


__all__ = ["AliasLinker", "AliasTable", "LinkerConfig", "alias_table", "blank_tokenizer", "get_linker"]
