"""A zero-shot (knowledge id -> label) prior from names: which KB types and predicates
speak for which label, found by matching the labels' names (or a description per label)
against the names of the KB's types and predicates (their IRIs' paths and labels).

A "knowledgeable verbalizer" for the knowledge-bag path: with label ``sport`` and the
shipped FB15k-237 KB, the ids of ``sports/sports_team``, ``soccer/football_team``'s
superclass ``sports/professional_sports_team`` and predicates such as
``sports/sports_team/roster...`` get a 1 in the ``sport`` column. It is computed once, at
initialize, from names only (no training data, nothing at inference), and works for any
label set; labels whose names match nothing (``negative`` / ``positive`` against
FB15k-237) get an empty column, which is the same as having no prior.

Words match when they are equal, or when they share a first part of at least 4 letters
and what follows it in each is one of a few endings of the same topic (``SUFFIXES``):
"sport" / "sports", "tech" / "technology", "politics" / "political" / "politician",
"government" / "governor", but not "positive" / "position" ("ve" and "on" are no such
endings). A short rule rather than a stemmer (a stemmer conflates "positive" and
"position" too); what it matched is listed in :attr:`LabelPrior.matches`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .features import KnowledgeFeaturizer

# Words that name the structure of an IRI or a type rather than a topic, and English
# function words of label descriptions: they match everything or nothing useful.
STOP_WORDS: FrozenSet[str] = frozenset("""
a an and are as at be by for from in into is it its of on or the to with about other others
type types relation relations property properties class classes domain schema ontology resource
ns base common topic default user owl rdf rdfs xsd www http https org com net
""".split())
MIN_SHARED = 4  # "tech" / "tech(nology)"; "art" / "art(ist)" does not count
# what may follow the shared first part of two words of one topic: plurals and the
# endings of fields, their adjectives, agents and activities
SUFFIXES: FrozenSet[str] = frozenset("""
s es e y ies ic ics ical ically ician icians ian ians al ally ial ist ists ism er ers or ors
ing ings ment ments mental ology ologies ological nology nologies nological nical
""".split()) | {""}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def name_words(text: str) -> Tuple[str, ...]:
    """The topic words of a name or IRI, lowercased, in order: an IRI's host is dropped
    (its path and fragment are kept), camelCase and snake_case are split, identifiers with digits
    and stop words dropped. "https://w3id.org/fb15k237/type/sports/sports_team" -> ("sports",
    "sports", "team")."""
    if "://" in text:
        parts = urlsplit(text)
        text = f"{parts.path} {parts.fragment}"
    # runs of letters and digits; one with a digit is an identifier ("fb15k237", "m.0d06m5")
    runs = [r for r in _WORD.findall(text) if not any(c.isdigit() for c in r)]
    words = [w.lower() for r in runs for w in _CAMEL.sub(" ", r).split()]
    return tuple(w for w in words if len(w) > 1 and w not in STOP_WORDS)


def words_match(a: str, b: str) -> bool:
    """Whether two lowercased words name the same topic (see the module docstring)."""
    if a == b:
        return True
    shared = 0
    for x, y in zip(a, b):
        if x != y:
            break
        shared += 1
    # "politic|s" / "politic|al": back off one letter at a time so that "governme|nt" /
    # "governo|r" is found as "govern|ment" / "govern|or"
    for cut in range(shared, MIN_SHARED - 1, -1):
        if a[cut:] in SUFFIXES and b[cut:] in SUFFIXES:
            return True
    return False


@dataclass
class LabelPrior:
    """matrix: (n_ids, n_labels) float32, 1 where knowledge id i's name matches label j's
    words, else 0 (ids of rules and flags: 0). words: the words each label was matched
    with. matches: per label, the names (``KnowledgeFeaturizer.id_name``) of its ids."""

    matrix: np.ndarray
    words: Dict[str, Tuple[str, ...]]
    matches: Dict[str, List[str]] = field(default_factory=dict)

    def unmatched(self) -> List[str]:
        """The labels that no id's name matched."""
        return [label for label, names in self.matches.items() if not names]


def label_prior(featurizer: "KnowledgeFeaturizer", labels: Sequence[str],
                descriptions: Optional[Mapping[str, str]] = None) -> LabelPrior:
    """The prior of ``labels`` over the featurizer's knowledge ids (its KB's types and
    predicates; rules have their own label scores and flags say nothing about a label).

    featurizer (KnowledgeFeaturizer): gives the id space and the KB.
    labels (Sequence[str]): the component's labels, in column order.
    descriptions (Optional[Mapping[str, str]]): words for some labels, used with the
        label's own name (e.g. {"tech": "technology computer software internet"}).
    RETURNS (LabelPrior): the (n_ids, n_labels) matrix and what matched.
    """
    descriptions = descriptions or {}
    words = {label: tuple(dict.fromkeys(name_words(label) + name_words(descriptions.get(label, ""))))
             for label in labels}
    matrix = np.zeros((featurizer.n_ids, len(labels)), dtype=np.float32)
    matches: Dict[str, List[str]] = {label: [] for label in labels}
    kb = featurizer.kb
    if kb is None:
        return LabelPrior(matrix, words, matches)
    names: List[Tuple[str, ...]] = [
        tuple(dict.fromkeys(name_words(iri) + name_words(text)))
        for iri, text in zip(kb.types, kb.type_labels)]
    names += [tuple(dict.fromkeys(name_words(iri))) for iri in kb.predicates]
    # each distinct word pair is compared once: a KB has a few hundred distinct words
    vocab = sorted({w for ws in names for w in ws})
    for j, label in enumerate(labels):
        hits = frozenset(v for v in vocab if any(words_match(w, v) for w in words[label]))
        if not hits:
            continue
        for i, id_words in enumerate(names):
            if hits.intersection(id_words):
                matrix[i, j] = 1.0
                matches[label].append(featurizer.id_name(i))
    return LabelPrior(matrix, words, matches)


__all__ = ["LabelPrior", "label_prior", "name_words", "words_match"]
