"""The shipped FB15k-237 graph (knowledge/fb15k237.nt.gz) and its converter."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "knowledge" / "fb15k237.nt.gz"
README = REPO / "knowledge" / "README.md"
FB = "http://rdf.freebase.com/ns/"
TYPE = "https://w3id.org/fb15k237/type/"
REL = "https://w3id.org/fb15k237/relation/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
SUBCLASS = "http://www.w3.org/2000/01/rdf-schema#subClassOf"

README_ROWS = {
    "triples": "triples",
    "entities": "entities (subjects or objects",
    "relation_triples": "relation triples",
    "relations": "relations",
    "types": "types (classes some entity has)",
    "domains": "domains",
    "entity_type_assertions": "entity `rdf:type` assertions",
    "typed_entities": "typed entities",
    "labels": "labels (entities)",
    "aliases": "aliases",
    "descriptions": "descriptions",
    "wikidata_links": "Wikidata links",
    "subclass_links": "`rdfs:subClassOf` links",
}


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_fb15k237", REPO / "knowledge" / "build_fb15k237.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def triples() -> list[tuple[str, str, str]]:
    pyoxigraph = pytest.importorskip("pyoxigraph")
    data = gzip.decompress(SHIPPED.read_bytes())
    return [(t.subject.value, t.predicate.value, t.object.value)
            for t in pyoxigraph.parse(data, format=pyoxigraph.RdfFormat.N_TRIPLES)]


def _readme_counts() -> dict[str, int]:
    text = README.read_text(encoding="utf8")
    counts = {}
    for key, row in README_ROWS.items():
        match = re.search(r"^\| " + re.escape(row) + r"[^|]*\| ([\d,]+) \|$", text, re.M)
        assert match, f"README has no row {row!r}"
        counts[key] = int(match.group(1).replace(",", ""))
    return counts


def test_shipped_counts_match_readme(build: ModuleType, triples: list[tuple[str, str, str]]) -> None:
    assert build.graph_stats(triples) == _readme_counts()


def test_shipped_checksum_and_size_match_readme() -> None:
    text = README.read_text(encoding="utf8")
    data = SHIPPED.read_bytes()
    assert hashlib.sha256(data).hexdigest() in text
    assert f"{len(data):,} bytes" in text
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0: rebuilds give the same bytes


def _types_of(triples: list[tuple[str, str, str]], mid: str) -> set[str]:
    return {o[len(TYPE):] for s, p, o in triples if s == FB + mid and p == RDF_TYPE}


def test_spot_check_real_entities(triples: list[tuple[str, str, str]]) -> None:
    labels = {s: o for s, p, o in triples if p == RDFS_LABEL}
    # Tony Blair (/m/0948xk) and Chelsea F.C. (/m/023fb), MIDs from entity2wikidata.json
    assert labels[FB + "m.0948xk"] == "Tony Blair"
    assert {"people/person", "government/politician"} <= _types_of(triples, "m.0948xk")
    assert labels[FB + "m.023fb"] == "Chelsea F.C."
    assert "soccer/football_team" in _types_of(triples, "m.023fb")
    same_as = {o for s, p, o in triples if s == FB + "m.0948xk" and p.endswith("#sameAs")}
    assert same_as == {"http://www.wikidata.org/entity/Q9545"}
    aliases = {o for s, p, o in triples if s == FB + "m.023fb" and p.endswith("#altLabel")}
    assert "Chelsea Football Club" in aliases
    subclass = {(s[len(TYPE):], o[len(TYPE):]) for s, p, o in triples if p == SUBCLASS}
    assert ("soccer/football_team", "sports/sports_team") in subclass
    assert ("government/politician", "people/person") in subclass
    assert ("film/actor", "film") in subclass
    assert labels[TYPE + "film/actor"] == "film actor"
    assert any(s == FB + "m.0948xk" and p == REL + "people/person/nationality" for s, p, _ in triples)


SLICE = {
    "entity2id.txt": "3\n/m/0948xk\t0\n/m/023fb\t1\n/m/0k_x\t2\n",
    # /film/film/country is used by no triple but makes /film/film a known type, so the
    # tail of the mediated actor -> film path is typed /film/film
    "relation2id.txt": ("3\n/film/actor/film./film/performance/film\t0\n"
                        "/base/popstra/celebrity/dated./base/popstra/dated/participant\t1\n/film/film/country\t2\n"),
    "train2id.txt": "1\n0 2 0\n",
    "valid2id.txt": "1\n1 0 1\n",
    "test2id.txt": "0\n",
}
WIKIDATA = {
    "/m/0948xk": {"label": "Tony Blair", "alternatives": ["Anthony Blair", "Tony Blair", " "],
                  "description": 'He said "hi"\\\n\ttab', "wikidata_id": "Q9545", "wikipedia": ""},
    "/m/023fb": {"label": "Chelsea F.C.", "alternatives": [], "description": "", "wikidata_id": "Q9616",
                 "wikipedia": ""},
}


def _write_slice(folder: Path) -> Path:
    folder.mkdir()
    for name, text in SLICE.items():
        (folder / name).write_text(text, encoding="utf8")
    (folder / "entity2wikidata.json").write_text(json.dumps(WIKIDATA), encoding="utf8")
    return folder


def test_converter_is_deterministic_and_valid(build: ModuleType, tmp_path: Path) -> None:
    data_dir = _write_slice(tmp_path / "data")
    build.convert(data_dir, tmp_path / "a.nt.gz")
    build.convert(data_dir, tmp_path / "b.nt.gz")
    a = (tmp_path / "a.nt.gz").read_bytes()
    assert a == (tmp_path / "b.nt.gz").read_bytes()
    text = gzip.decompress(a).decode("utf8")

    import pyoxigraph
    import rdflib

    ox = {(t.subject.value, t.predicate.value, t.object.value)
          for t in pyoxigraph.parse(text.encode(), format=pyoxigraph.RdfFormat.N_TRIPLES)}
    graph = rdflib.Graph().parse(data=text, format="nt")
    assert len(graph) == len(ox) == len(text.splitlines())
    assert {(str(s), str(p), str(o)) for s, p, o in graph} == ox
    # escaping survives both parsers
    assert (FB + "m.0948xk", "http://schema.org/description", 'He said "hi"\\\n\ttab') in ox
    # OpenKE order is head TAIL relation: "0 2 0" = Blair -[actor film]-> /m/0k_x
    assert (FB + "m.0948xk", REL + "film/actor/film./film/performance/film", FB + "m.0k_x") in ox
    types = {(s, o) for s, p, o in ox if p == RDF_TYPE and s.startswith(FB)}
    assert types == {(FB + "m.0948xk", TYPE + "film/actor"), (FB + "m.0k_x", TYPE + "film/film"),
                     (FB + "m.023fb", TYPE + "base/popstra/celebrity")}
    aliases = [o for s, p, o in ox if p.endswith("#altLabel")]
    assert aliases == ["Anthony Blair"]  # duplicates of the label and blanks dropped
    assert not any(s == FB + "m.023fb" and p == "http://schema.org/description" for s, p, _ in ox)
    assert build.graph_stats(ox)["relation_triples"] == 2


def test_iri_and_type_rules(build: ModuleType) -> None:
    assert build.entity_iri("/m/0948xk") == FB + "m.0948xk"
    assert build.head_type("/base/aareas/schema/administrative_area/capital") == "/base/aareas/schema/administrative_area"
    known = {"/film/film", "/location/country"}
    assert build.tail_type("/film/actor/film./film/performance/film", known) == "/film/film"
    assert build.tail_type("/tv/tv_program/regular_cast./tv/regular_tv_appearance/actor", known) is None
    assert build.tail_type("/people/person/nationality", known) is None
    assert build.type_label("/soccer/football_team") == "soccer football team"
    assert build.type_label("/sports/sport") == "sport"
    with pytest.raises(build.ConversionError):
        build.entity_iri("/x/bad id")
    with pytest.raises(build.ConversionError):
        build.head_type("not a path")
