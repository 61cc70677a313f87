"""benchmarks/sentiment.py's pure parts: TF-IDF's C chosen on dev, the results file (schema,
merge of parts run in parallel) and the report's sentiment table. No training."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent


def _load(name: str, path: Path):
    sys.path.insert(0, str(path.parent))  # sentiment.py imports bbc and stats beside it
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_sentiment", REPO / "benchmarks" / "sentiment.py")


TRAIN = [("great phone, works great", "positive"), ("I love it", "positive"), ("excellent sound", "positive"),
         ("terrible battery", "negative"), ("it broke, awful", "negative"), ("waste of money", "negative")] * 3
DEV = [("great sound", "positive"), ("love the battery", "positive"), ("awful phone", "negative"),
       ("money wasted, it broke", "negative")]
TEST = [("excellent, I love it", "positive"), ("terrible, a waste", "negative")]


def _records(pairs):
    return [{"text": t, "label": y} for t, y in pairs]


def test_tfidf_chooses_c_on_dev_and_scores_test(bench):
    run = bench.run_tfidf(_records(TRAIN), _records(DEV), _records(TEST), [True, True])
    assert run["settings"]["C"] in bench.TFIDF_C_GRID
    assert run["predictions"] == ["positive", "negative"] and run["macro_f1"] == 1.0
    assert 0 <= run["settings"]["dev_macro_f1"] <= 1


def _run(**kw):
    base = {"system": "tfidf_linearsvc", "train_set": "train", "knowledge": None, "seed": 0, "accuracy": 0.5,
            "macro_f1": 0.5, "macro_f1_unseen": 0.5, "train_seconds": 1.0, "predictions": ["positive", "negative"],
            "n_test": 2}
    return {**base, **kw}


def test_results_merge_parts_and_replace_same_key(bench, tmp_path: Path):
    gold = ["positive", "negative"]
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "all.json"
    bench.write_results(a, [_run(), _run(system="sparse_expert", knowledge="rules", macro_f1=0.7)], gold)
    bench.write_results(b, [_run(system="sparse_expert", knowledge="none", seed=1),
                            _run(system="sparse_expert", knowledge="rules", macro_f1=0.9)], gold)
    bench.main(["--merge", str(a), str(b), "--out", str(out)])
    runs = json.loads(out.read_text(encoding="utf8"))["runs"]
    keys = [(r["system"], r["knowledge"], r["seed"]) for r in runs]
    assert keys == [("tfidf_linearsvc", None, 0), ("sparse_expert", "none", 1), ("sparse_expert", "rules", 0)]
    assert runs[2]["macro_f1"] == 0.9  # the later file's run replaced the earlier one
    with pytest.raises(ValueError, match="knowledge"):
        bench.write_results(out, [_run(system="sparse_expert")], gold)


def test_report_renders_the_sentiment_comparison(bench, tmp_path: Path):
    report = _load("bench_report", REPO / "benchmarks" / "report.py")
    gold = ["positive", "negative", "positive", "negative"]
    path = tmp_path / "s.json"
    data = bench.write_results(path, [
        _run(predictions=["positive", "positive", "positive", "positive"], n_test=4),
        _run(system="sparse_expert", knowledge="rules", predictions=gold, n_test=4)], gold)
    text = report.sentiment(data)
    assert "| sparse_expert | train | rules | 1 |" in text
    assert "| train | sparse_expert | rules | tfidf_linearsvc | +0.6667 |" in text  # 1.0 minus 1/3 (one label never predicted)


def test_rules_only_follows_the_lexicon_and_breaks_ties_by_train_majority(bench):
    test = _records([("excellent, I love it", "positive"), ("It was not good.", "negative"),
                     ("The phone arrived on Tuesday.", "negative")])
    train = _records([("a", "positive"), ("b", "negative"), ("c", "negative")])
    run = bench.run_rules_only(train, test, bench.DEFAULT_RULES, [True] * 3)
    assert run["predictions"] == ["positive", "negative", "negative"]
    assert run["settings"]["tie_label"] == "negative" and run["settings"]["test_ties"] == 1
    # with a positive majority the sentence without any lexicon word goes the other way
    run = bench.run_rules_only(_records([("a", "positive")]), test, bench.DEFAULT_RULES, [True] * 3)
    assert run["predictions"][2] == "positive"
