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
- **description**: at most one per entity, a literal of a description predicate
  (schema:description, rdfs:comment, skos:definition, dcterms:description by default)
  in a requested language or untagged: the preferred predicate, then language, then
  the smallest text; whitespace collapsed, cut to 500 characters at a space. Stored for
  text-side features; never an alias, so it does not change linking.

Types per entity are the asserted types plus all superclasses (rdfs:subClassOf closure,
see `hierarchy.py`; cycles are fine).

Alias priors: each (alias, entity) pair gets weight 1.0 from a preferred label predicate
and 0.5 from skos:altLabel/hiddenLabel, multiplied by a popularity term
1 + log1p(degree in the relation graph); the weights of an alias's candidates are
normalised to sum to 1. Without link statistics, graph popularity is the best prior the
RDF itself gives ("Paris" -> the city before the small town).
"""
from __future__ import annotations

import contextlib
import itertools
import time
import warnings
from importlib import metadata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyoxigraph as ox

from ..errors import Errors, KBImportError, Warnings
from . import storage
from .alias_index import blank_tokenizer_key, build_blank_alias_index, check_blank_language
from .description_words import blank_description_words
from .outputs import check_kb_output
from .phases import Phase, PhaseCallback, PhaseClock
from .collect import Collected, ProgressCallback, collect_triples, unique_ints
from .graph_features import compute_graph_features
from .hierarchy import inferred_types, superclass_closure
from .knowledge_base import KnowledgeBase, normalize_alias
from .import_options import CLASS_TYPES, DEFAULT_LABEL_PREDICATES, PROPERTY_TYPES, ImportOptions, import_options
from .rdf_sources import RdfSource, read_quads, resolve_sources, sparql_source
from .oxigraph_store import BATCH as STORE_BATCH
from .oxigraph_store import StoreWriter, check_store_output, recover_store, store_lock
from .source_stream import ReadStats

QuadSink = Callable[[Sequence[ox.Quad]], None]


def _package_version() -> str:
    # from the installed distribution, not the package root: kb/ imports nothing above it
    try:
        return metadata.version("spacy-sparse-expert")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare source tree
        return "unknown"


def _csr(rows: np.ndarray, n_rows: int) -> np.ndarray:
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr


def build_kb(col: Collected, opts: ImportOptions, source_names: Sequence[str],
             clock: PhaseClock | None = None) -> tuple[KnowledgeBase, dict[str, float]]:
    """Turn collected triples into the KB tables, timing each step on ``clock``.
    RETURNS (kb, timings in seconds)."""
    clock = clock if clock is not None else PhaseClock()
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
    clock.start("entities")
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
    n_labels = len(col.labels)
    label_nodes = np.fromiter((lab[0] for lab in col.labels), dtype=np.int64, count=n_labels)
    pred_ranks = np.fromiter((lab[2] for lab in col.labels), dtype=np.int64, count=n_labels)
    lang_ranks = np.fromiter((lab[3] for lab in col.labels), dtype=np.int64, count=n_labels)
    order = np.lexsort((np.arange(n_labels), lang_ranks, pred_ranks, label_nodes))  # last key sorts first
    first = order[np.concatenate([[True], label_nodes[order][1:] != label_nodes[order][:-1]])]
    best_label: dict[int, str] = {col.labels[i][0]: col.labels[i][1] for i in first.tolist()}
    has_label = np.zeros(n_nodes, dtype=bool)
    has_label[label_nodes] = True
    entity_mask = has_label & ~is_class & ~is_property
    entity_nodes = np.flatnonzero(entity_mask)
    if entity_nodes.size == 0:
        raise KBImportError(Errors.E017.format(sources=shown))
    node_to_entity = np.full(n_nodes, -1, dtype=np.int64)
    node_to_entity[entity_nodes] = np.arange(entity_nodes.size)
    n_entities = int(entity_nodes.size)
    clock.end(entities=n_entities, classes=int(is_class.sum()))

    # --- types with closure ----------------------------------------------------------------
    clock.start("types")
    class_nodes = np.flatnonzero(is_class)
    node_to_type = np.full(n_nodes, -1, dtype=np.int64)
    node_to_type[class_nodes] = np.arange(class_nodes.size)
    ent_of_type = node_to_entity[type_s]
    keep_t = ent_of_type >= 0
    supers = superclass_closure(sub_s, sub_o, type_o[keep_t].tolist()) if sub_s.size else {}
    # Each entity's distinct asserted classes, sorted: one int key per (entity, class).
    pairs = unique_ints(ent_of_type[keep_t] * n_nodes + type_o[keep_t])
    pair_e, pair_c = (pairs // n_nodes).tolist(), (pairs % n_nodes).tolist()
    starts = [0, *(np.flatnonzero(np.diff(pairs // n_nodes)) + 1).tolist(), len(pair_c)]
    t_ids: list[int] = []
    t_direct: list[bool] = []
    t_counts: list[int] = []
    # Entities share class sets (every "person, politician"): their rows are made once.
    made: dict[tuple[int, ...], tuple[list[int], list[bool]]] = {}
    for a, b in itertools.pairwise(starts):
        asserted = tuple(pair_c[a:b])
        row = made.get(asserted)
        if row is None:
            # nearest superclasses first: the featurizer keeps an entity's first types
            inferred = inferred_types(asserted, supers)
            row = made[asserted] = ([int(node_to_type[c]) for c in (*asserted, *inferred)],
                                    [True] * len(asserted) + [False] * len(inferred))
        t_ids.extend(row[0])
        t_direct.extend(row[1])
        t_counts.append(len(row[0]))
    t_rows = np.repeat(np.asarray([pair_e[a] for a in starts[:-1]], dtype=np.int64),
                       np.asarray(t_counts, dtype=np.int64)) if pair_c else np.zeros(0, dtype=np.int64)
    type_rows = np.asarray(t_rows, dtype=np.int64)
    clock.end(types=int(class_nodes.size), type_links=len(t_ids))

    # --- relations between entities --------------------------------------------------------
    clock.start("relations")
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
    keys = unique_ints((rs[ok] * n_p + rp) * n_entities + ro[ok])
    triples = np.stack([keys // (n_p * n_entities), keys // n_entities % n_p, keys % n_entities], axis=1)
    rel_indptr = _csr(triples[:, 0], n_entities)
    clock.end(relations=int(triples.shape[0]), predicates=int(pred_nodes.size))
    t1 = time.perf_counter()

    # --- graph features, then alias priors that use them ------------------------------------
    clock.start("graph features")
    feature_names, features = compute_graph_features(n_entities, triples[:, 0], triples[:, 2], engine=opts.graph_engine)
    clock.end(entities=n_entities, features=len(feature_names))
    t2 = time.perf_counter()
    clock.start("aliases")
    popularity = 1.0 + np.log1p(features[:, feature_names.index("degree")].astype(np.float64))
    aliases, alias_surfaces, alias_indptr, alias_entities, alias_priors = _alias_table(
        col, node_to_entity, popularity, len(opts.label_predicates), opts.max_candidates)
    clock.end(aliases=len(aliases), alias_links=int(alias_entities.size))

    def label_of(node: int) -> str:
        return best_label.get(node) or _local_name(iris[node])

    described = col.descriptions
    tables = {
        "entities": [iris[n] for n in entity_nodes.tolist()],
        "labels": [best_label[n] for n in entity_nodes.tolist()],
        "descriptions": [described.get(n, "") for n in entity_nodes.tolist()],
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


def _alias_table(col: Collected, node_to_entity: np.ndarray, popularity: np.ndarray, n_label_preds: int,
                 max_candidates: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Aliases (sorted), their surface forms and CSR arrays of candidates and priors."""
    alias_ids: dict[str, int] = {}
    surfaces: dict[str, tuple[tuple[int, int], str]] = {}
    link_alias: list[int] = []
    link_entity: list[int] = []
    link_weight: list[float] = []
    normalized: dict[str, str] = {}  # many labels share a text (a family name, the same name in de and en)
    for node, text, pred_rank, lang_rank in col.labels:
        e = int(node_to_entity[node])
        if e < 0:
            continue
        key = normalized.get(text)
        if key is None:
            key = normalized[text] = normalize_alias(text)
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


