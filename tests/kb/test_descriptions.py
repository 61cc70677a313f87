"""Entity descriptions (schema:description, rdfs:comment, skos:definition,
dcterms:description): one per entity, chosen by predicate, then language, then the
smallest text; stored as a string table, blank in KB folders written before; never an
alias. Every way of reading triples (files with either parser, an Oxigraph store, a
SPARQL endpoint, --store) gives the same descriptions."""
from __future__ import annotations

import gzip
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pyoxigraph as ox
import pytest
from typer.testing import CliRunner

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.collect import MAX_DESCRIPTION_CHARS, clean_description
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf
from spacy_sparse_expert.kb.import_options import DEFAULT_DESCRIPTION_PREDICATES

from .test_import_sources import oxigraph_endpoint

EX = "http://example.org/"
SCHEMA_DESCRIPTION = "http://schema.org/description"
SHIPPED = Path(__file__).resolve().parents[2] / "knowledge" / "fb15k237.nt.gz"
LONG_WORDS = " ".join(f"word{i:03d}" for i in range(100))  # 799 characters, a space every 8
GRAPH = f"""\
@prefix ex: <{EX}> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix schema: <http://schema.org/> .
@prefix dcterms: <http://purl.org/dc/terms/> .

ex:Capital a rdfs:Class ; rdfs:label "Capital"@en ; rdfs:comment "a class, not an entity"@en .
ex:paris a ex:Capital ; rdfs:label "Paris"@en ; ex:twinnedWith ex:rome ;
    schema:description "  capital and   largest city\\n of France "@en , "capitale de la France"@fr ;
    rdfs:comment "a city"@en ;
    dcterms:description ex:paris_page .
ex:berlin rdfs:label "Berlin"@en ; rdfs:comment "Hauptstadt Deutschlands"@de , "capital of Germany" .
ex:madrid rdfs:label "Madrid"@en ; schema:description "capitale de l'Espagne"@fr ;
    rdfs:comment "capital of Spain"@en .
ex:rome rdfs:label "Rome"@en ; skos:definition "the eternal city"@en , "an eternal city"@en-GB .
ex:oslo rdfs:label "Oslo"@en ; dcterms:description "   "@en ; schema:description "hovedstaden i Norge"@no ;
    ex:blurb "Oslo, a blurb" .
ex:nowhere rdfs:label "Nowhere"@en ; ex:blurb "a place without a description" .
ex:long rdfs:label "Long"@en ; schema:description "{LONG_WORDS}"@en .
ex:ghost schema:description "described, but with no label: not an entity"@en .
ex:paris_page rdfs:label "Paris (web page)"@en .
"""
ENGLISH = {
    "paris": "capital and largest city of France",     # schema:description before rdfs:comment; spaces collapsed
    "berlin": "capital of Germany",                     # untagged is kept; German is not wanted
    "madrid": "capital of Spain",                       # schema:description only in French
    "rome": "an eternal city",                          # en and en-GB rank the same: the smallest text
    "oslo": "",                                         # blank, and Norwegian is not wanted
    "nowhere": "",
    "long": LONG_WORDS[:LONG_WORDS.rindex(" ", 0, MAX_DESCRIPTION_CHARS + 1)],
    "paris_page": "",
}


def descriptions(kb: KnowledgeBase) -> dict[str, str]:
    """Local name -> description, for every entity."""
    return {iri.removeprefix(EX): kb.description(i) for i, iri in enumerate(kb.entities)}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("descriptions") / "graph.ttl"
    path.write_text(GRAPH, encoding="utf8")
    return path


@pytest.fixture(scope="module")
def english(graph: Path) -> KnowledgeBase:
    return compile_kb([graph])


def test_one_description_per_entity(english: KnowledgeBase) -> None:
    assert descriptions(english) == ENGLISH
    assert english.meta["counts"]["descriptions"] == 5
    assert english.meta["options"]["description_predicates"] == list(DEFAULT_DESCRIPTION_PREDICATES)
    assert len(english.descriptions) == english.n_entities
    paris = english.entity_id(EX + "paris")
    assert english.describe(paris)["description"] == ENGLISH["paris"]
    assert english.entity(EX + "paris")["description"] == ENGLISH["paris"]
    assert english.lookup("Paris")[0]["description"] == ENGLISH["paris"]


def test_an_iri_object_of_a_description_predicate_stays_a_relation(english: KnowledgeBase) -> None:
    relations = {(english.predicates[p], english.entities[o])
                 for p, o in english.relations_of(english.entity_id(EX + "paris")).tolist()}
    assert relations == {(EX + "twinnedWith", EX + "rome"),
                         ("http://purl.org/dc/terms/description", EX + "paris_page")}


