"""A saved pipeline holds its KB copied (the default) or refers to a KB folder by absolute
path and content hash (KBLoader `by_reference = true`); a moved or replaced KB is a clear
error. A pipeline saved with a format-1 KB still loads, and predicts exactly what the
same pipeline with the KB in format 2 predicts."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any, List

import pytest
import spacy
from spacy.language import Language

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBFormatError
from spacy_sparse_expert.features.annotations import SPANS_KEY
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.pipeline.serialize import KB_REF_FILE
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import FIXTURES, make_examples, make_nlp, rules_path

TEXTS = [
    "Chelsea beat Arsenal two nil in the Premier League on Saturday.",
    "Tony Blair told the Labour Party that Gordon Brown would speak in London.",
    "Vodafone shares rose after profits beat analysts' forecasts.",
    "The bank cut interest rates as inflation and growth slowed.",
]


def predictions(nlp: Language, texts: List[str]) -> List[Any]:
    return [(sorted(doc.cats.items()), [(s.start, s.end, s.kb_id_) for s in doc.spans.get(SPANS_KEY, [])])
            for doc in nlp.pipe(texts)]


def assert_same(a: List[Any], b: List[Any]) -> None:
    for (cats_a, links_a), (cats_b, links_b) in zip(a, b, strict=True):
        assert links_a == links_b
        assert [k for k, _ in cats_a] == [k for k, _ in cats_b]
        assert all(abs(x - y) <= 1e-6 for (_, x), (_, y) in zip(cats_a, cats_b))


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The component KB as `kb import` writes it (format 2, with its alias index)."""
    path = tmp_path_factory.mktemp("ref") / "kb"
    import_rdf([FIXTURES / "component_kb.ttl"], path)
    return path


def trained(kb_path: Path, *, by_reference: bool) -> Language:
    nlp = make_nlp()
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp,
                                       kb_loader=load_kb_v1(str(kb_path), by_reference=by_reference),
                                       rules_loader=load_rules_v1(str(rules_path())))
    return nlp


def test_saved_by_reference_loads_the_same_pipeline(imported: Path, tmp_path: Path) -> None:
    nlp = trained(imported, by_reference=True)
    want = predictions(nlp, TEXTS)
    assert any(links for _, links in want)  # the KB links something in these texts
    nlp.to_disk(tmp_path / "pipeline")
    component = tmp_path / "pipeline" / "textcat"
    assert (component / KB_REF_FILE).is_file() and not (component / "kb").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no alias tokenizing (W200) at load: the index came with the KB
        loaded = spacy.load(tmp_path / "pipeline")
    kb = loaded.get_pipe("textcat").kb
    assert kb.path == imported and kb.by_reference
    assert_same(predictions(loaded, TEXTS), want)
    # saved again, it still refers (and a copy saved earlier into the folder is removed)
    shutil.copytree(imported, component / "kb")
    loaded.to_disk(tmp_path / "pipeline")
    assert (component / KB_REF_FILE).is_file() and not (component / "kb").exists()


def test_the_copy_stays_the_default(imported: Path, tmp_path: Path) -> None:
    nlp = trained(imported, by_reference=False)
    nlp.to_disk(tmp_path / "pipeline")
    component = tmp_path / "pipeline" / "textcat"
    assert (component / "kb" / storage.META_FILE).is_file() and not (component / KB_REF_FILE).exists()
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("textcat").kb.path == component / "kb"
    assert_same(predictions(loaded, TEXTS), predictions(nlp, TEXTS))


def test_a_moved_or_replaced_kb_is_a_clear_error(imported: Path, tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(imported, kb_dir)
    trained(kb_dir, by_reference=True).to_disk(tmp_path / "pipeline")
    sha = KnowledgeBase.from_disk(kb_dir).meta["content_sha256"]
    kb_dir.rename(tmp_path / "moved")
    with pytest.raises(KBFormatError, match=r"SSE-E270.*'textcat'.*no folder is there") as err:
        spacy.load(tmp_path / "pipeline")
    assert str(kb_dir) in str(err.value) and sha in str(err.value) and "kb import" in str(err.value)
    # another graph imported into the same path
    import_rdf([FIXTURES / "accents_kb.ttl"], kb_dir)
    with pytest.raises(KBFormatError, match=r"SSE-E270.*'textcat'.*has content sha256 [0-9a-f]{64}") as err:
        spacy.load(tmp_path / "pipeline")
    assert sha in str(err.value)
    # the same graph imported again: the reference holds
    shutil.rmtree(kb_dir)
    import_rdf([FIXTURES / "component_kb.ttl"], kb_dir)
    assert spacy.load(tmp_path / "pipeline").get_pipe("textcat").kb.meta["content_sha256"] == sha


def test_damaged_reference_file(imported: Path, tmp_path: Path) -> None:
    trained(imported, by_reference=True).to_disk(tmp_path / "pipeline")
    (tmp_path / "pipeline" / "textcat" / KB_REF_FILE).write_text('{"path": "/x"}', encoding="utf8")
    with pytest.raises(KBFormatError, match=r"SSE-E272.*'textcat'.*content_sha256"):
        spacy.load(tmp_path / "pipeline")


def test_a_format_1_kb_cannot_be_referred_to(imported: Path, tmp_path: Path) -> None:
    KnowledgeBase.from_disk(imported).to_disk(tmp_path / "old", format_version=1)
    with pytest.raises(KBFormatError, match=r"SSE-E271.*format 1.*by_reference = false"):
        trained(tmp_path / "old", by_reference=True)


def test_a_pipeline_saved_with_a_format_1_kb_predicts_the_same(imported: Path, tmp_path: Path) -> None:
    """Pipelines saved before format 2 hold their KB in format 1: they load, and give the
    same cats and links as the pipeline with the KB rewritten in format 2."""
    nlp = trained(imported, by_reference=False)
    nlp.to_disk(tmp_path / "v2")
    shutil.copytree(tmp_path / "v2", tmp_path / "v1")
    kb_v1 = tmp_path / "v1" / "textcat" / "kb"
    KnowledgeBase.from_disk(kb_v1).to_disk(kb_v1, format_version=1)
    assert sorted(p.name for p in kb_v1.iterdir()) == sorted([*storage.KB_FILES_V1, storage.ALIAS_INDEX_FILE])
    old, new = spacy.load(tmp_path / "v1"), spacy.load(tmp_path / "v2")
    assert old.get_pipe("textcat").kb.meta["format_version"] == 1
    assert new.get_pipe("textcat").kb.meta["format_version"] == 2
    assert_same(predictions(old, TEXTS), predictions(new, TEXTS))
