"""The KnowledgeBase API: lookups, round trips (disk and bytes), damaged directories,
graph features (fast engine == networkx)."""
from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBFormatError
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.graph_features import compute_graph_features, core_numbers, pagerank
from spacy_sparse_expert.kb.knowledge_base import Candidate, normalize_alias

EX = "http://example.org/"


@pytest.fixture(scope="module")
def kb(fixtures_dir: Path) -> KnowledgeBase:
    return compile_kb([fixtures_dir / "kb_small.ttl"])


def assert_same_kb(a: KnowledgeBase, b: KnowledgeBase) -> None:
    for name in storage_tables():
        assert getattr(a, name) == getattr(b, name), name
    for name in ("alias_indptr", "alias_entities", "alias_priors", "type_indptr", "type_ids", "type_direct",
                 "relation_indptr", "relation_predicates", "relation_objects", "graph_features"):
        assert a.array(name).dtype == b.array(name).dtype
        np.testing.assert_array_equal(a.array(name), b.array(name))
    assert json.loads(json.dumps(a.meta)) == b.meta


def storage_tables() -> tuple[str, ...]:
    from spacy_sparse_expert.kb.knowledge_base import TABLE_NAMES

    return TABLE_NAMES


def test_sizes_and_membership(kb: KnowledgeBase) -> None:
    assert (kb.n_entities, kb.n_aliases, kb.n_types, kb.n_predicates, kb.n_relations) == (10, 14, 12, 5, 8)
    assert len(kb) == 10 and kb.n_features == 5
    assert EX + "london" in kb and EX + "Person" not in kb
    assert "entities=10" in repr(kb)


def test_entity_lookups(kb: KnowledgeBase) -> None:
    i = kb.entity_id(EX + "tony_blair")
    assert kb.iri(i) == EX + "tony_blair" and kb.label(i) == "Tony Blair"
    assert kb.get_entity_id(EX + "nobody") is None
    with pytest.raises(KeyError, match=r"SSE-E011.*nobody.*kb lookup"):
        kb.entity_id(EX + "nobody")
    with pytest.raises(IndexError, match=r"SSE-E016.*99"):
        kb.label(99)
    with pytest.raises(IndexError, match=r"SSE-E016"):
        kb.types_of(-1)


def test_candidates(kb: KnowledgeBase) -> None:
    (c,) = kb.candidates("Anthony  Blair")
    assert isinstance(c, Candidate)
    assert c == Candidate(kb.entity_id(EX + "tony_blair"), EX + "tony_blair", "Tony Blair", 1.0)
    alias = kb.alias_id("LONDON")
    assert alias is not None and kb.aliases[alias] == "london" and kb.alias_surfaces[alias] == "London"
    ents, priors = kb.alias_candidates(alias)
    assert ents.dtype == np.int32 and priors.dtype == np.float32
    assert [kb.iri(e) for e in ents] == [EX + "london", EX + "london_ontario"]
    assert kb.alias_id("nowhere") is None and kb.candidates("") == []


def test_normalize_alias() -> None:
    assert normalize_alias("  New\tYork  City ") == "new york city"
    assert normalize_alias("ＵＫ") == "uk"  # full-width forms (NFKC)
    assert normalize_alias("Straße") == "straße"  # lower(), like spaCy's LOWER, not casefold()


def test_types_relations_describe(kb: KnowledgeBase) -> None:
    london = kb.entity_id(EX + "london")
    assert kb.types_of(london).dtype == np.int32
    assert kb.type_iris_of(london, direct_only=True) == [EX + "Capital"]
    rels = kb.relations_of(kb.entity_id(EX + "tony_blair"))
    assert rels.shape == (3, 2) and rels.dtype == np.int32
    desc = kb.describe(london)
    assert desc["iri"] == EX + "london" and desc["types"] == [EX + "Capital"]
    assert set(desc["all_types"]) == {EX + "Capital", EX + "City", EX + "Place"}
    assert desc["graph_features"]["degree"] == 4.0 and desc["n_relations"] == 1
    json.dumps(desc)


def test_arrays_are_read_only(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError):
        kb.array("alias_priors")[0] = 0.5
    with pytest.raises(ValueError):
        kb.feature_matrix[0, 0] = 1.0


def test_graph_is_rebuilt_from_arrays(kb: KnowledgeBase) -> None:
    graph = kb.graph()
    assert isinstance(graph, nx.MultiDiGraph)
    assert graph.number_of_nodes() == 10 and graph.number_of_edges() == 8
    tony, london = kb.entity_id(EX + "tony_blair"), kb.entity_id(EX + "london")
    (key,) = graph[tony][london]
    assert kb.predicates[key] == EX + "livesIn"