def _source_meta(source: RdfSource, stats: ReadStats) -> dict[str, Any]:
    if source.kind == "file":
        # What was read, in the one pass that parsed it: a pipe has no size to stat and
        # cannot be read again to hash, and a regular file may change in between.
        return {"kind": "file", "path": source.location, "format": source.fmt.name if source.fmt else None,
                "compression": stats.compression, "bytes": stats.bytes_read, "sha256": stats.sha256}
    if source.kind == "store":
        return {"kind": "oxigraph-store", "path": source.location}
    return {"kind": "sparql", "url": source.display, "query": source.query}


def compile_kb(sources: Sequence[str | Path] = (), *, sparql: str | None = None, query: str | None = None,
               progress: ProgressCallback | None = None, phase: PhaseCallback | None = None,
               sink: QuadSink | None = None, **options: Any) -> KnowledgeBase:
    """Read RDF sources and compile them into an in-memory KnowledgeBase.

    sources (Sequence[str | Path]): RDF files (by extension, or `format`), directories of
        them, Oxigraph store directories.
    sparql (str | None): a SPARQL endpoint URL to read with a CONSTRUCT query.
    query (str | None): that CONSTRUCT query (default: every triple of the default graph).
    progress (Callable[[int], None] | None): called with the running triple count.
    phase (Callable[[Phase], None] | None): called as each step (parse, entities, types,
        relations, graph features, aliases) starts and ends, with its counts and seconds.
    sink (Callable[[Sequence[Quad]], None] | None): also given every quad read, in
        batches of `oxigraph_store.BATCH`, after the KB's pass has seen them (`--store`).
    options: fields of `ImportOptions` (label_predicates, languages, relations, base,
        max_triples, max_bytes, max_xml_depth, ...), checked by `import_options`.
    RETURNS (KnowledgeBase): with `meta` filled in (sources, options, counts, timing).

    Every source is read once (pipes and FIFOs included) and memory follows the distinct
    triples; the budgets raise E090 (bytes per source), E091 (triples), E092 (XML depth).
    """
    opts = import_options(**options)
    start = time.perf_counter()
    resolved = resolve_sources(sources, fmt=opts.format)
    if sparql:
        resolved.append(sparql_source(sparql, query))
    if not resolved:
        raise KBImportError(Errors.E004.format(path="(no source given)"))
    clock = PhaseClock(phase)
    clock.start("parse")
    col = Collected()
    stats = [ReadStats() for _ in resolved]
    for source, read in zip(resolved, stats):
        with read_quads(source, base_iri=opts.base, engine=opts.engine, timeout=opts.timeout,
                        max_bytes=opts.max_bytes, max_xml_depth=opts.max_xml_depth,
                        max_response_bytes=opts.max_response_bytes, stats=read) as quads:
            if sink is None:
                collect_triples(quads, opts, col, progress, source.display)
                continue
            batches = iter(quads)
            while batch := list(itertools.islice(batches, STORE_BATCH)):
                collect_triples(batch, opts, col, progress, source.display)
                sink(batch)
    col.finish()
    clock.end(triples=col.n_triples, sources=len(resolved))
    parse_seconds = time.perf_counter() - start
    kb, timings = build_kb(col, opts, [s.display for s in resolved], clock)
    total = time.perf_counter() - start
    kb.meta.update({
        "format": storage.KB_FORMAT,  # the marker that lets a later import replace this KB
        "format_version": storage.FORMAT_VERSION,
        "created_by": f"spacy-sparse-expert {_package_version()}",
        "sources": [_source_meta(s, read) for s, read in zip(resolved, stats)],
        "options": opts.to_meta(),
        "counts": {
            "triples": col.n_triples, "entities": kb.n_entities, "aliases": kb.n_aliases,
            "alias_links": int(kb.array("alias_entities").size), "types": kb.n_types,
            "type_links": int(kb.array("type_ids").size), "predicates": kb.n_predicates,
            "relations": kb.n_relations, "label_triples": col.n_label_triples,
            "descriptions": sum(1 for text in kb.descriptions if text),
        },
        "timing": {"parse_seconds": round(parse_seconds, 4), **timings, "total_seconds": round(total, 4),
                   "triples_per_second": round(col.n_triples / max(parse_seconds, 1e-9)),
                   "phases": dict(clock.seconds)},
    })
    return kb


