"""`sparse-expert kb lookup` names each type so that no two look alike: FB15k-237's
classes `.../type/location/location` and `.../type/location` (and Freebase's many
`.../X/location`) used to print as "location, ..., location"."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from spacy_sparse_expert.cli.kb import type_names
from spacy_sparse_expert.cli.main import app

runner = CliRunner()
T = "https://w3id.org/fb15k237/type/"

# the same last segment under different parents, as in the shipped FB15k-237 graph
TTL = f"""\
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix ex: <http://example.org/> .
<{T}location> a rdfs:Class ; rdfs:label "location" .
<{T}location/location> a rdfs:Class ; rdfs:label "location" .
<{T}location/citytown> a rdfs:Class ; rdfs:label "city/town" .
<{T}base/biblioness/location> a rdfs:Class ; rdfs:label "location" .
ex:paris a <{T}location>, <{T}location/location>, <{T}location/citytown>, <{T}base/biblioness/location> ;
    rdfs:label "Paris" .
"""


def test_type_names_take_the_shortest_suffix_that_differs() -> None:
    names = type_names([T + "location", T + "location/location", T + "location/citytown",
                        T + "base/biblioness/location", "http://example.org/City"])
    assert names == {
        T + "location": "type/location",
        T + "location/location": "location/location",
        T + "location/citytown": "citytown",
        T + "base/biblioness/location": "biblioness/location",
        "http://example.org/City": "City",
    }
    # one IRI is its last segment; the same IRI twice is still one name
    assert type_names([T + "location", T + "location"]) == {T + "location": "location"}
    # no suffix tells these apart but the whole IRI does
    assert type_names(["http://a.org/x", "https://a.org/x"]) == {"http://a.org/x": "http://a.org/x",
                                                                 "https://a.org/x": "https://a.org/x"}


def test_lookup_prints_types_that_differ(tmp_path: Path) -> None:
    source = tmp_path / "types.ttl"
    source.write_text(TTL, encoding="utf8")
    out = tmp_path / "kb"
    assert runner.invoke(app, ["kb", "import", str(source), "-o", str(out), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["kb", "lookup", str(out), "Paris"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "example.org/paris" in line)
    cell = next(cell for cell in row.split("│") if "citytown" in cell)
    shown = cell.strip().split(", ")
    assert sorted(shown) == ["biblioness/location", "citytown", "location/location", "type/location"]