def test_disk_round_trip(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.to_disk(tmp_path / "kb", format_version=1)
    assert sorted(p.name for p in (tmp_path / "kb").iterdir()) == ["arrays.npz", "meta.json", "tables.msgpack"]
    loaded = KnowledgeBase.from_disk(tmp_path / "kb")
    assert_same_kb(kb, loaded)
    assert loaded.candidates("london") == kb.candidates("london")
    # the arrays file is a plain npz that loads without pickle
    with np.load(tmp_path / "kb" / "arrays.npz", allow_pickle=False) as npz:
        assert "alias_priors" in npz.files


def test_bytes_round_trip(kb: KnowledgeBase) -> None:
    data = kb.to_bytes()
    assert isinstance(data, bytes)
    loaded = KnowledgeBase.from_bytes(data)
    assert_same_kb(kb, loaded)
    assert loaded.to_bytes() == data


def test_damaged_directories(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(KBFormatError, match=r"SSE-E009.*no such directory"):
        KnowledgeBase.from_disk(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KBFormatError, match=r"SSE-E009.*missing meta\.json.*kb import"):
        KnowledgeBase.from_disk(tmp_path / "empty")
    kb.to_disk(tmp_path / "old", format_version=1)
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    meta["format_version"] = 0
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(KBFormatError, match=r"SSE-E010.*version 0.*reads version 1 or 2"):
        KnowledgeBase.from_disk(tmp_path / "old")
    kb.to_disk(tmp_path / "bad", format_version=1)
    (tmp_path / "bad" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(KBFormatError, match=r"SSE-E009.*unreadable"):
        KnowledgeBase.from_disk(tmp_path / "bad")
    with pytest.raises(KBFormatError, match=r"SSE-E009"):
        KnowledgeBase.from_bytes(b"\x93not msgpack")


def test_pickled_arrays_are_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.to_disk(tmp_path / "kb", format_version=1)
    arrays = dict(np.load(tmp_path / "kb" / "arrays.npz", allow_pickle=False))
    arrays["alias_priors"] = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "kb" / "arrays.npz", **arrays)
    with pytest.raises(KBFormatError, match=r"SSE-E009"):
        KnowledgeBase.from_disk(tmp_path / "kb")


def test_compile_kb_in_memory(fixtures_dir: Path) -> None:
    kb = compile_kb([fixtures_dir / "kb_small.nt"], languages=["en"])
    assert kb.n_entities == 10 and kb.meta["format_version"] == storage.FORMAT_VERSION


def random_graph(seed: int, n: int = 300, m: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # heavy-tailed targets plus some self-loops and duplicates
    src = rng.integers(0, n, m)
    dst = np.minimum(rng.zipf(1.6, m) - 1, n - 1)
    return src, dst


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_graph_features_equal_networkx(seed: int) -> None:
    src, dst = random_graph(seed)
    names, fast = compute_graph_features(300, src, dst, engine="fast")
    _, slow = compute_graph_features(300, src, dst, engine="networkx")
    np.testing.assert_array_equal(fast[:, [0, 1, 2, 4]], slow[:, [0, 1, 2, 4]])
    np.testing.assert_allclose(fast[:, 3], slow[:, 3], rtol=1e-5)


def test_core_numbers_and_pagerank_match_networkx_directly() -> None:
    graph = nx.karate_club_graph()
    edges = np.array(graph.edges())
    expected = nx.core_number(graph)
    assert core_numbers(34, edges[:, 0], edges[:, 1]).tolist() == [expected[i] for i in range(34)]
    digraph = nx.gnp_random_graph(60, 0.08, seed=3, directed=True)
    e = np.array(digraph.edges())
    pr = nx.pagerank(digraph, tol=1e-10)
    np.testing.assert_allclose(pagerank(60, e[:, 0], e[:, 1], tol=1e-10), [pr[i] for i in range(60)], rtol=1e-6)


def test_graph_features_of_an_empty_graph() -> None:
    names, feats = compute_graph_features(3, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert feats.shape == (3, 5)
    assert feats[:, names.index("pagerank")] == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="graph engine"):
        compute_graph_features(3, np.array([0]), np.array([1]), engine="igraph")


def test_lookup_and_entity(tmp_path):
    ttl = tmp_path / "g.ttl"
    ttl.write_text(
        "@prefix ex: <http://example.org/> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "ex:Politician rdfs:subClassOf ex:Person .\n"
        'ex:blair a ex:Politician ; rdfs:label "Tony Blair"@en ; ex:memberOf ex:labour .\n'
        'ex:labour rdfs:label "Labour Party"@en .\n',
        encoding="utf8",
    )
    kb = compile_kb([ttl])
    (hit,) = kb.lookup("tony  BLAIR")
    assert hit["iri"] == "http://example.org/blair" and hit["prior"] == 1.0
    assert set(hit["all_types"]) == {"http://example.org/Politician", "http://example.org/Person"}
    record = kb.entity("http://example.org/blair")
    assert record["relations"] == [("http://example.org/memberOf", "http://example.org/labour")]
    assert kb.lookup("Gordon Brown") == []
    with pytest.raises(KeyError, match="SSE-E011"):
        kb.entity("http://example.org/nobody")
