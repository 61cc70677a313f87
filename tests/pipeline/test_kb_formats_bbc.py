"""The shipped KB (knowledge/fb15k237.nt.gz) loaded whole from a format-1 folder and
memory-mapped from a format-2 folder gives the same links and the same cats (to 1e-6) on
BBC test documents: the first 36 by default, all 445 with --slow."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.language import Language
from spacy.training import Example

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.data.bbc import BBC_LABELS, bbc_split
from spacy_sparse_expert.features.annotations import SPANS_KEY
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import tiny_model

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "knowledge" / "rules" / "news.jsonl"


@pytest.fixture(scope="module")
def split() -> Dict[str, List[Dict[str, Any]]]:
    return bbc_split()


@pytest.fixture(scope="module")
def pipelines(split: Dict[str, List[Dict[str, Any]]], shipped_kb_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """One initialized tiny pipeline over the shipped KB, saved twice: with the KB as
    `kb import` writes it (format 2) and with the KB rewritten in format 1."""
    root = tmp_path_factory.mktemp("formats")
    nlp = spacy.blank("en")
    nlp.add_pipe("sparse_expert_textcat", name="textcat", config={"model": tiny_model(True)})
    examples = [Example.from_dict(nlp.make_doc(r["text"]), {"cats": {lab: float(lab == r["label"])
                                                                     for lab in BBC_LABELS}})
                for r in split["train"][:20]]
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(shipped_kb_dir)),
                                       rules_loader=load_rules_v1(str(RULES)))
    nlp.to_disk(root / "v2")
    shutil.copytree(root / "v2", root / "v1")
    kb_v1 = root / "v1" / "textcat" / "kb"
    KnowledgeBase.from_disk(kb_v1).to_disk(kb_v1, format_version=1)
    return {"v1": root / "v1", "v2": root / "v2"}


def _results(nlp: Language, texts: List[str]) -> List[Any]:
    return [(doc.cats, [(s.start, s.end, s.label_, s.kb_id_, s._.kb_prior) for s in doc.spans.get(SPANS_KEY, [])])
            for doc in nlp.pipe(texts, batch_size=16)]


def _compare(pipelines: Dict[str, Path], texts: List[str]) -> None:
    old, new = spacy.load(pipelines["v1"]), spacy.load(pipelines["v2"])
    assert old.get_pipe("textcat").kb.meta["format_version"] == 1
    assert new.get_pipe("textcat").kb.meta["format_version"] == 2
    got_old, got_new = _results(old, texts), _results(new, texts)
    assert sum(len(links) for _, links in got_new) > len(texts)  # the KB links plenty in news
    for (cats_old, links_old), (cats_new, links_new) in zip(got_old, got_new, strict=True):
        assert links_old == links_new
        assert cats_old.keys() == cats_new.keys()
        assert all(abs(cats_old[k] - cats_new[k]) <= 1e-6 for k in cats_old)


def test_formats_agree_on_bbc_test_docs(pipelines: Dict[str, Path], split: Dict[str, List[Dict[str, Any]]]) -> None:
    _compare(pipelines, [r["text"] for r in split["test"][:36]])


@pytest.mark.slow
def test_formats_agree_on_the_whole_bbc_test_set(pipelines: Dict[str, Path],
                                                 split: Dict[str, List[Dict[str, Any]]]) -> None:
    _compare(pipelines, [r["text"] for r in split["test"]])