def test_language_order_then_predicate_order(graph: Path) -> None:
    kb = compile_kb([graph], languages=["fr", "de", "en"])
    assert descriptions(kb) == {**ENGLISH, "paris": "capitale de la France", "berlin": "Hauptstadt Deutschlands",
                                "madrid": "capitale de l'Espagne"}
    # the predicate comes first: Madrid's English rdfs:comment loses to its French schema:description
    assert descriptions(compile_kb([graph], languages=["en", "fr"]))["madrid"] == "capitale de l'Espagne"
    assert descriptions(compile_kb([graph], languages=["*"]))["oslo"] == "hovedstaden i Norge"


def test_the_choice_does_not_depend_on_triple_order(graph: Path, english: KnowledgeBase, tmp_path: Path) -> None:
    lines = ox.serialize(ox.parse(path=str(graph), format=ox.RdfFormat.TURTLE),
                         format=ox.RdfFormat.N_TRIPLES).decode().splitlines()
    for name, ordered in (("reversed.nt", lines[::-1]), ("sorted.nt", sorted(lines))):
        (tmp_path / name).write_text("\n".join(ordered) + "\n", encoding="utf8")
        assert descriptions(compile_kb([tmp_path / name])) == ENGLISH, name


def test_descriptions_do_not_change_linking(graph: Path, english: KnowledgeBase) -> None:
    none = compile_kb([graph], description_predicates=[])
    assert set(descriptions(none).values()) == {""} and none.meta["counts"]["descriptions"] == 0
    assert none.meta["options"]["description_predicates"] == []
    for name in storage.TABLE_NAMES:
        if name != "descriptions":
            assert list(getattr(none, name)) == list(getattr(english, name)), name
    for name in storage.ARRAY_NAMES:
        np.testing.assert_array_equal(none.array(name), english.array(name))
    assert english.candidates("the eternal city") == [] and english.candidates("a city") == []


def test_other_description_predicates(graph: Path) -> None:
    kb = compile_kb([graph], description_predicates=[EX + "blurb", "http://www.w3.org/2000/01/rdf-schema#comment"])
    found = descriptions(kb)
    assert (found["oslo"], found["nowhere"]) == ("Oslo, a blurb", "a place without a description")
    assert (found["paris"], found["berlin"], found["rome"]) == ("a city", "capital of Germany", "")
    with pytest.raises(KBImportError, match=r"SSE-E094.*description_predicates"):
        compile_kb([graph], description_predicates=[""])


def test_clean_description() -> None:
    assert clean_description(" a\tb \n\n c ") == "a b c"
    assert clean_description("x" * 600) == "x" * MAX_DESCRIPTION_CHARS  # one word: cut inside it
    exact = "a" * (MAX_DESCRIPTION_CHARS - 2) + " b c"  # the space right after the limit is a clean cut
    assert clean_description(exact) == exact[:MAX_DESCRIPTION_CHARS]
    assert len(ENGLISH["long"]) <= MAX_DESCRIPTION_CHARS and LONG_WORDS.startswith(ENGLISH["long"] + " ")


def test_saved_and_loaded_in_every_form(english: KnowledgeBase, tmp_path: Path) -> None:
    english.to_disk(tmp_path / "v2")
    loaded = KnowledgeBase.from_disk(tmp_path / "v2")
    assert descriptions(loaded) == ENGLISH
    assert json.loads((tmp_path / "v2" / "meta.json").read_text())["tables"]["descriptions"][1] > 0
    assert descriptions(KnowledgeBase.from_bytes(loaded.to_bytes())) == ENGLISH
    english.to_disk(tmp_path / "v1", format_version=1)
    assert descriptions(KnowledgeBase.from_disk(tmp_path / "v1")) == ENGLISH


def test_the_content_digest_covers_descriptions(graph: Path, tmp_path: Path) -> None:
    compile_kb([graph]).to_disk(tmp_path / "with")
    compile_kb([graph], description_predicates=[]).to_disk(tmp_path / "without")
    digests = [json.loads((tmp_path / name / "meta.json").read_text())["content_sha256"] for name in ("with", "without")]
    assert digests[0] != digests[1]


def _drop_descriptions(folder: Path) -> None:
    """Make a format-2 folder what a version without descriptions wrote: the same files
    without the last string table (meta.json's content_sha256 left as it was, so the
    stored entity arrays still belong to it)."""
    meta = json.loads((folder / "meta.json").read_text())
    first, _ = meta["tables"].pop("descriptions")
    offsets = np.load(folder / storage.OFFSETS_FILE)
    np.save(folder / storage.OFFSETS_FILE, offsets[: first + 1])
    blob = (folder / storage.STRINGS_FILE).read_bytes()
    (folder / storage.STRINGS_FILE).write_bytes(blob[: int(offsets[first])])
    del meta["counts"]["descriptions"], meta["options"]["description_predicates"]
    (folder / "meta.json").write_text(json.dumps(meta))


