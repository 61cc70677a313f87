"""Accent folding for alias matching (tests/fixtures/accents_kb.ttl): `kb lookup`,
`KnowledgeBase.candidates` and the alias linker find "São Paulo" from "Sao Paulo" and
"Zurich" from "Zürich", and labels keep their accents."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import spacy
from typer.testing import CliRunner

from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.features.linker import AliasLinker
from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.kb.folding import fold_accents, merge_candidates
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

EX = "http://example.org/"
runner = CliRunner()


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("accents") / "kb"
    import_rdf([fixtures_dir / "accents_kb.ttl"], out)
    return out


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return KnowledgeBase.from_disk(kb_dir)


@pytest.mark.parametrize("text,folded", [
    ("São Paulo", "Sao Paulo"), ("Zürich", "Zurich"), ("Malmö", "Malmo"), ("Ærø", "Ærø"),
    ("e\u0301te\u0301", "ete"), ("서울", "서울"), ("plain ASCII", "plain ASCII"), ("ﬁnal", "final"),
])
def test_fold_accents(text: str, folded: str) -> None:
    assert fold_accents(text) == folded


def test_candidates_fold_both_sides(kb: KnowledgeBase) -> None:
    # the KB writes the city with its accent, and the text without
    city = [(c.iri, c.label) for c in kb.candidates("Sao Paulo")]
    assert (EX + "SaoPaulo", "São Paulo") in city and (EX + "SaoPauloFC", "São Paulo FC") in city
    assert [c.iri for c in kb.candidates("sao paulo")] == [c.iri for c in kb.candidates("Sao Paulo")]
    # the text carries accents the KB does not
    assert [(c.iri, c.label) for c in kb.candidates("Zürich")] == [(EX + "Zurich", "Zurich")]
    assert [c.label for c in kb.candidates("Malmo")] == ["Malmö"]
    assert kb.candidates("Sao Paolo") == []  # folding is not fuzzy matching


def test_merged_candidates_are_a_distribution(kb: KnowledgeBase) -> None:
    # "são paulo" (the city's label) and "sao paulo" (the club's altLabel) are two KB aliases
    assert kb.alias_id("São Paulo") != kb.alias_id("Sao Paulo")
    assert len(kb.alias_ids("Sao Paulo")) == 2
    priors = [c.prior for c in kb.candidates("São Paulo")]
    assert priors == sorted(priors, reverse=True) and abs(sum(priors) - 1.0) < 1e-6
    assert len({c.iri for c in kb.candidates("São Paulo")}) == 2


def test_merge_keeps_best_prior_per_entity() -> None:
    a = (np.array([3, 7], dtype=np.int32), np.array([0.75, 0.25], dtype=np.float32))
    b = (np.array([7, 9], dtype=np.int32), np.array([0.5, 0.5], dtype=np.float32))
    ents, pri = merge_candidates([a, b])
    assert ents.tolist() == [3, 7, 9]  # 7 keeps its better prior (0.5, from b): a tie with 9
    np.testing.assert_allclose(pri, np.array([0.75, 0.5, 0.5]) / 1.75, rtol=1e-6)
    assert merge_candidates([a])[0] is a[0]


def test_kb_lookup_cli_finds_accented_label(kb_dir: Path) -> None:
    result = runner.invoke(app, ["kb", "lookup", str(kb_dir), "Sao Paulo", "--json"])
    assert result.exit_code == 0, result.output
    assert '"label": "São Paulo"' in result.output
    table = runner.invoke(app, ["kb", "lookup", str(kb_dir), "Sao Paulo"])
    assert table.exit_code == 0 and "São Paulo" in table.output


def _links(kb: KnowledgeBase, text: str) -> List[Tuple[str, str]]:
    nlp = spacy.blank("en")
    linker = AliasLinker(nlp.vocab, kb)
    doc = nlp(text)
    res = linker(doc)
    return [(doc[s:e].text, kb.entities[x].replace(EX, "")) for s, e, x in
            zip(res.starts.tolist(), res.ends.tolist(), res.entities.tolist())]


def test_linker_folds_text_and_patterns(kb: KnowledgeBase) -> None:
    got = _links(kb, "She flew from Zürich to Sao Paulo and on to Malmo.")
    # spans are the original tokens, accents and all
    assert ("Zürich", "Zurich") in got and ("Malmo", "Malmo") in got
    assert [span for span, _ in got] == ["Zürich", "Sao Paulo", "Malmo"]
    assert dict(got)["Sao Paulo"] in {"SaoPaulo", "SaoPauloFC"}
    assert _links(kb, "Zurich and Malmö") == [("Zurich", "Zurich"), ("Malmö", "Malmo")]


@pytest.mark.slow
def test_shipped_kb_folds(repo_root: Path, tmp_path: Path) -> None:
    """The shipped FB15k-237 KB writes "Zürich" and "1. FC Nürnberg" (it has no São Paulo)."""
    kb = import_rdf([repo_root / "knowledge" / "fb15k237.nt.gz"], tmp_path / "fbkb")
    assert [c.label for c in kb.candidates("Zurich")][0] == "Zürich"
    assert [c.label for c in kb.candidates("1. FC Nurnberg")] == ["1. FC Nürnberg"]
    doc = spacy.blank("en")("Bayern beat 1. FC Nurnberg in Zurich.")
    res = AliasLinker(doc.vocab, kb)(doc)
    assert {kb.labels[e] for e in res.entities.tolist()} >= {"1. FC Nürnberg", "Zürich"}
