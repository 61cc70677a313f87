"""The one streaming pass over the triples: intern IRIs, keep only what the KB needs.

Memory follows the distinct content, not the input: an RDF graph is a set, so a triple
repeated ten million times must cost what one costs. Labels are deduplicated as they
arrive; the integer link arrays are deduplicated in place whenever they have doubled
since the last time (amortised O(n log n)). The pass also enforces the triple budget.
Descriptions keep only the best one per subject so far (`better_description`), so they
cost one short string per described IRI whatever the order or repetition of triples.
"""
from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyoxigraph as ox

from ..errors import Errors, KBImportError
from .import_options import ALT_LABEL_PREDICATES, ANY_LANGUAGE, ImportOptions

ProgressCallback = Callable[[int], None]
_PROGRESS_EVERY = 1 << 15
_COMPACT_MIN = 1 << 18  # links held before the first deduplication
_IGNORE, _LABEL, _TYPE, _SUBCLASS, _RELATION = range(5)
_DESCRIPTION = -1  # below _RELATION: a relation's kind is _RELATION + its predicate's node id
MAX_DESCRIPTION_CHARS = 500


@dataclass
class Collected:
    """What one pass over the triples keeps (ids index `nodes`).

    During the pass IRIs are interned as pyoxigraph terms (`terms`, `kinds`): a dict
    lookup by a NamedNode hashes and compares it in Rust, with no Python string made per
    triple. `finish()` turns them into the IRI-keyed `nodes` and `predicates`, once per
    distinct IRI.
    """

    terms: dict[ox.NamedNode, int] = field(default_factory=dict)  # every interned IRI -> node id
    kinds: dict[ox.NamedNode, int] = field(default_factory=dict)  # every predicate -> kind
    label_ranks: dict[ox.NamedNode, int] = field(default_factory=dict)  # label predicate -> its rank
    nodes: dict[str, int] = field(default_factory=dict)  # `terms` by IRI, after `finish()`
    labels: list[tuple[int, str, int, int]] = field(default_factory=list)  # node, text, pred rank, lang rank
    label_set: set[tuple[int, str, int, int]] = field(default_factory=set)  # `labels`, for deduplication
    other_languages: set[str] = field(default_factory=set)
    # description predicate -> (its rank, the kind its IRI objects have: a relation or _IGNORE)
    description_kinds: dict[ox.NamedNode, tuple[int, int]] = field(default_factory=dict)
    # subject -> its best description so far: (predicate rank, language rank, text)
    best_descriptions: dict[ox.NamedNode, tuple[int, int, str]] = field(default_factory=dict)
    descriptions: dict[int, str] = field(default_factory=dict)  # node id -> description, after `finish()`
    n_label_triples: int = 0
    n_blank_labels: int = 0  # label triples whose subject is a blank node (never entities)
    type_s: array = field(default_factory=lambda: array("q"))
    type_o: array = field(default_factory=lambda: array("q"))
    sub_s: array = field(default_factory=lambda: array("q"))
    sub_o: array = field(default_factory=lambda: array("q"))
    rel_s: array = field(default_factory=lambda: array("q"))
    rel_p: array = field(default_factory=lambda: array("q"))
    rel_o: array = field(default_factory=lambda: array("q"))
    predicates: dict[str, int] = field(default_factory=dict)  # every predicate IRI -> kind, after `finish()`
    n_triples: int = 0
    compact_at: int = _COMPACT_MIN

    @property
    def n_links(self) -> int:
        return len(self.rel_s) + len(self.type_s) + len(self.sub_s)

    def compact(self) -> None:
        """Drop repeated type, subclass and relation links, in place (the hot loop holds
        bound `append`s). Their order is not kept: the KB tables never depend on it."""
        n = max(len(self.terms), 1)
        _unique_in_place(n, self.type_s, self.type_o)
        _unique_in_place(n, self.sub_s, self.sub_o)
        _unique_in_place(n, self.rel_s, self.rel_p, self.rel_o)
        self.compact_at = max(_COMPACT_MIN, 2 * self.n_links)

    def finish(self) -> None:
        """After the last source: the IRI-keyed views `nodes` and `predicates`, and the
        links deduplicated."""
        self.compact()
        self.nodes = {term.value: i for term, i in self.terms.items()}
        self.predicates = {term.value: kind for term, kind in self.kinds.items()}
        # Subjects that were never interned have no label, so they are no entity either.
        terms = self.terms
        self.descriptions = {terms[term]: best[2] for term, best in self.best_descriptions.items() if term in terms}


