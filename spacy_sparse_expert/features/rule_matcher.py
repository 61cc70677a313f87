"""Rule hits in a Doc: phrase rules through a PhraseMatcher (attr LOWER), token-pattern
rules through a Matcher, kb_type / kb_relation rules on linked entities.

Every rule has a row in two small matrices built once: `expert_weights` (n_rules,
n_experts) = weight * experts and `label_weights` (n_rules, n_labels) = weight * labels,
so the per-doc work is matching plus a few numpy gathers.

The work per rule and doc is bounded: patterns with `+`, `*` or wide ranges are matched by
`BoundedPatterns` inside `WholeDocMatcher` (leftmost-longest, non-overlapping, at most `max_match_length` tokens)
instead of spaCy's Matcher, which returns every one of their quadratically many matches;
and a rule keeps at most `max_matches_per_rule` hits per doc.
"""
from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
from spacy.attrs import (
    IS_CURRENCY, IS_DIGIT, IS_PUNCT, IS_TITLE, IS_UPPER, LIKE_EMAIL, LIKE_NUM, LIKE_URL, LOWER, NORM, ORTH,
)
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc
from spacy.vocab import Vocab

from ..errors import Errors, SparseExpertError, Warnings
from .bounded_patterns import (
    DEFAULT_MAX_MATCH_LENGTH, DEFAULT_MAX_MATCHES_PER_RULE, WholeDocMatcher, cap_per_key, unbounded_reason,
)
from .linker import blank_tokenizer

if TYPE_CHECKING:  # pragma: no cover
    from ..kb.knowledge_base import KnowledgeBase
    from ..rules.rules import Rule, RuleSet

PHRASE, PATTERN, KB_TYPE, KB_RELATION = "phrase", "pattern", "kb_type", "kb_relation"


