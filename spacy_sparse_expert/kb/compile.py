"""Compile RDF triples into a KnowledgeBase: one streaming pass that interns IRIs and
keeps only what the KB needs, then vectorised table building.

What counts as what (documented in `kb import --help` too):

- **class**: an IRI that is the object of the type predicate (rdf:type), the subject or
  object of rdfs:subClassOf, or is itself typed rdfs:Class / owl:Class.
- **property**: an IRI used as a predicate, or typed rdf:Property / owl:*Property.
- **entity**: any other IRI with at least one label (label predicate, literal object,
  in a requested language or untagged). Blank nodes and unlabelled IRIs are not
  entities: a linker could never find them in text. Types alone do not make an entity.
- **relation**: a triple (entity, predicate, entity) whose predicate is not the type,
  subclass or a label predicate (and is in `relations`, when that is given).

Types per entity are the asserted types plus all superclasses (rdfs:subClassOf closure,
see `hierarchy.py`; cycles are fine).

Alias priors: each (alias, entity) pair gets weight 1.0 from a preferred label predicate
and 0.5 from skos:altLabel/hiddenLabel, multiplied by a popularity term
1 + log1p(degree in the relation graph); the weights of an alias's candidates are
normalised to sum to 1. Without link statistics, graph popularity is the best prior the
RDF itself gives ("Paris" -> the city before the small town).
"""
from __future__ import annotations

import time
import warnings
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyoxigraph as ox

from .. import __version__
from ..errors import Errors, KBImportError, Warnings
from . import storage
from .graph_features import ENGINES as GRAPH_ENGINES
from .graph_features import compute_graph_features, sorted_unique
from .hierarchy import superclass_closure
from .knowledge_base import KnowledgeBase, normalize_alias
from .rdf_sources import RdfSource, read_quads, resolve_sources, sha256_of, sparql_source

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
OWL = "http://www.w3.org/2002/07/owl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
RDF_TYPE = RDF + "type"
RDFS_SUBCLASS_OF = RDFS + "subClassOf"
DEFAULT_LABEL_PREDICATES: tuple[str, ...] = (
    RDFS + "label", SKOS + "prefLabel", SKOS + "altLabel", "http://schema.org/name", "http://xmlns.com/foaf/0.1/name",
)
ALT_LABEL_PREDICATES = frozenset({SKOS + "altLabel", SKOS + "hiddenLabel"})
CLASS_TYPES = frozenset({RDFS + "Class", OWL + "Class"})
PROPERTY_TYPES = frozenset({RDF + "Property", OWL + "ObjectProperty", OWL + "DatatypeProperty",
                            OWL + "AnnotationProperty", OWL + "TransitiveProperty", OWL + "SymmetricProperty",
                            OWL + "FunctionalProperty", OWL + "InverseFunctionalProperty"})
ANY_LANGUAGE = "*"

ProgressCallback = Callable[[int], None]
_PROGRESS_EVERY = 1 << 15
_IGNORE, _LABEL, _TYPE, _SUBCLASS, _RELATION = range(5)