def import_rdf(sources: Sequence[str | Path], output: str | Path, *, sparql: str | None = None,
               query: str | None = None, progress: ProgressCallback | None = None,
               phase: PhaseCallback | None = None, alias_index_lang: str | None = "en",
               store: str | Path | None = None, **options: Any) -> KnowledgeBase:
    """Compile RDF sources and write the KB to `output`, atomically and under a lock.

    `output` must be new, an empty directory or a KB an earlier import wrote; never a
    symlink, a source, or a directory holding or inside a source (E080-E082, checked
    before parsing and again right before the swap, leaving `output` as it was).
    Parsing and compiling happen before anything is written; the KB is written into a
    temporary directory beside `output` and renamed into place, so a failed or interrupted
    import leaves a previous KB at `output` as it was. A concurrent import into the same
    directory fails with E012. Arguments as for `compile_kb`; ``phase`` also hears of the
    last steps, alias index, entity arrays and write.
    alias_index_lang (str | None): the language of spaCy's blank tokenizer whose alias
        index (kb/alias_index.py) is written with the KB, so that pipelines using it load
        without tokenizing the aliases; None writes none (a linker then builds it on first
        use and saves it beside the KB, warning W200).
    store (str | Path | None): also load every quad read into an Oxigraph store at this
        directory (`oxigraph_store.py`: same single pass, bulk loader, written beside it
        and swapped in after the KB; new, empty or an earlier --store only: E280).
    RETURNS (KnowledgeBase): the KB that was written.
    """
    output = storage.output_path(output)
    sources = list(sources)
    store_dir = storage.output_path(store) if store is not None else None

    def check(path: Path) -> None:
        check_kb_output(path, sources)

    def check_store(path: Path) -> None:
        check_store_output(path, kb_output=output, sources=sources)

    check(output)  # fail fast: before the parent, the lock or the parse
    if alias_index_lang is not None:
        check_blank_language(alias_index_lang)
    if store_dir is not None:
        check_store(store_dir)
    created_parent = not output.parent.exists()
    output.parent.mkdir(parents=True, exist_ok=True)
    writer: StoreWriter | None = None
    try:
        with storage.import_lock(output), contextlib.ExitStack() as locks:
            storage.recover(output)  # what an import killed at any point left behind
            if store_dir is not None:
                store_dir.parent.mkdir(parents=True, exist_ok=True)
                locks.enter_context(store_lock(store_dir))
                recover_store(store_dir)
                writer = StoreWriter(store_dir)
            kb = compile_kb(sources, sparql=sparql, query=query, progress=progress, phase=phase,
                            sink=writer.add if writer is not None else None, **options)
            clock = PhaseClock(phase)
            if alias_index_lang is not None:
                clock.start("alias index")
                kb.alias_index = build_blank_alias_index(kb.alias_surfaces, alias_index_lang)
                clock.end(aliases=kb.alias_index.n_aliases, sequences=kb.alias_index.n_sequences)
                kb.meta["timing"]["phases"]["alias index"] = clock.seconds["alias index"]
            # derived once here and stored with the KB (kb/views.py), not at every load
            clock.start("entity arrays")
            arrays = kb.entity_arrays
            if alias_index_lang is not None:  # the description words, for the same blank tokenizer
                arrays.words_indptr, arrays.words = blank_description_words(kb.descriptions, alias_index_lang)
                arrays.words_tokenizer = blank_tokenizer_key(alias_index_lang)
            clock.end(entities=kb.n_entities, neighbour_links=int(arrays.nbrs.size))
            kb.meta["timing"]["phases"]["entity arrays"] = clock.seconds["entity arrays"]
            clock.start("write")
            storage.replace_dir_atomically(output, kb.to_disk, check=check)
            clock.end(bytes=sum(f.stat().st_size for f in output.rglob("*") if f.is_file()))
            # The store is swapped in last: a failure up to here leaves the KB and the store
            # as they were; a failure of this swap, the new KB and the previous store.
            if writer is not None:
                clock.start("store")
                writer.commit({"kb": str(output), "sources": kb.meta["sources"], "created_by": kb.meta["created_by"]},
                              check=check_store)
                clock.end(quads=writer.quads)
                writer = None
    except BaseException:
        if writer is not None:
            writer.discard()
        if created_parent:
            try:
                output.parent.rmdir()
            except OSError:
                pass
        raise
    return kb


__all__ = ["ImportOptions", "Phase", "PhaseCallback", "PhaseClock", "compile_kb", "import_rdf",
           "DEFAULT_LABEL_PREDICATES"]
