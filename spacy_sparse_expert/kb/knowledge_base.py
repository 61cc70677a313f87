"""The compiled knowledge base: read-only tables and arrays, and lookups over them.

Ids are dense ints: entity ids index ``kb.entities``, type ids ``kb.types``, predicate ids
``kb.predicates``, alias ids ``kb.aliases``. Per-entity lists (types, relations) and
per-alias candidate lists are CSR arrays (``*_indptr`` + values), so a lookup is two
slices and the whole KB is a handful of numpy arrays plus string tables.

Build one with :func:`spacy_sparse_expert.kb.compile.import_rdf` (to a directory) or
:func:`spacy_sparse_expert.kb.compile.compile_kb` (in memory); load with
:meth:`KnowledgeBase.from_disk`.

Loading a format-2 folder (kb/storage.py) maps its files and checks only what costs
nothing (the checks are kb/array_checks.py) (presence, dtypes, shapes, lengths, the ends of every CSR index array): the
value checks of a group of arrays (ids in range, index arrays ascending, priors, graph
features) run on the first access to any array of the group, and a string table checks
its offsets on its first lookup; the IRI and alias dictionaries are built on their first
lookup. So `from_disk` costs the same for any KB size, and a damaged file still fails
with the coded error (E009/E110 naming the folder, file and field), only at first use.
A KB built in memory or read from format 1 is checked whole when it is made.

What text-side code derives from the arrays (`entity_arrays`, kb/views.py) and the alias
index (kb/alias_index.py) are stored beside them by `kb import` and `to_disk`, and mapped
from the folder on first use instead of being built or copied at every load.
"""
from __future__ import annotations

import threading
import time
import unicodedata
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from ..errors import Errors, KBFormatError, Warnings
from . import kb_files, storage, views
from .alias_index import AliasIndex, index_from_arrays
from .array_checks import CheckedArrays, check_structure
from .folding import fold_accents, folded_index, merge_candidates
from .graph_features import normalize_features
from .strings import BlankStrings, StringTable
from .views import EntityArrays, build_entity_arrays

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

T = TypeVar("T")


def normalize_alias(text: str) -> str:
    """The key under which an alias is stored and looked up.

    NFKC (so full-width and compatibility forms match), whitespace runs collapsed to one
    space, then ``str.lower`` -- the same lowercasing spaCy's ``LOWER`` attribute uses, so
    a PhraseMatcher on ``LOWER`` sees exactly these strings.
    """
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


class Candidate(NamedTuple):
    """One entity an alias may refer to."""

    entity_id: int
    iri: str
    label: str
    prior: float  # P(entity | alias), summing to 1 over the alias's candidates


ARRAY_DTYPES = storage.ARRAY_DTYPES  # the arrays every KB holds (name -> dtype)
TABLE_NAMES = storage.TABLE_NAMES  # ("entities", "labels", ..., "feature_names", "descriptions")