@dataclass(frozen=True)
class ImportOptions:
    """How to read the RDF. Stored (without credentials) in meta.json."""

    label_predicates: tuple[str, ...] = DEFAULT_LABEL_PREDICATES
    languages: tuple[str, ...] = ("en",)   # untagged labels are always accepted; "*" = any
    type_predicate: str = RDF_TYPE
    subclass_predicate: str = RDFS_SUBCLASS_OF
    relations: tuple[str, ...] | None = None  # None: every predicate between two entities
    base: str | None = None
    format: str | None = None
    max_candidates: int = 30
    engine: str = "oxigraph"               # "oxigraph" (fast) or "rdflib"
    graph_engine: str = "fast"             # "fast" (numpy/scipy) or "networkx"
    timeout: float = 60.0                  # SPARQL request timeout, seconds

    def to_meta(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass
class _Collected:
    """What one pass over the triples keeps (ids index `nodes`)."""

    nodes: dict[str, int] = field(default_factory=dict)
    labels: list[tuple[int, str, int, int]] = field(default_factory=list)  # node, text, pred rank, lang rank
    other_languages: set[str] = field(default_factory=set)
    n_label_triples: int = 0
    n_blank_labels: int = 0  # label triples whose subject is a blank node (never entities)
    type_s: array = field(default_factory=lambda: array("q"))
    type_o: array = field(default_factory=lambda: array("q"))
    sub_s: array = field(default_factory=lambda: array("q"))
    sub_o: array = field(default_factory=lambda: array("q"))
    rel_s: array = field(default_factory=lambda: array("q"))
    rel_p: array = field(default_factory=lambda: array("q"))
    rel_o: array = field(default_factory=lambda: array("q"))
    predicates: dict[str, int] = field(default_factory=dict)  # every predicate IRI -> kind
    n_triples: int = 0


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


def _collect(quads: Iterable[ox.Quad], opts: ImportOptions, into: _Collected,
             progress: ProgressCallback | None) -> None:
    """The hot loop: one pass, a dict lookup per term, ints appended to arrays."""
    label_rank = {p: (i + (len(opts.label_predicates) if p in ALT_LABEL_PREDICATES else 0))
                  for i, p in enumerate(opts.label_predicates)}
    keep = set(opts.relations) if opts.relations is not None else None
    lang_rank = _language_rank(opts.languages)
    kinds = into.predicates
    nodes = into.nodes
    named, literal = ox.NamedNode, ox.Literal
    n = into.n_triples

    def intern(iri: str) -> int:
        i = nodes.get(iri)
        if i is None:
            i = nodes[iri] = len(nodes)
        return i

    def kind_of(p: str) -> int:
        if p in label_rank:
            return _LABEL
        if p == opts.type_predicate:
            return _TYPE
        if p == opts.subclass_predicate:
            return _SUBCLASS
        # A kept relation's kind is _RELATION + its node id: no second lookup per triple.
        return _RELATION + intern(p) if keep is None or p in keep else _IGNORE

    rel_s, rel_p, rel_o = into.rel_s.append, into.rel_p.append, into.rel_o.append
    for quad in quads:
        n += 1
        if progress is not None and not n & (_PROGRESS_EVERY - 1):
            progress(n)
        p = quad.predicate.value
        kind = kinds.get(p)
        if kind is None:
            kind = kinds[p] = kind_of(p)
        subject = quad.subject
        if type(subject) is not named:
            into.n_blank_labels += kind == _LABEL
            continue
        obj = quad.object
        if kind >= _RELATION:
            if type(obj) is named:
                s = nodes.get(subject.value)
                if s is None:
                    s = intern(subject.value)
                o = nodes.get(obj.value)
                if o is None:
                    o = intern(obj.value)
                rel_s(s)
                rel_p(kind - _RELATION)
                rel_o(o)
        elif kind == _LABEL:
            if type(obj) is literal:
                into.n_label_triples += 1
                rank = lang_rank(obj.language)
                if rank is None:
                    into.other_languages.add(obj.language)
                else:
                    into.labels.append((intern(subject.value), obj.value, label_rank[p], rank))
        elif kind == _TYPE:
            if type(obj) is named:
                into.type_s.append(intern(subject.value))
                into.type_o.append(intern(obj.value))
        elif kind == _SUBCLASS:
            if type(obj) is named:
                into.sub_s.append(intern(subject.value))
                into.sub_o.append(intern(obj.value))
    into.n_triples = n
    if progress is not None:
        progress(n)


def _csr(rows: np.ndarray, n_rows: int) -> np.ndarray:
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr


def build_kb(col: _Collected, opts: ImportOptions, source_names: Sequence[str]) -> tuple[KnowledgeBase, dict[str, float]]:
    """Turn collected triples into the KB tables. RETURNS (kb, timings in seconds)."""
    t0 = time.perf_counter()
    shown = ", ".join(source_names) if len(source_names) <= 3 else f"{source_names[0]} and {len(source_names) - 1} more"
    if col.n_triples == 0:
        raise KBImportError(Errors.E005.format(sources=shown, fmt=opts.format or "from the extension"))
    if col.n_label_triples == 0 and col.n_blank_labels:
        raise KBImportError(Errors.E060.format(sources=shown, count=col.n_blank_labels))
    if col.n_label_triples == 0:
        raise KBImportError(Errors.E006.format(sources=shown, predicates=list(opts.label_predicates)))
    if not col.labels:
        raise KBImportError(Errors.E007.format(sources=shown, found=sorted(col.other_languages),
                                               wanted=list(opts.languages)))
    n_nodes = len(col.nodes)
    iris = np.empty(n_nodes, dtype=object)
    iris[list(col.nodes.values())] = list(col.nodes.keys())
    type_s, type_o = np.frombuffer(col.type_s, np.int64), np.frombuffer(col.type_o, np.int64)
    sub_s, sub_o = np.frombuffer(col.sub_s, np.int64), np.frombuffer(col.sub_o, np.int64)

    # --- classes, properties, entities ---------------------------------------------------
    is_class = np.zeros(n_nodes, dtype=bool)
    is_class[type_o] = True
    is_class[sub_s] = True
    is_class[sub_o] = True
    class_typed = {col.nodes[c] for c in CLASS_TYPES if c in col.nodes}
    prop_typed = {col.nodes[c] for c in PROPERTY_TYPES if c in col.nodes}
    if class_typed:
        is_class[type_s[np.isin(type_o, list(class_typed))]] = True
    # rdfs:Class, owl:Class, rdf:Property... classify other nodes; they are not types of entities.
    is_class[list(class_typed | prop_typed)] = False
    is_property = np.zeros(n_nodes, dtype=bool)
    is_property[[col.nodes[p] for p in col.predicates if p in col.nodes]] = True
    if prop_typed:
        is_property[type_s[np.isin(type_o, list(prop_typed))]] = True

    # Best label per node: lowest (predicate rank, language rank), first seen on ties.
    label_nodes = np.fromiter((lab[0] for lab in col.labels), dtype=np.int64, count=len(col.labels))
    order = sorted(range(len(col.labels)), key=lambda i: (col.labels[i][0], col.labels[i][2], col.labels[i][3], i))
    best_label: dict[int, str] = {}
    for i in order:
        best_label.setdefault(col.labels[i][0], col.labels[i][1])
    has_label = np.zeros(n_nodes, dtype=bool)
    has_label[label_nodes] = True
    entity_mask = has_label & ~is_class & ~is_property
    entity_nodes = np.flatnonzero(entity_mask)
    if entity_nodes.size == 0:
        raise KBImportError(Errors.E017.format(sources=shown))
    node_to_entity = np.full(n_nodes, -1, dtype=np.int64)
    node_to_entity[entity_nodes] = np.arange(entity_nodes.size)
    n_entities = int(entity_nodes.size)

    # --- types with closure ----------------------------------------------------------------
    class_nodes = np.flatnonzero(is_class)
    node_to_type = np.full(n_nodes, -1, dtype=np.int64)
    node_to_type[class_nodes] = np.arange(class_nodes.size)
    ent_of_type = node_to_entity[type_s]
    keep_t = ent_of_type >= 0
    supers = superclass_closure(sub_s, sub_o, type_o[keep_t].tolist()) if sub_s.size else {}
    direct: dict[int, set[int]] = {}
    for e, c in zip(ent_of_type[keep_t].tolist(), type_o[keep_t].tolist()):
        direct.setdefault(e, set()).add(c)
    t_rows: list[int] = []
    t_ids: list[int] = []
    t_direct: list[bool] = []
    for e in sorted(direct):
        asserted = direct[e]
        inferred: set[int] = set()
        for c in asserted:
            inferred |= supers.get(c, frozenset())
        for c in sorted(asserted):
            t_rows.append(e), t_ids.append(int(node_to_type[c])), t_direct.append(True)
        for c in sorted(inferred - asserted):
            t_rows.append(e), t_ids.append(int(node_to_type[c])), t_direct.append(False)
    type_rows = np.asarray(t_rows, dtype=np.int64)

    # --- relations between entities --------------------------------------------------------
    rs = node_to_entity[np.frombuffer(col.rel_s, np.int64)]
    ro = node_to_entity[np.frombuffer(col.rel_o, np.int64)]
    rp_nodes = np.frombuffer(col.rel_p, np.int64)
    ok = (rs >= 0) & (ro >= 0)
    used = np.zeros(n_nodes, dtype=bool)
    used[rp_nodes[ok]] = True
    pred_nodes = np.flatnonzero(used)  # predicate ids in node (first-seen) order
    rp = (np.cumsum(used) - 1)[rp_nodes[ok]]
    # RDF graphs are sets: drop repeated triples (one int64 key each, sorted by s, p, o).
    n_p = max(len(pred_nodes), 1)
    keys = sorted_unique((rs[ok] * n_p + rp) * n_entities + ro[ok])
    triples = np.stack([keys // (n_p * n_entities), keys // n_entities % n_p, keys % n_entities], axis=1)
    rel_indptr = _csr(triples[:, 0], n_entities)
    t1 = time.perf_counter()

    # --- graph features, then alias priors that use them ------------------------------------
    feature_names, features = compute_graph_features(n_entities, triples[:, 0], triples[:, 2], engine=opts.graph_engine)
    t2 = time.perf_counter()
    popularity = 1.0 + np.log1p(features[:, feature_names.index("degree")].astype(np.float64))
    aliases, alias_surfaces, alias_indptr, alias_entities, alias_priors = _alias_table(
        col, node_to_entity, popularity, len(opts.label_predicates), opts.max_candidates)

    def label_of(node: int) -> str:
        return best_label.get(node) or _local_name(iris[node])

    tables = {
        "entities": [iris[n] for n in entity_nodes.tolist()],
        "labels": [best_label[n] for n in entity_nodes.tolist()],
        "types": [iris[n] for n in class_nodes.tolist()],
        "type_labels": [label_of(n) for n in class_nodes.tolist()],
        "predicates": [iris[n] for n in pred_nodes.tolist()],
        "aliases": aliases,
        "alias_surfaces": alias_surfaces,
        "feature_names": feature_names,
    }
    arrays = {
        "alias_indptr": alias_indptr, "alias_entities": alias_entities, "alias_priors": alias_priors,
        "type_indptr": _csr(type_rows, n_entities), "type_ids": np.asarray(t_ids, dtype=np.int32),
        "type_direct": np.asarray(t_direct, dtype=bool),
        "relation_indptr": rel_indptr, "relation_predicates": triples[:, 1].astype(np.int32),
        "relation_objects": triples[:, 2].astype(np.int32), "graph_features": features,
    }
    kb = KnowledgeBase(tables=tables, arrays=arrays)
    t3 = time.perf_counter()
    return kb, {"tables_seconds": round(t1 - t0 + t3 - t2, 4), "graph_seconds": round(t2 - t1, 4)}


def _alias_table(col: _Collected, node_to_entity: np.ndarray, popularity: np.ndarray, n_label_preds: int,
                 max_candidates: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Aliases (sorted), their surface forms and CSR arrays of candidates and priors."""
    alias_ids: dict[str, int] = {}
    surfaces: dict[str, tuple[tuple[int, int], str]] = {}
    link_alias: list[int] = []
    link_entity: list[int] = []
    link_weight: list[float] = []
    for node, text, pred_rank, lang_rank in col.labels:
        e = int(node_to_entity[node])
        if e < 0:
            continue
        key = normalize_alias(text)
        if not key:
            continue
        a = alias_ids.get(key)
        if a is None:
            a = alias_ids[key] = len(alias_ids)
        link_alias.append(a)
        link_entity.append(e)
        link_weight.append(0.5 if pred_rank >= n_label_preds else 1.0)
        rank = (pred_rank, lang_rank)
        if key not in surfaces or rank < surfaces[key][0]:
            surfaces[key] = (rank, text.strip())
    keys = sorted(alias_ids)
    new_id = np.empty(len(keys), dtype=np.int64)
    new_id[[alias_ids[k] for k in keys]] = np.arange(len(keys))
    alias = new_id[np.asarray(link_alias, dtype=np.int64)]
    entity = np.asarray(link_entity, dtype=np.int64)
    score = np.asarray(link_weight) * popularity[entity]
    # Sort by alias, then score descending, then entity id; keep each (alias, entity) once
    # (its best-scoring label) and at most `max_candidates` per alias.
    order = np.lexsort((entity, -score, alias))
    alias, entity, score = alias[order], entity[order], score[order]
    pair = alias * max(len(node_to_entity), 1) + entity
    _, first = np.unique(pair, return_index=True)
    first.sort()
    alias, entity, score = alias[first], entity[first], score[first]
    counts = np.bincount(alias, minlength=len(keys))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    rank_in_alias = np.arange(alias.size) - starts[alias]
    over = np.flatnonzero(counts > max_candidates)
    for a in over[:5].tolist():
        warnings.warn(Warnings.W001.format(alias=keys[a], count=int(counts[a]), keep=max_candidates), stacklevel=4)
    keep = rank_in_alias < max_candidates
    alias, entity, score = alias[keep], entity[keep], score[keep]
    totals = np.bincount(alias, weights=score, minlength=len(keys))
    priors = (score / totals[alias]).astype(np.float32)
    indptr = _csr(alias, len(keys))
    return keys, [surfaces[k][1] for k in keys], indptr, entity.astype(np.int32), priors


def _local_name(iri: str) -> str:
    for sep in ("#", "/", ":"):
        if sep in iri.rstrip(sep):
            return iri.rstrip(sep).rsplit(sep, 1)[1]
    return iri


def _source_meta(source: RdfSource) -> dict[str, Any]:
    if source.kind == "file":
        path = Path(source.location)
        return {"kind": "file", "path": str(path), "format": source.fmt.name if source.fmt else None,
                "compression": source.compression, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    if source.kind == "store":
        return {"kind": "oxigraph-store", "path": source.location}
    return {"kind": "sparql", "url": source.display, "query": source.query}


def compile_kb(sources: Sequence[str | Path] = (), *, sparql: str | None = None, query: str | None = None,
               progress: ProgressCallback | None = None, **options: Any) -> KnowledgeBase:
    """Read RDF sources and compile them into an in-memory KnowledgeBase.

    sources (Sequence[str | Path]): RDF files (by extension, or `format`), directories of
        them, Oxigraph store directories.
    sparql (str | None): a SPARQL endpoint URL to read with a CONSTRUCT query.
    query (str | None): that CONSTRUCT query (default: every triple of the default graph).
    progress (Callable[[int], None] | None): called with the running triple count.
    options: fields of `ImportOptions` (label_predicates, languages, relations, base, ...).
    RETURNS (KnowledgeBase): with `meta` filled in (sources, options, counts, timing).
    """
    opts = ImportOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
    if opts.engine not in ("oxigraph", "rdflib"):
        raise KBImportError(Errors.E033.format(key="engine", value=opts.engine, reason="use 'oxigraph' or 'rdflib'"))
    if opts.graph_engine not in GRAPH_ENGINES:
        raise KBImportError(Errors.E033.format(key="graph_engine", value=opts.graph_engine,
                                               reason=f"use one of {', '.join(GRAPH_ENGINES)}"))
    start = time.perf_counter()
    resolved = resolve_sources(sources, fmt=opts.format)
    if sparql:
        resolved.append(sparql_source(sparql, query))
    if not resolved:
        raise KBImportError(Errors.E004.format(path="(no source given)"))
    col = _Collected()
    for source in resolved:
        with read_quads(source, base_iri=opts.base, engine=opts.engine, timeout=opts.timeout) as quads:
            _collect(quads, opts, col, progress)
    parse_seconds = time.perf_counter() - start
    kb, timings = build_kb(col, opts, [s.display for s in resolved])
    total = time.perf_counter() - start
    kb.meta.update({
        "format_version": storage.FORMAT_VERSION,
        "created_by": f"spacy-sparse-expert {__version__}",
        "sources": [_source_meta(s) for s in resolved],
        "options": opts.to_meta(),
        "counts": {
            "triples": col.n_triples, "entities": kb.n_entities, "aliases": kb.n_aliases,
            "alias_links": int(kb.array("alias_entities").size), "types": kb.n_types,
            "type_links": int(kb.array("type_ids").size), "predicates": kb.n_predicates,
            "relations": kb.n_relations, "label_triples": col.n_label_triples,
        },
        "timing": {"parse_seconds": round(parse_seconds, 4), **timings, "total_seconds": round(total, 4),
                   "triples_per_second": round(col.n_triples / max(parse_seconds, 1e-9))},
    })
    return kb


def import_rdf(sources: Sequence[str | Path], output: str | Path, *, sparql: str | None = None,
               query: str | None = None, progress: ProgressCallback | None = None,
               **options: Any) -> KnowledgeBase:
    """Compile RDF sources and write the KB to `output`, atomically and under a lock.

    Parsing and compiling happen before anything is written; the KB is written into a
    temporary directory beside `output` and renamed into place, so a failed or interrupted
    import leaves a previous KB at `output` as it was. A concurrent import into the same
    directory fails with E012. Arguments as for `compile_kb`.
    RETURNS (KnowledgeBase): the KB that was written.
    """
    output = Path(output).absolute()
    created_parent = not output.parent.exists()
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with storage.import_lock(output):
            storage.recover(output)  # what an import killed at any point left behind
            kb = compile_kb(sources, sparql=sparql, query=query, progress=progress, **options)
            storage.replace_dir_atomically(output, kb.to_disk)
    except BaseException:
        if created_parent:
            try:
                output.parent.rmdir()
            except OSError:
                pass
        raise
    return kb


__all__ = ["ImportOptions", "compile_kb", "import_rdf", "DEFAULT_LABEL_PREDICATES"]
