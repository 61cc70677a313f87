"""Export of a compiled KB to spaCy's InMemoryLookupKB: what it holds, the files it
writes, and spaCy's own entity_linker trained on it for a few steps.

The KB is tests/fixtures/features_kb.ttl, where "Chelsea" is both the football club and
the London district, so the linker has to learn from context which one a mention is.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.kb import InMemoryLookupKB
from spacy.ml.models.entity_linker import load_kb
from spacy.training import Example
from spacy.util import fix_random_seed
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
from spacy_sparse_expert.kb.spacy_kb import SpacyKBExportError, entity_vectors, export_spacy_kb, to_spacy_kb

EX = "http://example.org/"
runner = CliRunner()


@pytest.fixture(scope="module")
def kb_dir(kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("features_kb") / "kb"
    kb.to_disk(path)
    return path


def test_export_holds_entities_frequencies_vectors_and_aliases(kb: KnowledgeBase) -> None:
    out = to_spacy_kb(kb)
    assert out.get_size_entities() == kb.n_entities
    assert sorted(out.get_entity_strings()) == sorted(kb.entities)
    assert out.entity_vector_length == kb.n_features + 1
    club = kb.entity_id(EX + "ChelseaFC")
    assert out.get_vector(EX + "ChelseaFC") == pytest.approx([*kb.graph_features(club).tolist(), 1.0])
    # every alias under its original-case and its normalised form, with the KB's priors
    assert set(out.get_alias_strings()) == set(kb.aliases) | set(kb.alias_surfaces)
    for alias in ("Chelsea", "chelsea", "England"):
        want = {c.iri: c.prior for c in kb.candidates(alias)}
        got = {c.entity_: c.prior_prob for c in out.get_alias_candidates(alias)}
        assert got == pytest.approx(want, abs=1e-6)
    assert len(want) == 4  # "England": four entities
    # frequencies are degrees in the relation graph: the club has more edges than the district
    freqs = {c.entity_: c.entity_freq for c in out.get_alias_candidates("Chelsea")}
    assert freqs[EX + "ChelseaFC"] > freqs[EX + "ChelseaDistrict"] >= 1


def test_zero_vectors_of_a_given_length_and_bad_settings(kb: KnowledgeBase) -> None:
    assert entity_vectors(kb, "zeros", 7).shape == (kb.n_entities, 7)
    assert to_spacy_kb(kb, vectors="zeros").entity_vector_length == 64
    with pytest.raises(SpacyKBExportError, match=r"SSE-E240.*'random'.*graph, zeros"):
        entity_vectors(kb, "random")
    with pytest.raises(SpacyKBExportError, match=r"SSE-E241.*--vector-length 3.*6 values"):
        entity_vectors(kb, "graph", 3)
    with pytest.raises(SpacyKBExportError, match=r"SSE-E242.*not 0"):
        entity_vectors(kb, "zeros", 0)


def test_export_to_disk_reads_back_with_spacy(kb: KnowledgeBase, kb_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "spacy_kb"
    export_spacy_kb(kb_dir, out)
    assert sorted(os.listdir(out)) == ["contents", "strings.json"]
    back = InMemoryLookupKB(Vocab(), entity_vector_length=1)
    back.from_disk(out)
    assert back.get_size_entities() == kb.n_entities and back.entity_vector_length == kb.n_features + 1
    assert {c.entity_ for c in back.get_alias_candidates("Chelsea")} == {EX + "ChelseaFC", EX + "ChelseaDistrict"}
    export_spacy_kb(kb_dir, out, vectors="zeros", vector_length=5)  # an earlier export is replaced
    assert load_kb(out)(Vocab()).entity_vector_length == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spacy_kb"]  # no lock or temporary left


def test_export_refuses_outputs_it_did_not_write(kb_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me", encoding="utf8")
    with pytest.raises(SpacyKBExportError, match=r"SSE-E243.*todo\.txt"):
        export_spacy_kb(kb_dir, other)
    assert (other / "todo.txt").read_text(encoding="utf8") == "keep me"
    with pytest.raises(SpacyKBExportError, match=r"SSE-E082"):
        export_spacy_kb(kb_dir, kb_dir)  # never over its own input
    assert KnowledgeBase.from_disk(kb_dir).n_entities > 0


def _run_cli(*argv: str) -> dict:
    """Run `sparse-expert ARGV` in a fresh interpreter: exit status, output, and whether
    spaCy or torch were loaded."""
    code = ("import json, sys\n"
            "import spacy_sparse_expert.kb.spacy_kb\n"
            "from spacy_sparse_expert.cli.main import app\n"
            "before = sorted(m for m in ('spacy', 'torch') if m in sys.modules)\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    status = e.code\n"
            "print('\\n' + json.dumps({'status': status, 'at_import': before}))\n")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ, "COLUMNS": "200"})
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "output": proc.stdout + proc.stderr}


def test_cli_export_spacy(kb_dir: Path, tmp_path: Path) -> None:
    """The command and the export module load neither spaCy nor torch until an export runs
    (spaCy then loads torch itself, through thinc)."""
    got = _run_cli("kb", "export-spacy", str(kb_dir), str(tmp_path / "spacy_kb"))
    assert got["status"] == 0 and got["at_import"] == [], got["output"]
    assert "spaCy KB written to" in got["output"] and "vectors of length 6" in got["output"]
    assert sorted(os.listdir(tmp_path / "spacy_kb")) == ["contents", "strings.json"]
    result = runner.invoke(app, ["kb", "export-spacy", str(kb_dir), str(tmp_path / "other"), "--vectors", "random"])
    assert result.exit_code == 1 and "SSE-E240" in result.output
    assert not (tmp_path / "other").exists()
    (tmp_path / "a_file").write_text("", encoding="utf8")
    result = runner.invoke(app, ["kb", "export-spacy", str(kb_dir), str(tmp_path / "a_file" / "kb")])
    assert result.exit_code == 1 and "SSE-E245" in result.output and "a_file" in result.output


# Two Chelsea mentions the linker must tell apart by context (and a club it cannot miss)
TRAIN = [
    ("Chelsea beat Arsenal in the Premier League on Saturday.", [(0, 7, "ChelseaFC"), (13, 20, "ArsenalFC")]),
    ("She bought a small flat in Chelsea near the river.", [(27, 34, "ChelseaDistrict")]),
    ("Fans cheered as Chelsea scored a late goal.", [(16, 23, "ChelseaFC")]),
    ("The streets of Chelsea are lined with old houses.", [(15, 22, "ChelseaDistrict")]),
]


def test_spacy_entity_linker_trains_on_the_export(kb_dir: Path, tmp_path: Path) -> None:
    """spaCy's test_overfitting_IO recipe (spacy/tests/pipeline/test_entity_linker.py):
    gold entities during training, an entity ruler and a sentencizer to predict."""
    fix_random_seed(0)
    out = tmp_path / "spacy_kb"
    export_spacy_kb(kb_dir, out)
    nlp = spacy.blank("en")
    examples = []
    for text, links in TRAIN:
        ents = [(start, end, "ORG") for start, end, _ in links]
        gold = {(start, end): {EX + name: 1.0} for start, end, name in links}
        examples.append(Example.from_dict(nlp.make_doc(text), {"entities": ents, "links": gold}))
    # incl_prior=False: the choice between the two Chelseas has to come from the context
    linker = nlp.add_pipe("entity_linker", config={"incl_prior": False})
    linker.set_kb(load_kb(out))
    optimizer = nlp.initialize(lambda: examples)
    assert linker.kb.get_size_entities() > 0
    losses: dict = {}
    for _ in range(40):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses)
    assert np.isfinite(losses["entity_linker"])
    nlp.add_pipe("sentencizer", first=True)
    ruler = nlp.add_pipe("entity_ruler", before="entity_linker")
    ruler.add_patterns([{"label": "ORG", "pattern": name} for name in ("Chelsea", "Arsenal")])
    predicted = [[(ent.start_char, ent.end_char, ent.kb_id_) for ent in nlp(text).ents] for text, _ in TRAIN]
    assert predicted == [[(start, end, EX + name) for start, end, name in links] for _, links in TRAIN]