def clean_description(text: str) -> str:
    """`text` with whitespace runs collapsed to one space, stripped, and cut to at most
    MAX_DESCRIPTION_CHARS characters at the last space that fits (mid-word only when a
    single word is longer)."""
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION_CHARS:
        head = text[: MAX_DESCRIPTION_CHARS + 1]  # a space right after the limit is a clean cut too
        cut = head.rfind(" ")
        text = head[:cut] if cut > 0 else text[:MAX_DESCRIPTION_CHARS]
    return text


def better_description(new: tuple[int, int, str], old: tuple[int, int, str] | None) -> bool:
    """Whether description `new` (predicate rank, language rank, text) beats `old`:
    preferred predicate, then language, then the smallest text, so the choice does not
    depend on the order of the triples."""
    return old is None or new < old


def _unique_in_place(n_nodes: int, *columns: array) -> None:
    """Keep each distinct row of the int columns (node ids below `n_nodes`) once."""
    if columns[0]:
        rows = _unique_rows(n_nodes, [np.array(c, dtype=np.int64) for c in columns])  # copies: no buffer
        for column, values in zip(columns, rows):  # export may outlive this, or the resize fails
            column[:] = array("q", values.tobytes())


def unique_ints(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-d int array, sorted (numpy's default sort: no need
    for a stable one among equal ints)."""
    values = np.sort(values)
    if values.size:
        values = values[np.concatenate([[True], values[1:] != values[:-1]])]
    return values


def _unique_rows(n_nodes: int, cols: list[np.ndarray]) -> list[np.ndarray]:
    """The distinct rows, sorted. By sorting, never np.unique: numpy 2's hash-based
    unique took 11 s for 7M int64 keys where a sort and a mask take 0.1 s."""
    if n_nodes ** len(cols) < 2 ** 63:  # one int64 key per row: the fast path
        key = cols[0]
        for col in cols[1:]:
            key *= n_nodes
            key += col
        key = unique_ints(key)
        rows = []
        for _ in cols:
            rows.append(key % n_nodes)
            key //= n_nodes
        return rows[::-1]
    order = np.lexsort(cols[::-1])  # by the first column, then the next...
    cols = [col[order] for col in cols]
    keep = np.ones(order.size, dtype=bool)
    if order.size:
        keep[1:] = np.logical_or.reduce([col[1:] != col[:-1] for col in cols])
    return [np.ascontiguousarray(col[keep]) for col in cols]


def _language_rank(languages: Sequence[str]) -> Callable[[str | None], int | None]:
    """Rank of a label language: index of the requested language it matches, untagged
    after all of them, None when not wanted. "en" matches "en", "en-GB", "EN-us"."""
    wanted = [lang.lower() for lang in languages]
    any_language = ANY_LANGUAGE in wanted
    cache: dict[str | None, int | None] = {None: len(wanted)}

    def rank(lang: str | None) -> int | None:
        if lang in cache:
            return cache[lang]
        low = lang.lower()  # type: ignore[union-attr]
        found = next((i for i, w in enumerate(wanted) if low == w or low.startswith(w + "-")), None)
        if found is None and any_language:
            found = len(wanted)
        cache[lang] = found
        return found

    return rank


def collect_triples(quads: Iterable[ox.Quad], opts: ImportOptions, into: Collected,
                    progress: ProgressCallback | None, where: str = "(source)") -> None:
    """The hot loop: one pass, a dict lookup per term, ints appended to arrays.

    Call `into.finish()` after the last source. Raises E091 when more than
    `opts.max_triples` triples were read (over every call with the same `into`); `where`
    names the source in that message.
    """
    label_rank = {p: (i + (len(opts.label_predicates) if p in ALT_LABEL_PREDICATES else 0))
                  for i, p in enumerate(opts.label_predicates)}
    keep = set(opts.relations) if opts.relations is not None else None
    description_rank = {p: i for i, p in reversed(list(enumerate(opts.description_predicates)))}
    lang_rank = _language_rank(opts.languages)
    kinds, terms, label_ranks = into.kinds, into.terms, into.label_ranks
    description_kinds, best_descriptions = into.description_kinds, into.best_descriptions
    named, literal = ox.NamedNode, ox.Literal
    limit = opts.max_triples
    n = into.n_triples

    def intern(term: ox.NamedNode) -> int:
        i = terms.get(term)
        if i is None:
            i = terms[term] = len(terms)
        return i

    def kind_of(predicate: ox.NamedNode) -> int:
        p = predicate.value
        if p in label_rank:
            label_ranks[predicate] = label_rank[p]
            return _LABEL
        if p == opts.type_predicate:
            return _TYPE
        if p == opts.subclass_predicate:
            return _SUBCLASS
        # A kept relation's kind is _RELATION + its node id: no second lookup per triple.
        relation = _RELATION + intern(predicate) if keep is None or p in keep else _IGNORE
        if p in description_rank:
            # Literal objects are descriptions; IRI objects stay what they were (relations).
            description_kinds[predicate] = (description_rank[p], relation)
            return _DESCRIPTION
        return relation

    def checkpoint(n: int) -> int:
        """Budget, progress and deduplication, every _PROGRESS_EVERY triples. RETURNS the
        count at which to come back."""
        if n > limit:
            raise KBImportError(Errors.E091.format(limit=limit, path=where))
        if progress is not None and not n % _PROGRESS_EVERY:
            progress(n)
        if into.n_links > into.compact_at:
            into.compact()
        return min((n // _PROGRESS_EVERY + 1) * _PROGRESS_EVERY, limit + 1)

    rel_s, rel_p, rel_o = into.rel_s.append, into.rel_p.append, into.rel_o.append
    labels, label_set = into.labels, into.label_set
    next_check = min((n // _PROGRESS_EVERY + 1) * _PROGRESS_EVERY, limit + 1)
    for quad in quads:
        n += 1
        if n >= next_check:
            next_check = checkpoint(n)
        predicate = quad.predicate
        kind = kinds.get(predicate)
        if kind is None:
            kind = kinds[predicate] = kind_of(predicate)
        subject = quad.subject
        if type(subject) is not named:
            into.n_blank_labels += kind == _LABEL
            continue
        obj = quad.object
        if kind >= _RELATION:
            if type(obj) is named:
                s = terms.get(subject)
                if s is None:
                    s = intern(subject)
                o = terms.get(obj)
                if o is None:
                    o = intern(obj)
                rel_s(s)
                rel_p(kind - _RELATION)
                rel_o(o)
        elif kind == _LABEL:
            if type(obj) is literal:
                into.n_label_triples += 1
                rank = lang_rank(obj.language)
                if rank is None:
                    into.other_languages.add(obj.language or "")  # never None: untagged is always kept
                else:
                    label = (intern(subject), obj.value, label_ranks[predicate], rank)
                    if label not in label_set:  # the first copy keeps its place: ties go to it
                        label_set.add(label)
                        labels.append(label)
        elif kind == _TYPE:
            if type(obj) is named:
                into.type_s.append(intern(subject))
                into.type_o.append(intern(obj))
        elif kind == _SUBCLASS:
            if type(obj) is named:
                into.sub_s.append(intern(subject))
                into.sub_o.append(intern(obj))
        elif kind == _DESCRIPTION:
            pred_rank, relation = description_kinds[predicate]
            if type(obj) is literal:
                rank = lang_rank(obj.language)
                if rank is not None:
                    text = clean_description(obj.value)
                    found = (pred_rank, rank, text)
                    if text and better_description(found, best_descriptions.get(subject)):
                        best_descriptions[subject] = found
            elif type(obj) is named and relation >= _RELATION:
                # rare (a description predicate with an IRI object): the relation branch's
                # inlined lookups are not worth repeating here
                rel_s(intern(subject))
                rel_p(relation - _RELATION)
                rel_o(intern(obj))
    into.n_triples = n
    if progress is not None:
        progress(n)


__all__ = ["MAX_DESCRIPTION_CHARS", "ProgressCallback", "Collected", "better_description", "clean_description",
           "collect_triples", "unique_ints"]
