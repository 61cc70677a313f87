"""Property-based tests of the RDF import.

1. Mutated files (bytes deleted, inserted, duplicated, flipped, cut off) in every syntax,
   through both parsers: the import gives a KB that satisfies the KB's invariants or a
   coded KBImportError naming the file, never another exception.
2. Generated graphs (labels of any Unicode text, types, subClassOf edges with cycles,
   relations, blank nodes, labelled classes): the KB equals what a direct reading of the
   definitions in kb/compile.py gives.

The fast runs use a fixed set of examples; --slow fuzzes with fresh ones on every run.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.knowledge_base import normalize_alias

from .conftest import FAST, SLOW, error_code

FIXTURES = Path(__file__).parent.parent / "fixtures"
BASES = {name: (FIXTURES / name).read_bytes()
         for name in ("kb_small.ttl", "kb_small.nt", "kb_small.nq", "kb_small.trig", "kb_small.jsonld", "kb_small.rdf")}


def assert_kb_invariants(kb: KnowledgeBase) -> None:
    """What every KB must satisfy, whatever the input was."""
    assert kb.n_entities >= 1 and len(kb.labels) == kb.n_entities
    assert kb.aliases == sorted(kb.aliases) and all(normalize_alias(a) == a and a for a in kb.aliases)
    for _, entities, priors in kb.alias_table():
        assert entities.size >= 1 and np.all((entities >= 0) & (entities < kb.n_entities))
        assert float(priors.sum()) == pytest.approx(1.0, abs=1e-5)
    for e in range(kb.n_entities):
        direct = set(kb.types_of(e, direct_only=True).tolist())
        assert direct <= set(kb.types_of(e).tolist())
    assert np.all(np.isfinite(kb.feature_matrix)) and np.all((kb.feature_matrix >= 0) & (kb.feature_matrix <= 1))
    again = KnowledgeBase.from_bytes(kb.to_bytes())
    assert again.entities == kb.entities and again.aliases == kb.aliases


mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 6000), st.integers(1, 40)),
    st.tuples(st.just("insert"), st.integers(0, 6000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("insert"), st.integers(0, 6000), st.sampled_from(
        [b"<", b">", b'"', b"\\", b"\n", b"@", b"[", b"{", b"}", b"\xff", b"\x00", b"\\u", b"_:", b"<!DOCTYPE"])),
    st.tuples(st.just("duplicate"), st.integers(0, 6000), st.integers(1, 80)),
    st.tuples(st.just("flip"), st.integers(0, 6000), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 6000), st.just(0)),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    buf = bytearray(data)
    for kind, position, arg in mutations:
        at = position % (len(buf) + 1)
        if kind == "delete":
            del buf[at:at + arg]
        elif kind == "insert":
            buf[at:at] = arg
        elif kind == "duplicate":
            buf[at:at] = buf[at:at + arg]
        elif kind == "flip" and buf:
            buf[at % len(buf)] ^= arg
        elif kind == "truncate":
            del buf[at:]
    return bytes(buf)


def check_mutated(tmp_path: Path, base: str, mutations: list[tuple], engine: str) -> None:
    src = tmp_path / f"mutated{Path(base).suffix}"
    src.write_bytes(mutate(BASES[base], mutations))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W001 on heavily duplicated labels
        try:
            kb = compile_kb([src], engine=engine)
        except KBImportError as err:
            assert str(src) in str(err) and error_code(str(err)).startswith("E0")
            return
    assert_kb_invariants(kb)


mutated_args = dict(base=st.sampled_from(sorted(BASES)), mutations=st.lists(mutation, min_size=1, max_size=4),
                    engine=st.sampled_from(["oxigraph", "rdflib"]))


@FAST
@given(**mutated_args)
def test_mutated_files(tmp_path: Path, base: str, mutations: list[tuple], engine: str) -> None:
    check_mutated(tmp_path, base, mutations, engine)


@pytest.mark.slow
@SLOW
@given(**mutated_args)
def test_mutated_files_fuzz(tmp_path: Path, base: str, mutations: list[tuple], engine: str) -> None:
    check_mutated(tmp_path, base, mutations, engine)


@FAST
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".ttl", ".nt", ".nq", ".trig", ".jsonld", ".rdf"]))
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    src = tmp_path / f"random{suffix}"
    src.write_bytes(data)
    try:
        compile_kb([src])
    except KBImportError as err:
        assert str(src) in str(err)


# --- generated graphs against a reference reading --------------------------------------

EX = "http://example.org/"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
SUBCLASS = "http://www.w3.org/2000/01/rdf-schema#subClassOf"

label_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
graphs = st.fixed_dictionaries({
    "labels": st.lists(st.tuples(st.integers(0, 7), label_text, st.sampled_from([None, "en", "en-GB", "fr"])),
                       max_size=14),
    "types": st.lists(st.tuples(st.integers(0, 7), st.integers(0, 4)), max_size=10),
    "subclass": st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=8),
    "relations": st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2), st.integers(0, 7)), max_size=12),
    "class_labels": st.lists(st.integers(0, 4), max_size=2),
    "blank_labels": st.integers(0, 2),
})


def literal(text: str, lang: str | None) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"' + (f"@{lang}" if lang else "")


def to_ntriples(g: dict) -> str:
    lines = [f"<{EX}e{e}> <{RDFS_LABEL}> {literal(text, lang)} ." for e, text, lang in g["labels"]]
    lines += [f"<{EX}e{e}> <{RDF_TYPE}> <{EX}C{c}> ." for e, c in g["types"]]
    lines += [f"<{EX}C{a}> <{SUBCLASS}> <{EX}C{b}> ." for a, b in g["subclass"]]
    lines += [f"<{EX}e{s}> <{EX}p{p}> <{EX}e{o}> ." for s, p, o in g["relations"]]
    lines += [f'<{EX}C{c}> <{RDFS_LABEL}> "Class {c}" .' for c in g["class_labels"]]
    lines += [f'_:b{i} <{RDFS_LABEL}> "blank {i}" .' for i in range(g["blank_labels"])]
    return "\n".join(lines) + "\n"


def reference(g: dict) -> dict:
    """The KB's content read straight off the definitions (entities are labelled IRIs
    in the wanted languages that are neither classes nor properties; types closed)."""
    classes = {c for _, c in g["types"]} | {c for edge in g["subclass"] for c in edge}
    entities = {f"{EX}e{e}" for e, _, lang in g["labels"] if lang in (None, "en", "en-GB")}
    entities |= {f"{EX}C{c}" for c in g["class_labels"] if c not in classes}  # labelled, never used as a class
    up: dict[int, set[int]] = {}
    for a, b in g["subclass"]:
        up.setdefault(a, set()).add(b)

    def closure(c: int) -> set[str]:
        seen, todo = {c}, list(up.get(c, ()))
        while todo:
            x = todo.pop()
            if x not in seen:
                seen.add(x)
                todo.extend(up.get(x, ()))
        return {f"{EX}C{x}" for x in seen}

    types = {e: set().union(*[closure(c) for x, c in g["types"] if f"{EX}e{x}" == e]) for e in entities}
    aliases: dict[str, set[str]] = {}
    for e, text, lang in g["labels"]:
        if f"{EX}e{e}" in entities and normalize_alias(text) and lang in (None, "en", "en-GB"):
            aliases.setdefault(normalize_alias(text), set()).add(f"{EX}e{e}")
    for c in g["class_labels"]:
        if f"{EX}C{c}" in entities:
            aliases.setdefault(f"class {c}", set()).add(f"{EX}C{c}")
    relations = {(f"{EX}e{s}", f"{EX}p{p}", f"{EX}e{o}") for s, p, o in g["relations"]
                 if f"{EX}e{s}" in entities and f"{EX}e{o}" in entities}
    return {"entities": entities, "types": types, "aliases": aliases, "relations": relations}


def check_graph(tmp_path: Path, g: dict, engine: str) -> None:
    src = tmp_path / "generated.nt"
    src.write_text(to_ntriples(g), encoding="utf8")
    want = reference(g)
    try:
        kb = compile_kb([src], engine=engine)
    except KBImportError as err:  # only when nothing qualifies as an entity
        assert error_code(str(err)) in ("E005", "E006", "E007", "E017", "E060"), err
        assert str(src) in str(err) and not want["entities"]
        return
    assert set(kb.entities) == want["entities"]
    for e in want["entities"]:
        assert set(kb.type_iris_of(kb.entity_id(e))) == want["types"][e]
    assert {a: {c.iri for c in kb.candidates(a)} for a in kb.aliases} == want["aliases"]
    got_relations = {(kb.entities[s], kb.predicates[p], kb.entities[o]) for s in range(kb.n_entities)
                     for p, o in kb.relations_of(s).tolist()}
    assert got_relations == want["relations"]
    assert_kb_invariants(kb)


@FAST
@given(g=graphs, engine=st.sampled_from(["oxigraph", "rdflib"]))
def test_generated_graphs_match_the_reference(tmp_path: Path, g: dict, engine: str) -> None:
    check_graph(tmp_path, g, engine)


@pytest.mark.slow
@SLOW
@given(g=graphs, engine=st.sampled_from(["oxigraph", "rdflib"]))
def test_generated_graphs_match_the_reference_fuzz(tmp_path: Path, g: dict, engine: str) -> None:
    check_graph(tmp_path, g, engine)