def test_an_older_folder_without_descriptions_loads_blank(english: KnowledgeBase, tmp_path: Path) -> None:
    english.to_disk(tmp_path / "old")
    _drop_descriptions(tmp_path / "old")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        old = KnowledgeBase.from_disk(tmp_path / "old")
        old.check_all()
        assert len(old.descriptions) == old.n_entities and set(old.descriptions) == {""}
        assert old.descriptions == [""] * old.n_entities and old.descriptions[-1] == ""
        assert old.describe(0)["description"] == "" and old.lookup("Paris")[0]["description"] == ""
        assert old.entity_arrays is not None and old.candidates("Paris") == english.candidates("Paris")
        assert set(descriptions(KnowledgeBase.from_bytes(old.to_bytes())).values()) == {""}
        old.to_disk(tmp_path / "resaved")  # written with a blank table from now on
    assert set(descriptions(KnowledgeBase.from_disk(tmp_path / "resaved")).values()) == {""}
    with pytest.raises(IndexError):
        old.descriptions[old.n_entities]


def test_an_older_format_1_folder_and_bytes_load_blank(english: KnowledgeBase, tmp_path: Path) -> None:
    meta, tables, arrays = english._parts()
    del tables["descriptions"]
    storage.write_parts(tmp_path, meta, tables, arrays, version=1)  # tables.msgpack without them
    from_bytes = KnowledgeBase.from_bytes(storage.parts_to_bytes(meta, tables, arrays))
    for old in (KnowledgeBase.from_disk(tmp_path), from_bytes):
        assert len(old.descriptions) == english.n_entities and set(old.descriptions) == {""}
        assert old.candidates("Paris") == english.candidates("Paris")


def test_the_shipped_graph(shipped_kb_dir: Path) -> None:
    kb = KnowledgeBase.from_disk(shipped_kb_dir)
    chelsea = kb.entity_id("http://rdf.freebase.com/ns/m.023fb")
    assert kb.label(chelsea) == "Chelsea F.C."
    assert kb.description(chelsea) == "professional association football club based in London"
    described = {t.subject.value: t.object.value
                 for t in ox.parse(gzip.decompress(SHIPPED.read_bytes()), format=ox.RdfFormat.N_TRIPLES)
                 if t.predicate.value == SCHEMA_DESCRIPTION}
    assert len(described) == 13_666
    assert kb.meta["counts"]["descriptions"] == sum(1 for text in kb.descriptions if text) == 13_666
    assert all(kb.description(kb.entity_id(iri)) == " ".join(text.split()) for iri, text in described.items())


@pytest.fixture()
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich must not wrap the lines looked for


def test_cli(graph: Path, tmp_path: Path, wide_console: None) -> None:
    runner = CliRunner()
    out = tmp_path / "kb"
    result = runner.invoke(app, ["kb", "import", str(graph), "-o", str(out), "--alias-index", "none",
                                 "--description-predicate", "<http://example.org/blurb>",
                                 "--description-predicate", "skos:definition"])
    assert result.exit_code == 0, result.output
    assert "descriptions" in result.output
    kb = KnowledgeBase.from_disk(out)
    assert kb.meta["options"]["description_predicates"] == [EX + "blurb",
                                                           "http://www.w3.org/2004/02/skos/core#definition"]
    assert descriptions(kb)["rome"] == "an eternal city" and descriptions(kb)["oslo"] == "Oslo, a blurb"
    info = runner.invoke(app, ["kb", "info", str(out)])
    assert info.exit_code == 0 and re.search(r"descriptions\W+3\b", info.output), info.output
    shown = runner.invoke(app, ["kb", "lookup", str(out), "Rome"])
    assert shown.exit_code == 0 and "description" in shown.output and "an eternal city" in shown.output
    as_json = json.loads(runner.invoke(app, ["kb", "lookup", str(out), "Oslo", "--json"]).output)
    assert as_json["candidates"][0]["description"] == "Oslo, a blurb"
    assert runner.invoke(app, ["kb", "import", str(graph), "-o", str(out), "--alias-index", "none",
                               "--description-predicate", "none"]).exit_code == 0
    kb = KnowledgeBase.from_disk(out)
    assert kb.meta["options"]["description_predicates"] == [] and set(kb.descriptions) == {""}
    assert "description" not in runner.invoke(app, ["kb", "lookup", str(out), "Rome"]).output


def test_every_source_and_engine_gives_the_same_descriptions(graph: Path, tmp_path: Path) -> None:
    expected = ENGLISH
    assert descriptions(compile_kb([graph], engine="rdflib")) == expected
    kb = import_rdf([graph], tmp_path / "kb", store=tmp_path / "store", alias_index_lang=None)
    assert descriptions(kb) == expected
    assert descriptions(compile_kb([tmp_path / "store"])) == expected  # the store --store wrote, as a source
    with oxigraph_endpoint(graph, tmp_path / "server") as url:
        assert descriptions(import_rdf([], tmp_path / "from_sparql", sparql=url, alias_index_lang=None)) == expected
