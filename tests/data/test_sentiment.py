"""data/sentiment.py: the split equals shared/bench/sentiment_split.py; DocBins carry the labels."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_sparse_expert.data.sentiment import SENTIMENT_LABELS, load_sentiment, sentiment_split, write_sentiment
from spacy_sparse_expert.errors import SparseExpertError

SHARED = Path(__file__).resolve().parent.parent.parent.parent / "shared"
SPLIT_SCRIPT = SHARED / "bench" / "sentiment_split.py"
DATA = SHARED / "data" / "sentiment_sentences"
NAMES = ("train", "dev", "test", "train_small")


@pytest.fixture(scope="module")
def script_split(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not SPLIT_SCRIPT.exists() or not DATA.exists():
        pytest.skip(f"{SPLIT_SCRIPT} or {DATA} not found")
    out = tmp_path_factory.mktemp("sentiment_script")
    subprocess.run([sys.executable, str(SPLIT_SCRIPT), str(out)], check=True, capture_output=True)
    return {name: [json.loads(line) for line in (out / f"{name}.jsonl").read_text(encoding="utf8").splitlines()]
            for name in NAMES}


def test_split_equals_reference_script(script_split: dict) -> None:
    ours = sentiment_split(DATA)
    for name, ref in script_split.items():
        assert ours[name] == ref, name
    assert [len(ours[n]) for n in NAMES] == [2088, 298, 596, 96]


def test_write_sentiment_docbins_match_jsonl(tmp_path: Path, script_split: dict) -> None:
    counts = write_sentiment(DATA, tmp_path, splits=("dev", "train_small"))
    assert counts == {"dev": 298, "train_small": 96}
    assert not (tmp_path / "train.spacy").exists()
    for name in counts:
        assert (tmp_path / f"{name}.jsonl").read_text(encoding="utf8").splitlines() == [
            json.dumps(d, ensure_ascii=False) for d in script_split[name]]
        nlp = spacy.blank("en")
        docs = list(DocBin().from_disk(tmp_path / f"{name}.spacy").get_docs(nlp.vocab))
        assert [d.text for d in docs] == [r["text"] for r in script_split[name]]
        for doc, rec in zip(docs, script_split[name]):
            assert doc.cats == {label: float(label == rec["label"]) for label in SENTIMENT_LABELS}
            assert doc.user_data["id"] == rec["id"] and doc.user_data["source"] == rec["source"]


def test_train_small_is_balanced_by_source_and_label() -> None:
    if not DATA.exists():
        pytest.skip(f"{DATA} not found")
    small = sentiment_split(DATA)["train_small"]
    pairs = {}
    for d in small:
        pairs[(d["source"], d["label"])] = pairs.get((d["source"], d["label"]), 0) + 1
    assert pairs == {(s, lab): 16 for s in ("amazon_cells", "imdb", "yelp") for lab in SENTIMENT_LABELS}


def test_bad_input_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(SparseExpertError, match="SSE-E210.*amazon_cells_labelled.txt"):
        load_sentiment(tmp_path)
    for source in ("amazon_cells", "imdb", "yelp"):
        (tmp_path / f"{source}_labelled.txt").write_text("Great phone.\t1\nAwful.\t0\n", encoding="utf8")
    docs = load_sentiment(tmp_path)
    # the same sentence in the other two files is a duplicate: only the first stays
    assert [(d["id"], d["label"]) for d in docs] == [("amazon_cells/1", "positive"), ("amazon_cells/2", "negative")]
    (tmp_path / "imdb_labelled.txt").write_text("Fine film.\t1\nno score here\n", encoding="utf8")
    with pytest.raises(SparseExpertError, match="imdb_labelled.txt, line 2.*no score here"):
        load_sentiment(tmp_path)
    with pytest.raises(SparseExpertError, match="SSE-E212"):
        write_sentiment(tmp_path, tmp_path / "out", splits=("valid",))
