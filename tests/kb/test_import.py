"""RDF -> KB compilation on the kb_small fixtures: every syntax, entity/class rules,
subClassOf closure (with a cycle), aliases and priors, relations, options, meta.json."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyoxigraph as ox
import pytest

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf

EX = "http://example.org/"
ENTITIES = {EX + name for name in ("tony_blair", "edinburgh", "london", "london_ontario", "uk", "canada",
                                   "labour", "chelsea", "chelsea_clinton", "cyclic_thing")}
FORMAT_FILES = ["kb_small.ttl", "kb_small.nt", "kb_small.nq", "kb_small.trig", "kb_small.jsonld",
                "kb_small.rdf", "kb_small.n3", "kb_small.ttl.gz", "kb_small.nt.bz2", "kb_dir"]


def signature(kb: KnowledgeBase) -> dict:
    """Everything about a KB that does not depend on triple order, by IRI."""
    rels = set()
    for e in range(kb.n_entities):
        for p, o in kb.relations_of(e).tolist():
            rels.add((kb.iri(e), kb.predicates[p], kb.iri(o)))
    return {
        "entities": {iri: kb.label(kb.entity_id(iri)) for iri in kb.entities},
        "descriptions": {iri: kb.description(kb.entity_id(iri)) for iri in kb.entities},
        "types": {iri: sorted(kb.type_iris_of(kb.entity_id(iri))) for iri in kb.entities},
        "aliases": {a: sorted((kb.iri(int(e)), round(float(p), 5)) for e, p in zip(ents, priors))
                    for a, ents, priors in kb.alias_table()},
        "relations": rels,
    }


@pytest.fixture(scope="module")
def small(fixtures_dir: Path) -> KnowledgeBase:
    return compile_kb([fixtures_dir / "kb_small.ttl"])


@pytest.mark.parametrize("name", FORMAT_FILES)
def test_every_syntax_gives_the_same_kb(fixtures_dir: Path, small: KnowledgeBase, name: str) -> None:
    kb = compile_kb([fixtures_dir / name])
    assert signature(kb) == signature(small)
    assert kb.meta["counts"]["triples"] >= 55


def test_rdflib_engine_gives_the_same_kb(fixtures_dir: Path, small: KnowledgeBase) -> None:
    for name in ("kb_small.ttl", "kb_small.trig", "kb_small.rdf"):
        assert signature(compile_kb([fixtures_dir / name], engine="rdflib")) == signature(small)


def test_format_option_overrides_the_extension(fixtures_dir: Path, tmp_path: Path, small: KnowledgeBase) -> None:
    odd = tmp_path / "graph.data"
    odd.write_bytes((fixtures_dir / "kb_small.ttl").read_bytes())
    assert signature(compile_kb([odd], format="ttl")) == signature(small)


def test_several_sources_are_merged(fixtures_dir: Path, small: KnowledgeBase) -> None:
    parts = fixtures_dir / "kb_dir"
    kb = compile_kb([parts / "part1.nt", parts / "sub" / "part2.ttl"])
    assert signature(kb) == signature(small)
    # The same file twice: RDF graphs are sets, so nothing is counted twice.
    twice = compile_kb([fixtures_dir / "kb_small.ttl", fixtures_dir / "kb_small.nt"])
    assert twice.n_relations == small.n_relations == 8
    assert signature(twice) == signature(small)


def test_entities_are_labelled_non_class_iris(small: KnowledgeBase) -> None:
    assert set(small.entities) == ENTITIES
    # classes, properties, blank nodes, unlabelled IRIs and other-language-only IRIs are not entities
    for iri in ("Person", "Politician", "Place", "bornIn", "unlabelled", "french_only"):
        assert EX + iri not in small
    assert "anonymous" not in small.aliases
    assert set(small.types) == {EX + c for c in ("Person", "Politician", "Place", "City", "Capital", "Organization",
                                                 "Club", "A", "B", "C", "Country", "Party")}
    assert small.label(small.entity_id(EX + "london")) == "London"
    assert small.type_labels[small.types.index(EX + "Politician")] == "politician"
    assert small.type_labels[small.types.index(EX + "Capital")] == "Capital"  # no label: local name


def test_subclass_closure_with_cycle(small: KnowledgeBase) -> None:
    def types(name: str, direct_only: bool = False) -> set[str]:
        return {t.removeprefix(EX) for t in small.type_iris_of(small.entity_id(EX + name), direct_only=direct_only)}

    assert types("tony_blair") == {"Politician", "Person"}
    assert types("tony_blair", direct_only=True) == {"Politician"}
    assert types("london") == {"Capital", "City", "Place"}
    assert types("chelsea") == {"Club", "Organization"}
    assert types("cyclic_thing") == {"A", "B", "C"}
    assert types("uk") == {"Country"}


def test_aliases_and_priors(small: KnowledgeBase) -> None:
    assert set(small.aliases) == {"anthony blair", "blair", "britain", "canada", "chelsea", "chelsea f.c.",
                                  "cyclic thing", "edinburgh", "labour party", "london", "london, ontario",
                                  "tony blair", "uk", "united kingdom"}
    # "London": both have a preferred label; popularity 1 + log1p(distinct neighbours): 4 vs 1.
    london = small.candidates("  LONDON ")
    assert [c.iri for c in london] == [EX + "london", EX + "london_ontario"]
    w_city, w_ontario = 1 + math.log1p(4), 1 + math.log1p(1)
    assert london[0].prior == pytest.approx(w_city / (w_city + w_ontario), rel=1e-5)
    # "Chelsea": the club has it only as altLabel (weight 0.5), the person as rdfs:label.
    chelsea = small.candidates("Chelsea")
    w_club, w_person = 0.5 * (1 + math.log1p(1)), 1.0
    assert [c.iri for c in chelsea] == [EX + "chelsea_clinton", EX + "chelsea"]
    assert chelsea[1].prior == pytest.approx(w_club / (w_club + w_person), rel=1e-5)
    for alias, ents, priors in small.alias_table():
        assert priors.sum() == pytest.approx(1.0, abs=1e-5)
        assert list(priors) == sorted(priors, reverse=True)
    assert small.candidates("Paris") == []
    assert small.alias_surfaces[small.aliases.index("uk")] == "UK"


def test_max_candidates_keeps_the_best_and_warns(fixtures_dir: Path) -> None:
    with pytest.warns(UserWarning) as record:
        kb = compile_kb([fixtures_dir / "kb_small.ttl"], max_candidates=1)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert "[SSE-W001] Alias 'chelsea' matches 2 entities" in messages[0]
    assert "[SSE-W001] Alias 'london' matches 2 entities; only the 1 with the highest prior" in messages[1]
    assert [c.iri for c in kb.candidates("London")] == [EX + "london"]
    assert kb.candidates("London")[0].prior == pytest.approx(1.0)


def test_relations(small: KnowledgeBase) -> None:
    rels = signature(small)["relations"]
    assert rels == {
        (EX + "tony_blair", EX + "bornIn", EX + "edinburgh"), (EX + "tony_blair", EX + "leaderOf", EX + "labour"),
        (EX + "tony_blair", EX + "livesIn", EX + "london"), (EX + "edinburgh", EX + "locatedIn", EX + "uk"),
        (EX + "london", EX + "locatedIn", EX + "uk"), (EX + "london_ontario", EX + "locatedIn", EX + "canada"),
        (EX + "labour", EX + "basedIn", EX + "london"), (EX + "chelsea", EX + "basedIn", EX + "london"),
    }
    assert small.relations_of(small.entity_id(EX + "uk")).shape == (0, 2)


def test_relation_filter(fixtures_dir: Path) -> None:
    kb = compile_kb([fixtures_dir / "kb_small.ttl"], relations=[EX + "locatedIn"])
    assert kb.predicates == [EX + "locatedIn"]
    assert kb.n_relations == 3
    assert set(kb.entities) == ENTITIES  # the filter limits relations, not entities


def test_languages(fixtures_dir: Path) -> None:
    french = compile_kb([fixtures_dir / "kb_small.ttl"], languages=["fr"])
    # untagged labels stay; en/en-GB labels go; French ones come in
    assert EX + "french_only" in french
    assert EX + "london" not in french  # only "London"@en
    assert EX + "canada" in french  # untagged foaf:name
    assert "seulement français" in french.aliases
    both = compile_kb([fixtures_dir / "kb_small.ttl"], languages=["fr", "en"])
    # the preferred label follows the order of --language: French first
    assert both.label(both.entity_id(EX + "tony_blair")) == "Tony Blair"
    assert set(both.entities) == ENTITIES | {EX + "french_only"}
    assert set(compile_kb([fixtures_dir / "kb_small.ttl"], languages=["*"]).entities) == set(both.entities)
    # "en" matches the regional tag en-GB
    assert EX + "edinburgh" in compile_kb([fixtures_dir / "kb_small.ttl"], languages=["EN"])


def test_label_and_type_predicates(fixtures_dir: Path) -> None:
    only_foaf = compile_kb([fixtures_dir / "kb_small.ttl"], label_predicates=["http://xmlns.com/foaf/0.1/name"])
    assert only_foaf.entities == [EX + "canada"]
    # With another type predicate, rdf:type is an ordinary relation and its objects are
    # not classes: the labelled class ex:Person becomes an entity.
    other = compile_kb([fixtures_dir / "kb_small.ttl"], type_predicate=EX + "kind")
    assert other.type_iris_of(other.entity_id(EX + "tony_blair")) == []
    assert EX + "Politician" in other.types  # still a class through rdfs:subClassOf


def test_base_resolves_relative_iris(fixtures_dir: Path) -> None:
    kb = compile_kb([fixtures_dir / "kb_relative.ttl"], base="http://example.org/rel/")
    assert set(kb.entities) == {"http://example.org/rel/thing", "http://example.org/rel/whole"}
    assert kb.n_relations == 1


def test_graph_features(small: KnowledgeBase) -> None:
    names = small.feature_names
    assert names == ["in_degree", "out_degree", "degree", "pagerank", "core_number"]
    raw = small.raw_graph_features
    london = small.entity_id(EX + "london")
    assert raw[london].tolist()[:3] == [3.0, 1.0, 4.0]
    assert raw[:, names.index("pagerank")].sum() == pytest.approx(1.0, abs=1e-5)
    assert raw[small.entity_id(EX + "uk"), names.index("pagerank")] == raw[:, names.index("pagerank")].max()
    assert raw[small.entity_id(EX + "tony_blair"), names.index("core_number")] == 2
    feats = small.feature_matrix
    assert feats.shape == (10, 5) and feats.dtype == np.float32
    assert feats.min() >= 0.0 and feats.max() == pytest.approx(1.0)
    assert np.array_equal(small.graph_features(london), feats[london])


def test_meta_records_sources_options_counts_timing(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "kb_small.ttl.gz"
    kb = import_rdf([src], tmp_path / "kb", languages=["en"])
    meta = json.loads((tmp_path / "kb" / "meta.json").read_text())
    assert meta == json.loads(json.dumps(kb.meta))
    assert meta["format_version"] == 2  # memory-mapped tables (kb/storage.py)
    (source,) = meta["sources"]
    assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert source["format"] == "turtle" and source["compression"] == ".gz"
    assert meta["options"]["languages"] == ["en"]
    assert meta["counts"]["entities"] == 10 and meta["counts"]["relations"] == 8
    triples = sum(1 for _ in ox.parse(path=fixtures_dir / "kb_small.ttl"))
    assert meta["counts"]["triples"] == triples
    assert meta["timing"]["total_seconds"] > 0


def test_progress_callback_reports_the_triple_count(fixtures_dir: Path) -> None:
    seen: list[int] = []
    kb = compile_kb([fixtures_dir / "kb_small.nt"], progress=seen.append)
    assert seen and seen[-1] == kb.meta["counts"]["triples"]


def test_networkx_graph_engine_gives_the_same_features(fixtures_dir: Path, small: KnowledgeBase) -> None:
    nx_kb = compile_kb([fixtures_dir / "kb_small.ttl"], graph_engine="networkx")
    np.testing.assert_allclose(nx_kb.raw_graph_features, small.raw_graph_features, rtol=1e-5)


@pytest.mark.slow
def test_shipped_fb15k237_graph(repo_root: Path, tmp_path: Path) -> None:
    src = repo_root / "knowledge" / "fb15k237.nt.gz"
    if not src.exists():
        pytest.skip("knowledge/fb15k237.nt.gz not built")
    kb = import_rdf([src], tmp_path / "kb")
    assert kb.n_entities > 14_000 and kb.n_relations > 250_000
    (blair,) = [c for c in kb.candidates("Tony Blair")]
    types = {t.rsplit("/type/", 1)[-1] for t in kb.type_iris_of(blair.entity_id)}
    assert {"people/person", "government/politician"} <= types
    assert KnowledgeBase.from_disk(tmp_path / "kb").n_aliases == kb.n_aliases
