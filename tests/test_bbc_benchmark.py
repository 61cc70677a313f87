"""Smoke test of benchmarks/bbc.py's pure parts: scoring, the log parser, the results
schema and merging, and the TF-IDF system on a handful of docs. No training, no corpus."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def bbc():
    spec = importlib.util.spec_from_file_location("bench_bbc", REPO / "benchmarks" / "bbc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(bbc, **kw):
    base = {"system": "tfidf_linearsvc", "train_set": "train", "knowledge": None, "seed": 0, "accuracy": 0.9,
            "macro_f1": 0.9, "macro_f1_unseen": 0.9, "train_seconds": 1.0, "predictions": ["sport", "tech"]}
    return {**base, **kw}


def test_score_macro_f1_over_all_labels(bbc):
    gold = ["sport", "sport", "tech", "politics"]
    pred = ["sport", "tech", "tech", "politics"]
    s = bbc.score(gold, pred)
    assert s["accuracy"] == pytest.approx(0.75)
    # per label F1: sport 2/3, tech 2/3, politics 1, business 0, entertainment 0 (absent)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 5)
    assert s["predictions"] == pred
    # the unseen subset, docs 1 and 3: sport missed (F1 0), tech wrongly predicted (0), politics right (1)
    s = bbc.score(gold, pred, unseen=[False, True, False, True])
    assert s["macro_f1_unseen"] == pytest.approx(1 / 5)
    with pytest.raises(ValueError):
        bbc.score(gold, pred[:2])


def test_unseen_in_train_ignores_whitespace(bbc):
    train = [{"text": "A  match\nreport"}, {"text": "other"}]
    test = [{"text": "A match report"}, {"text": "new story"}, {"text": " other "}]
    assert bbc.unseen_in_train(test, train) == [False, True, False]


def test_knowledge_overrides_attribute_each_part(bbc, tmp_path):
    kb, rules = tmp_path / "kb", tmp_path / "rules.jsonl"
    assert bbc.knowledge_overrides("kb", kb, rules)[-3:] == [str(kb), "--paths.rules", "null"]
    assert bbc.knowledge_overrides("rules", kb, rules)[:4] == ["--paths.kb", "null", "--paths.rules", str(rules)]
    assert bbc.knowledge_overrides("both", kb, rules) == ["--paths.kb", str(kb), "--paths.rules", str(rules)]
    assert "use_knowledge" in " ".join(bbc.knowledge_overrides("none", None, rules))
    with pytest.raises(ValueError):
        bbc.knowledge_overrides("kb", None, rules)
    with pytest.raises(ValueError):
        bbc.knowledge_overrides("true", kb, rules)


def test_count_words_is_whitespace_split(bbc):
    assert bbc.count_words(["a b  c", "\tone\ntwo ", ""]) == 5


def test_argmax_cats(bbc):
    assert bbc.argmax_cats({"business": 0.1, "tech": 0.7, "sport": 0.2}) == "tech"


def test_parse_train_log(bbc):
    log = """E    #       LOSS TEXTCAT  CATS_SCORE  SCORE
---  ------  ------------  ----------  ------
  0       0          0.16       13.87    0.14
  3     200         20.47       91.30    0.91
  7     400          1.02       90.10    0.90
"""
    parsed = bbc.parse_train_log(log)
    assert parsed == {"steps": 400, "epochs": 7, "best_dev_score": pytest.approx(0.91), "evaluations": 3}
    assert bbc.parse_train_log("no table here")["steps"] is None


def test_merge_replaces_same_key_and_keeps_others(bbc):
    old = [_run(bbc), _run(bbc, system="sparse_expert", knowledge="both"),
           _run(bbc, system="sparse_expert", knowledge="none"), _run(bbc, system="sparse_expert", knowledge="none", seed=1)]
    new = [_run(bbc, system="sparse_expert", knowledge="both", accuracy=0.5)]
    merged = bbc.merge_runs(old, new)
    assert len(merged) == 4
    by_key = {bbc.run_key(r): r for r in merged}
    assert by_key[("sparse_expert", "train", "both", 0)]["accuracy"] == 0.5
    assert by_key[("sparse_expert", "train", "none", 0)]["accuracy"] == 0.9
    assert ("sparse_expert", "train", "none", 1) in by_key


def test_validate_run(bbc):
    bbc.validate_run(_run(bbc))
    bbc.validate_run(_run(bbc, system="sparse_expert", knowledge="kb"))
    with pytest.raises(ValueError):
        bbc.validate_run(_run(bbc, knowledge="kb"))  # knowledge only for sparse_expert
    with pytest.raises(ValueError):
        bbc.validate_run(_run(bbc, system="sparse_expert"))  # ... where it is required
    with pytest.raises(ValueError):
        bbc.validate_run(_run(bbc, system="sparse_expert", knowledge=True))  # the old boolean form
    with pytest.raises(ValueError):
        bbc.validate_run(_run(bbc, n_test=3))  # two predictions for three test docs
    with pytest.raises(ValueError):
        bbc.validate_run({"system": "tfidf_linearsvc"})


def test_tfidf_on_a_handful_of_docs_writes_schema(bbc, tmp_path):
    texts = {"sport": "the match ended with a late goal for the home team",
             "tech": "the new phone software update improves the battery and the chip",
             "politics": "the minister told parliament the election bill will pass",
             "business": "shares fell as the bank reported lower quarterly profits",
             "entertainment": "the film star won an award at the festival for the movie"}
    train = [{"text": t, "label": lab} for lab, t in texts.items()] * 2
    test = [{"text": t, "label": lab} for lab, t in texts.items()]
    unseen = bbc.unseen_in_train(test, train)
    assert unseen == [False] * 5
    result = bbc.run_tfidf(train, test, [True, True, True, False, False])
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0
    assert result["predictions"] == [d["label"] for d in test]
    assert "words_per_second" not in result  # speed is measured side by side in speed.py only
    out = tmp_path / "bbc.json"
    gold = [d["label"] for d in test]
    bbc.write_results(out, [{"system": "tfidf_linearsvc", "train_set": "train_small", "knowledge": None,
                             "seed": 0, **result}], gold)
    bbc.write_results(out, [_run(bbc, train_set="train_small", accuracy=0.1, predictions=gold)])
    data = json.loads(out.read_text(encoding="utf8"))
    assert set(data) == {"runs", "labels", "test_labels", "machine", "notes"}
    assert data["test_labels"] == gold
    assert len(data["runs"]) == 1 and data["runs"][0]["accuracy"] == 0.1
    assert all(k in data["runs"][0] for k in bbc.RUN_KEYS)
    # another test set: earlier runs are dropped, not mixed in
    bbc.write_results(out, [_run(bbc, train_set="train", predictions=["sport"])], ["sport"])
    data = json.loads(out.read_text(encoding="utf8"))
    assert [r["train_set"] for r in data["runs"]] == ["train"] and data["test_labels"] == ["sport"]