class KnowledgeBase:
    """A compiled knowledge base: entities, aliases, types, relations, graph features.

    entities (List[str]): entity IRIs; the index is the entity id.
    labels (List[str]): preferred label per entity (original case).
    types (List[str]): class IRIs; the index is the type id.
    predicates (List[str]): relation predicate IRIs; the index is the predicate id.
    aliases (List[str]): normalised alias strings (see `normalize_alias`).
    alias_surfaces (List[str]): one original-case form per alias, for display and for
        capitalisation checks in linkers.
    feature_names (List[str]): names of the graph feature columns.
    descriptions (List[str]): one short description per entity ("" where it has none;
        all "" for a KB folder written before descriptions were kept).
    meta (dict): the content of meta.json (format version, sources, options, counts).
    """

    def __init__(self, *, tables: Mapping[str, Sequence[str]], arrays: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any] | None = None, lazy_checks: bool = False,
                 where: Path | str = "<memory>") -> None:
        """tables, arrays, meta: the KB's parts. lazy_checks (bool): check each group of
        arrays on its first use instead of now (see the module docstring); errors then
        name `where` (the folder) and the array's file."""
        for name in TABLE_NAMES:
            if name not in tables and name not in storage.OPTIONAL_TABLES:
                raise ValueError(f"KnowledgeBase: table {name!r} missing")
        for name, dtype in ARRAY_DTYPES.items():
            if name not in arrays:
                raise ValueError(f"KnowledgeBase: array {name!r} missing")
        self.meta: dict[str, Any] = dict(meta or {})
        self._where = where
        self._version = self.meta.get("format_version", storage.FORMAT_VERSION)
        # A format-2 folder's tables stay StringTables (decoded per access); others are lists.
        mapped = lazy_checks and all(isinstance(tables[name], StringTable) for name in TABLE_NAMES if name in tables)

        def table(name: str) -> Sequence[str]:
            return tables[name] if mapped else list(tables[name])

        self.entities: Sequence[str] = table("entities")
        self.labels: Sequence[str] = table("labels")
        self.types: Sequence[str] = table("types")
        self.type_labels: Sequence[str] = table("type_labels")
        self.predicates: Sequence[str] = table("predicates")
        self.aliases: Sequence[str] = table("aliases")
        self.alias_surfaces: Sequence[str] = table("alias_surfaces")
        self.feature_names: list[str] = list(tables["feature_names"])  # a handful; `.index` is used
        self.descriptions: Sequence[str] = (table("descriptions") if "descriptions" in tables
                                            else BlankStrings(len(self.entities), name="descriptions"))
        raw: dict[str, np.ndarray] = {name: np.ascontiguousarray(arrays[name], dtype=dtype)
                                      for name, dtype in ARRAY_DTYPES.items()}
        for array in raw.values():
            if array.flags.writeable:
                array.setflags(write=False)
        self._raw = raw
        self._check_lock = threading.Lock()
        check_structure(self, raw, check_tables=not mapped)
        self._arrays: CheckedArrays = CheckedArrays(self, raw, version=self._version, where=where, lazy=lazy_checks)
        self._derived: dict[Hashable, Any] = {}
        # The folder this KB was read from, and its alias index (`alias_index.py`): the
        # linker checks the index's keys and rebuilds a missing or stale one into `path`.
        self.path: Path | None = None
        self._alias_index_value: AliasIndex | None = None
        self._alias_index_reader: Callable[[], storage.Arrays | None] | None = None
        # The folder's stored entity arrays (kb/views.py), read by `entity_arrays`.
        self._entity_arrays_reader: Callable[[], storage.Arrays | None] | None = None
        # Whether a pipeline saving this KB refers to `path` instead of copying it
        # (the KB loader's `by_reference`; pipeline/serialize.py).
        self.by_reference = False

    @property
    def alias_index(self) -> AliasIndex | None:
        """The aliases tokenized for one tokenizer (`alias_index.py`), or None. Read from
        the folder on first access (it was mapped at load, from the same KB), its arrays
        used in place; a damaged one counts as none (the linker builds it again)."""
        reader = self._alias_index_reader
        if reader is not None:
            with self._check_lock:
                if self._alias_index_reader is not None:
                    try:
                        arrays = reader()
                    except ValueError:
                        arrays = None
                    self._alias_index_value = None if arrays is None else index_from_arrays(arrays)
                    self._alias_index_reader = None
        return self._alias_index_value

    @alias_index.setter
    def alias_index(self, index: AliasIndex | None) -> None:
        self._alias_index_reader = None
        self._alias_index_value = index

    def __deepcopy__(self, memo: dict[int, Any]) -> KnowledgeBase:
        # Read-only (its caches aside), so a deep copy is the KB itself; copying would also
        # fail on the memory maps of a format-2 KB (spaCy deep-copies in resume_training).
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # For multiprocessing (nlp.pipe(n_process=...)): the parts as bytes, never the maps.
        return (_restore, (self.to_bytes(), None if self.path is None else str(self.path), self.by_reference))

    # --- sizes -------------------------------------------------------------------------

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_types(self) -> int:
        return len(self.types)

    @property
    def n_predicates(self) -> int:
        return len(self.predicates)

    @property
    def n_aliases(self) -> int:
        return len(self.aliases)

    @property
    def n_relations(self) -> int:
        return int(self._raw["relation_objects"].shape[0])

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def __len__(self) -> int:
        return self.n_entities

    def __contains__(self, iri: object) -> bool:
        return iri in self._entity_index

    @cached_property
    def _entity_index(self) -> dict[str, int]:
        """Entity IRI -> id, built on the first lookup by IRI."""
        return {iri: i for i, iri in enumerate(self.entities)}

    @cached_property
    def _alias_index(self) -> dict[str, int]:
        """Normalised alias -> alias id, built on the first lookup by text."""
        return {alias: i for i, alias in enumerate(self.aliases)}

    def __repr__(self) -> str:
        return (f"<KnowledgeBase entities={self.n_entities} aliases={self.n_aliases} "
                f"types={self.n_types} predicates={self.n_predicates} relations={self.n_relations}>")

    # --- entities ----------------------------------------------------------------------

    def entity_id(self, iri: str) -> int:
        """The id of entity `iri`. Raises KeyError (E011) if it is not in the KB."""
        try:
            return self._entity_index[iri]
        except KeyError:
            raise KeyError(Errors.E011.format(iri=iri)) from None

    def get_entity_id(self, iri: str) -> int | None:
        """The id of entity `iri`, or None."""
        return self._entity_index.get(iri)

    def iri(self, entity_id: int) -> str:
        return self.entities[self._check(entity_id, self.n_entities, "entities")]

    def label(self, entity_id: int) -> str:
        return self.labels[self._check(entity_id, self.n_entities, "entities")]

    def description(self, entity_id: int) -> str:
        """The entity's description ("" when it has none)."""
        return self.descriptions[self._check(entity_id, self.n_entities, "entities")]

    # --- aliases -----------------------------------------------------------------------

    def alias_id(self, text: str) -> int | None:
        """The alias id of `text` after normalisation, or None if no entity has it."""
        return self._alias_index.get(normalize_alias(text))

    def alias_candidates(self, alias_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(entity ids int32, priors float32) of alias `alias_id`, highest prior first."""
        i = self._check(alias_id, self.n_aliases, "aliases")
        start, end = self._arrays["alias_indptr"][i : i + 2]
        return self._arrays["alias_entities"][start:end], self._arrays["alias_priors"][start:end]

    @cached_property
    def folded_alias_index(self) -> dict[str, tuple[int, ...]]:
        """Accent-folded alias -> alias ids (`folding.py`), built on first use."""
        return folded_index(self.aliases)

    def alias_ids(self, text: str) -> tuple[int, ...]:
        """The alias ids `text` matches after normalisation and accent folding: "Sao Paulo"
        matches "são paulo" (and "sao paulo", if the KB has both)."""
        return self.folded_alias_index.get(fold_accents(normalize_alias(text)), ())

    def candidates(self, text: str) -> list[Candidate]:
        """Entities `text` may refer to, highest prior first (empty if no alias matches).

        text (str): the mention; normalised with `normalize_alias` and accent-folded before
            lookup ("Sao Paulo" finds "São Paulo"; labels keep their accents).
        RETURNS (List[Candidate]): entity id, IRI, label and prior of each candidate; where
            several aliases fold to the same text, their candidates merged (`merge_candidates`).
        """
        alias_ids = self.alias_ids(text)
        if not alias_ids:
            return []
        ids, priors = merge_candidates([self.alias_candidates(a) for a in alias_ids])
        return [Candidate(int(e), self.entities[e], self.labels[e], float(p)) for e, p in zip(ids, priors)]

    def lookup(self, text: str) -> list[dict[str, Any]]:
        """Candidates for a mention with everything a caller needs to judge them.

        text (str): the mention, e.g. "Tony Blair"; normalised before lookup.
        RETURNS (List[dict]): per candidate, highest prior first: `prior` plus the fields of
            `describe` (IRI, label, direct and inferred types, graph features).
        """
        return [{"prior": c.prior, **self.describe(c.entity_id)} for c in self.candidates(text)]

    def alias_table(self) -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
        """Yield (normalised alias, entity ids, priors) for every alias."""
        indptr = self._arrays["alias_indptr"]
        ents, priors = self._arrays["alias_entities"], self._arrays["alias_priors"]
        for i, alias in enumerate(self.aliases):
            yield alias, ents[indptr[i] : indptr[i + 1]], priors[indptr[i] : indptr[i + 1]]

    # --- types, relations, graph features ----------------------------------------------

    @cached_property
    def type_index(self) -> dict[str, int]:
        """Type IRI -> type id."""
        return {iri: i for i, iri in enumerate(self.types)}

    @cached_property
    def predicate_index(self) -> dict[str, int]:
        """Predicate IRI -> predicate id."""
        return {iri: i for i, iri in enumerate(self.predicates)}

    def get_type_id(self, iri: str) -> int | None:
        """The id of type (class) `iri`, or None."""
        return self.type_index.get(iri)

    def get_predicate_id(self, iri: str) -> int | None:
        """The id of predicate `iri`, or None."""
        return self.predicate_index.get(iri)

    def types_of(self, entity_id: int, *, direct_only: bool = False) -> np.ndarray:
        """Type ids of an entity (int32), including superclasses unless `direct_only`."""
        i = self._check(entity_id, self.n_entities, "entities")
        start, end = self._arrays["type_indptr"][i : i + 2]
        ids = self._arrays["type_ids"][start:end]
        return ids[self._arrays["type_direct"][start:end]] if direct_only else ids

    def type_iris_of(self, entity_id: int, *, direct_only: bool = False) -> list[str]:
        return [self.types[t] for t in self.types_of(entity_id, direct_only=direct_only)]

    def relations_of(self, entity_id: int) -> np.ndarray:
        """Outgoing relations of an entity: int32 array (n, 2) of (predicate id, object entity id)."""
        i = self._check(entity_id, self.n_entities, "entities")
        start, end = self._arrays["relation_indptr"][i : i + 2]
        return np.stack([self._arrays["relation_predicates"][start:end],
                         self._arrays["relation_objects"][start:end]], axis=1)

    def graph_features(self, entity_id: int) -> np.ndarray:
        """Normalised graph features of an entity: float32 (n_features,), each in [0, 1]."""
        return self._features[self._check(entity_id, self.n_entities, "entities")]

    @property
    def feature_matrix(self) -> np.ndarray:
        """Normalised graph features of all entities: float32 (n_entities, n_features) in [0, 1]."""
        return self._features

    @property
    def raw_graph_features(self) -> np.ndarray:
        """Graph features as computed (degrees as counts, PageRank summing to 1, ...)."""
        return self._arrays["graph_features"]

    @cached_property
    def _features(self) -> np.ndarray:
        features = normalize_features(self._arrays["graph_features"], self.feature_names)
        features.setflags(write=False)
        return features

    @cached_property
    def entity_arrays(self) -> EntityArrays:
        """Per-entity CSR views (types, predicates, neighbours, idf) for linking and
        featurizing, made on first use: mapped from the KB folder's ``entity_arrays.npz``
        when it holds them for this KB (kb/views.py), else built (W081 when that file is
        damaged)."""
        reader, self._entity_arrays_reader = self._entity_arrays_reader, None
        try:
            stored = reader() if reader is not None else None
            arrays = views.from_stored(self, stored) if stored is not None else None
        except KBFormatError:  # the KB's own arrays are damaged (its graph features): E009/E110 as ever
            raise
        except ValueError as err:
            start = time.perf_counter()
            arrays = build_entity_arrays(self)
            warnings.warn(Warnings.W081.format(path=f"{self.path}/{storage.ENTITY_ARRAYS_FILE}", reason=err,
                                               seconds=time.perf_counter() - start), stacklevel=2)
        return arrays if arrays is not None else build_entity_arrays(self)

    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """A structure derived from this (read-only) KB, built by `build()` on the first
        call with `key` and kept as long as the KB: text-side users build their costly
        views once per KB (e.g. the alias linker's PhraseMatcher for one vocab).
        """
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def array(self, name: str) -> np.ndarray:
        """One of the raw CSR arrays (read-only), e.g. "type_indptr", "type_ids"."""
        return self._arrays[name]

    def graph(self) -> nx.MultiDiGraph:
        """The relation graph over entity ids, rebuilt from the arrays (never stored).

        Edges carry `predicate` (the predicate id) as their key and attribute.
        """
        import networkx as nx

        graph = nx.MultiDiGraph()
        graph.add_nodes_from(range(self.n_entities))
        indptr = self._arrays["relation_indptr"]
        subjects = np.repeat(np.arange(self.n_entities), np.diff(indptr))
        graph.add_edges_from(
            (int(s), int(o), int(p), {"predicate": int(p)})
            for s, p, o in zip(subjects, self._arrays["relation_predicates"], self._arrays["relation_objects"])
        )
        return graph

    def describe(self, entity_id: int) -> dict[str, Any]:
        """A JSON-ready summary of one entity (used by `sparse-expert kb lookup`)."""
        i = self._check(entity_id, self.n_entities, "entities")
        raw = self._arrays["graph_features"][i]
        return {
            "id": i,
            "iri": self.entities[i],
            "label": self.labels[i],
            "description": self.descriptions[i],
            "types": self.type_iris_of(i, direct_only=True),
            "all_types": self.type_iris_of(i),
            "n_relations": int(self.relations_of(i).shape[0]),
            "graph_features": {name: float(v) for name, v in zip(self.feature_names, raw)},
        }

    def entity(self, iri: str) -> dict[str, Any]:
        """One entity by IRI: `describe` plus its relations as (predicate IRI, object IRI).

        Raises KeyError (E011) if `iri` is not an entity of this KB.
        """
        i = self.entity_id(iri)
        relations = [(self.predicates[p], self.entities[o]) for p, o in self.relations_of(i)]
        return {**self.describe(i), "relations": relations}

    # --- construction and serialisation (kb/kb_files.py) ------------------------------

    def _parts(self) -> tuple[dict[str, Any], storage.Tables, storage.Arrays]:
        return kb_files.parts(self)

    def to_disk(self, path: str | Path, *, format_version: int = storage.FORMAT_VERSION) -> None:
        """Write the KB to directory `path` (created if needed; existing KB files replaced,
        each by a rename, so a KB mapped from `path` stays whole).

        format_version (int): 2 (default; memory-mapped on load, with the entity arrays
            stored beside: kb/views.py) or 1 (the older layout, loaded whole).
        """
        kb_files.write_kb(self, Path(path), format_version)

    @classmethod
    def from_disk(cls, path: str | Path) -> KnowledgeBase:
        """Load a KB directory. Raises KBFormatError (E009/E010) if it is not one.

        A format-2 folder is memory-mapped: this reads meta.json and a few headers, and
        each group of arrays is checked on first use (see the module docstring).
        """
        return kb_files.read_kb(cls, Path(path))

    def to_bytes(self) -> bytes:
        return kb_files.kb_to_bytes(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> KnowledgeBase:
        return kb_files.kb_from_bytes(cls, data)

    def _sizes(self) -> dict[str, int]:
        """The sizes that meta.json's `counts` of the same names must equal."""
        return {"entities": self.n_entities, "aliases": self.n_aliases,
                "alias_links": int(self._raw["alias_entities"].size), "types": self.n_types,
                "type_links": int(self._raw["type_ids"].size), "predicates": self.n_predicates,
                "relations": self.n_relations}

    def check_all(self) -> None:
        """Run every check now that a format-2 KB would run on first use (`kb info` and
        tests; raises KBFormatError E009/E110)."""
        for name in ARRAY_DTYPES:
            self._arrays[name]
        for name in TABLE_NAMES:
            table = getattr(self, name)
            for _ in table:  # decodes every string: offsets and UTF-8
                pass

    @staticmethod
    def _check(index: int, count: int, kind: str) -> int:
        index = int(index)
        if not 0 <= index < count:
            raise IndexError(Errors.E016.format(index=index, count=count, kind=kind))
        return index


def _restore(data: bytes, path: str | None, by_reference: bool) -> KnowledgeBase:
    """A KB sent to another process (`KnowledgeBase.__reduce__`)."""
    kb = KnowledgeBase.from_bytes(data)
    kb.path, kb.by_reference = (None if path is None else Path(path)), by_reference
    return kb