class RuleHits:
    """Rule hits of one doc: rule rows and token spans (arrays of length n_hits)."""

    __slots__ = ("rules", "starts", "ends")

    def __init__(self, rules: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.rules, self.starts, self.ends = rules, starts, ends

    def __len__(self) -> int:
        return len(self.rules)


class RuleMatcher:
    """Find rule hits in docs.

    vocab (Vocab): the pipeline's vocab.
    rules (RuleSet): the rules; their order gives the rule rows 0..n_rules-1.
    kb (Optional[KnowledgeBase]): needed for kb_type / kb_relation rules; without it
        those rules never fire.
    labels (Sequence[str]): the classifier's labels (columns of label_weights).
    n_experts (int): number of experts (columns of expert_weights).
    max_match_length (int): longest match, in tokens, of a pattern with `+`, `*` or a wide
        range (see bounded_patterns.py); a longer run gives several matches.
    max_matches_per_rule (int): hits of one rule in one doc beyond this are dropped (the
        first ones in doc order stay; warning W021).
    make_doc (Optional[Callable[[str], Doc]]): tokenizer for phrase patterns; by default a
        blank tokenizer of `vocab.lang` sharing `vocab`.
    """

    def __init__(
        self,
        vocab: Vocab,
        rules: "RuleSet",
        kb: Optional["KnowledgeBase"],
        *,
        labels: Sequence[str],
        n_experts: int,
        max_match_length: int = DEFAULT_MAX_MATCH_LENGTH,
        max_matches_per_rule: int = DEFAULT_MAX_MATCHES_PER_RULE,
        make_doc: Optional[Callable[[str], Doc]] = None,
    ) -> None:
        for name, value in (("max_match_length", max_match_length), ("max_matches_per_rule", max_matches_per_rule)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SparseExpertError(Errors.E120.format(name=name, value=value))
        self.max_matches_per_rule = max_matches_per_rule
        self.rules: List["Rule"] = list(rules)
        self.ids: List[str] = [str(r.id) for r in self.rules]
        n = len(self.rules)
        label_index = {lab: i for i, lab in enumerate(labels)}
        self.expert_weights = np.zeros((n, n_experts), dtype=np.float32)
        self.label_weights = np.zeros((n, len(labels)), dtype=np.float32)
        self.phrase_matcher = PhraseMatcher(vocab, attr="LOWER")
        self.phrase_matcher_cased = PhraseMatcher(vocab, attr="ORTH")
        # patterns run over the whole doc (those with +, * or wide ranges in bounded work)
        self.matcher = WholeDocMatcher(vocab, max_length=max_match_length)
        self.window_matcher = Matcher(vocab)    # patterns run only around their anchors
        self._anchors: List[_Anchor] = []
        self._key2row: Dict[int, int] = {}
        self._strings = vocab.strings
        self._warned: Set[int] = set()  # rules W021 was raised for
        make_doc = blank_tokenizer(vocab) if make_doc is None else make_doc
        n_types = kb.n_types if kb is not None else 0
        n_preds = kb.n_predicates if kb is not None else 0
        # kb_type / kb_relation rules as sparse (n_types, n_rules) / (n_preds, n_rules)
        # incidence lists, folded into an entity -> rules CSR below
        type_rule: List[Tuple[int, int]] = []
        pred_rule: List[Tuple[int, int]] = []
        for row, rule in enumerate(self.rules):
            w = float(rule.weight)
            for e, v in dict(rule.experts).items():
                if not 0 <= int(e) < n_experts:
                    raise SparseExpertError(Errors.E031.format(
                        index=e, rule=rule.id, n_experts=n_experts, max_index=n_experts - 1))
                self.expert_weights[row, int(e)] += w * float(v)
            for lab, v in dict(rule.labels).items():
                if lab in label_index:  # rules may name labels this model does not have
                    self.label_weights[row, label_index[lab]] += w * float(v)
            key = f"sse_rule::{rule.id}"
            self._key2row[vocab.strings.add(key)] = row
            kind = rule.kind
            if kind == PHRASE:
                pm = self.phrase_matcher_cased if rule.case_sensitive else self.phrase_matcher
                pm.add(key, [make_doc(text) for text in rule.phrases])
            elif kind == PATTERN:
                whole, windowed = [], []
                for pattern in rule.patterns:
                    # a wide range has an anchor, but spaCy would explore it step by step
                    anchor = None if unbounded_reason(list(pattern)) else _anchor(list(pattern), vocab)
                    if anchor is None:
                        whole.append(list(pattern))
                    else:
                        windowed.append(list(pattern))
                        self._anchors.append(anchor)
                if whole:
                    self.matcher.add(key, whole)
                if windowed:
                    self.window_matcher.add(key, windowed)
            elif kind == KB_TYPE and kb is not None:
                t = kb.get_type_id(rule.target)
                if t is not None:  # a type this KB lacks: the rule cannot fire
                    type_rule.append((t, row))
            elif kind == KB_RELATION and kb is not None:
                p = kb.get_predicate_id(rule.target)
                if p is not None:
                    pred_rule.append((p, row))
        self.n_rules = n
        self._token_matchers = [m for m in (self.phrase_matcher, self.phrase_matcher_cased, self.matcher) if len(m)]
        self._anchor_attrs = sorted({a.attr for a in self._anchors})
        self._attr_col = {attr: i for i, attr in enumerate(self._anchor_attrs)}
        # attr -> {hash: indices of the value / regex anchors that hash satisfies}
        self._value_tables: Dict[int, Dict[int, Tuple[int, ...]]] = {}
        self._regex_anchors: Dict[int, List[Tuple[int, "re.Pattern[str]"]]] = {}
        for j, a in enumerate(self._anchors):
            if a.values is not None:
                table = self._value_tables.setdefault(a.attr, {})
                for h in a.values.tolist():
                    table[h] = table.get(h, ()) + (j,)
            elif a.regex is not None:
                self._value_tables.setdefault(a.attr, {})
                self._regex_anchors.setdefault(a.attr, []).append((j, a.regex))
        self.entity_rules: Optional[Tuple[np.ndarray, np.ndarray]] = None
        if kb is not None and (type_rule or pred_rule):
            self.entity_rules = _entity_rules(kb, type_rule, pred_rule, n_types, n_preds, n)

    def __len__(self) -> int:
        return self.n_rules

    def token_hits(self, doc: Doc) -> RuleHits:
        """Hits of phrase and pattern rules."""
        if (not self._token_matchers and not self._anchors) or len(doc) == 0:
            return _empty_hits()
        matches = []
        for m in self._token_matchers:
            matches.extend(m(doc))
        if self._anchors:
            matches.extend(self._window_matches(doc))
        if not matches:
            return _empty_hits()
        rows = np.fromiter((self._key2row[m[0]] for m in matches), dtype=np.int64, count=len(matches))
        starts = np.fromiter((m[1] for m in matches), dtype=np.int64, count=len(matches))
        ends = np.fromiter((m[2] for m in matches), dtype=np.int64, count=len(matches))
        keep = cap_per_key(rows, starts, self.max_matches_per_rule)
        if len(keep) < len(rows):
            self._warn_capped(rows, len(doc))
            rows, starts, ends = rows[keep], starts[keep], ends[keep]
        return RuleHits(rows, starts, ends)

    def _warn_capped(self, rows: np.ndarray, n_tokens: int) -> None:
        """W021, once per rule and matcher (a warning per doc would flood the log)."""
        counts = np.bincount(rows, minlength=self.n_rules)
        for row in np.flatnonzero(counts > self.max_matches_per_rule).tolist():
            if row not in self._warned:
                self._warned.add(row)
                warnings.warn(Warnings.W021.format(rule=self.ids[row], count=int(counts[row]), tokens=n_tokens,
                                                   limit=self.max_matches_per_rule), stacklevel=4)

    def _window_matches(self, doc: Doc) -> List[Tuple[int, int, int]]:
        """Run the anchored patterns only on windows around their anchor tokens.

        spaCy's Matcher tests every pattern at every token, which for REGEX / IN
        predicates costs more than the rest of featurizing. A pattern of bounded length
        L with a required token that a vectorised test can find (ORTH/LOWER value or
        set, LIKE_NUM, IS_DIGIT, ...) can only match within L-1 tokens of such a token.
        """
        arr = doc.to_array(self._anchor_attrs).reshape(len(doc), -1)
        n = len(doc)
        positions: List[List[int]] = [[] for _ in self._anchors]
        for attr, table in self._value_tables.items():
            # one dict lookup per token: hash -> anchors it satisfies (regex results are
            # added to the table the first time a string is seen)
            get = table.get
            regexes = self._regex_anchors.get(attr)
            for i, h in enumerate(arr[:, self._attr_col[attr]].tolist()):
                hit = get(h)
                if hit is None:
                    if not regexes:
                        continue
                    hit = self._learn(attr, h)
                for j in hit:
                    positions[j].append(i)
        starts_l: List[np.ndarray] = []
        ends_l: List[np.ndarray] = []
        for j, a in enumerate(self._anchors):
            if a.values is None and a.regex is None:  # a flag
                pos = np.flatnonzero(arr[:, self._attr_col[a.attr]])
            else:
                pos = np.asarray(positions[j], dtype=np.int64)
            if len(pos):
                starts_l.append(np.maximum(pos - (a.max_len - 1), 0))
                ends_l.append(np.minimum(pos + a.max_len, n))
        if not starts_l:
            return []
        starts = np.concatenate(starts_l)
        ends = np.concatenate(ends_l)
        order = np.argsort(starts, kind="stable")
        out: List[Tuple[int, int, int]] = []
        cur_s, cur_e = -1, -1
        for s, e in zip(starts[order].tolist(), ends[order].tolist()):
            if s <= cur_e:  # overlapping or touching windows merge
                cur_e = max(cur_e, e)
                continue
            if cur_e > cur_s >= 0:
                out.extend((k, cur_s + ms, cur_s + me) for k, ms, me in self.window_matcher(doc[cur_s:cur_e]))
            cur_s, cur_e = s, e
        out.extend((k, cur_s + ms, cur_s + me) for k, ms, me in self.window_matcher(doc[cur_s:cur_e]))
        return out

    def _learn(self, attr: int, h: int) -> Tuple[int, ...]:
        """Anchors whose REGEX the string of hash `h` passes; remembered in the table."""
        text = self._strings[h]
        hit = tuple(j for j, rx in self._regex_anchors[attr] if rx.search(text) is not None)
        self._value_tables[attr][h] = hit
        return hit

    def entity_hits(self, entities: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> RuleHits:
        """Hits of kb_type / kb_relation rules on linked spans (entity rows + spans)."""
        if self.entity_rules is None or len(entities) == 0:
            return _empty_hits()
        indptr, rules = self.entity_rules
        counts, rows = csr_gather(indptr, rules, entities)
        return RuleHits(rows, np.repeat(starts, counts), np.repeat(ends, counts))


class _Anchor(NamedTuple):
    """A token test every match of a pattern must pass, and the pattern's max length.

    Exactly one of `values` (hashes the attribute must be in), `regex` (tested on the
    attribute's string) or neither (a flag that must be set).
    """

    attr: int                       # spaCy attribute id (ORTH, LOWER, LIKE_NUM, ...)
    values: Optional[np.ndarray]    # uint64
    regex: Optional["re.Pattern[str]"]
    max_len: int


_HASH_ATTRS = {"ORTH": ORTH, "TEXT": ORTH, "LOWER": LOWER, "NORM": NORM}
_FLAG_ATTRS = {"IS_DIGIT": IS_DIGIT, "LIKE_NUM": LIKE_NUM, "IS_PUNCT": IS_PUNCT, "IS_CURRENCY": IS_CURRENCY,
               "LIKE_URL": LIKE_URL, "LIKE_EMAIL": LIKE_EMAIL, "IS_TITLE": IS_TITLE, "IS_UPPER": IS_UPPER}
_OP_RANGE = re.compile(r"^\{(\d*)(,?)(\d*)\}$")


def _anchor(pattern: List[dict], vocab: Vocab) -> Optional[_Anchor]:
    """The anchor of a bounded-length pattern, or None (then it runs on the whole doc).

    Among the pattern's required tokens (no OP), the most selective test is used: a
    value or value set of ORTH/LOWER/NORM, then a REGEX on them, then a boolean flag.
    """
    max_len = 0
    found: List[Tuple[int, _Anchor]] = []
    for spec in pattern:
        op = spec.get("OP")
        if op in (None, "1", "!", "?"):
            max_len += 1
        else:
            m = _OP_RANGE.match(str(op))
            if m is None or (m.group(2) and not m.group(3)):
                return None  # *, +, {n,}: unbounded
            max_len += int(m.group(3) or m.group(1))
        if op not in (None, "1"):
            continue
        for key, value in spec.items():
            k = key.upper()
            if k in _HASH_ATTRS:
                attr = _HASH_ATTRS[k]
                if isinstance(value, str):
                    found.append((0, _Anchor(attr, np.array([vocab.strings.add(value)], dtype=np.uint64), None, 0)))
                elif isinstance(value, dict) and len(value) == 1:
                    (op_name, arg), = value.items()
                    if op_name == "IN" and isinstance(arg, list) and all(isinstance(v, str) for v in arg):
                        hashes = np.array([vocab.strings.add(v) for v in arg], dtype=np.uint64)
                        found.append((0, _Anchor(attr, hashes, None, 0)))
                    elif op_name == "REGEX" and isinstance(arg, str):
                        found.append((1, _Anchor(attr, None, re.compile(arg), 0)))
            elif k in _FLAG_ATTRS and value is True:
                found.append((2, _Anchor(_FLAG_ATTRS[k], None, None, 0)))
    if not found or max_len == 0:
        return None
    best = min(found, key=lambda x: x[0])[1]
    return best._replace(max_len=max_len)


def csr_gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Concatenate CSR rows `rows`: RETURNS (per-row counts, values), vectorised."""
    rows = np.asarray(rows, dtype=np.int64)
    begin = indptr[rows]
    counts = indptr[rows + 1] - begin
    total = int(counts.sum())
    if total == 0:
        return counts, np.zeros((0,), dtype=np.int64)
    # position j of row r sits at begin[r] + j: offsets = arange(total) - start of its row
    row_start = np.repeat(np.cumsum(counts) - counts, counts)
    pos = np.repeat(begin, counts) + (np.arange(total, dtype=np.int64) - row_start)
    return counts, np.asarray(indices[pos], dtype=np.int64)


def _entity_rules(
    kb: "KnowledgeBase",
    type_rule: List[Tuple[int, int]],
    pred_rule: List[Tuple[int, int]],
    n_types: int,
    n_preds: int,
    n_rules: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """entity -> rules CSR: entity_types @ type_rules + entity_predicates @ pred_rules."""
    import scipy.sparse as sp

    def incidence(pairs: List[Tuple[int, int]], n_rows: int) -> "sp.csr_matrix":
        data = np.ones(len(pairs), dtype=np.float32)
        r = np.array([p[0] for p in pairs], dtype=np.int64)
        c = np.array([p[1] for p in pairs], dtype=np.int64)
        return sp.csr_matrix((data, (r, c)), shape=(max(n_rows, 1), n_rules))

    n_ent = kb.n_entities
    arrays = kb.entity_arrays
    ti, tx = arrays.types_indptr, arrays.types
    pi, px = arrays.preds_indptr, arrays.preds
    et = sp.csr_matrix((np.ones(len(tx), dtype=np.float32), tx, ti), shape=(n_ent, max(n_types, 1)))
    ep = sp.csr_matrix((np.ones(len(px), dtype=np.float32), px, pi), shape=(n_ent, max(n_preds, 1)))
    m = (et @ incidence(type_rule, n_types) + ep @ incidence(pred_rule, n_preds)).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return np.asarray(m.indptr, dtype=np.int64), np.asarray(m.indices, dtype=np.int64)


def _empty_hits() -> RuleHits:
    z = np.zeros((0,), dtype=np.int64)
    return RuleHits(z, z.copy(), z.copy())


__all__ = ["RuleMatcher", "RuleHits", "csr_gather"]
