"""benchmarks/speed.py's pure parts (first sentences, summaries, ratios, interleaving,
goals, the results shape, profile merging), the README rendering of its results, and
its per-part profile on a tiny knowledge pipeline. No timing is asserted."""
from __future__ import annotations

import gc
import importlib.util
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
BENCH = REPO / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # speed.py and report.py import their sibling modules
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def speed():
    return _load("speed")


@pytest.fixture(scope="module")
def report():
    return _load("report")


@pytest.mark.parametrize(("text", "expected"), [
    ("Train strike grips Buenos Aires\n\nA strike on the underground. More.", "Train strike grips Buenos Aires"),
    ("  \n Lords wrong on detainees - Straw\nBody", "Lords wrong on detainees - Straw"),
    ("Prices rose 3.5% in May. Then they fell.", "Prices rose 3.5% in May."),
    ("Who won? Nobody knows", "Who won?"),
    ("Stop! Now", "Stop!"),
    ("No break and no end", "No break and no end"),
    ("ends at the text end.", "ends at the text end."),
    ("", ""),
])
def test_first_sentence(speed, text: str, expected: str) -> None:
    assert speed.first_sentence(text) == expected


def test_short_texts_keep_order_and_count(speed) -> None:
    texts = ["A b\nc d", "E f. G h", "I j"]
    assert speed.short_texts(texts) == ["A b", "E f.", "I j"]


def test_summarize_best_and_median(speed) -> None:
    s = speed.summarize([2.0, 1.0, 4.0], words=100)
    assert s["words_per_second_best"] == pytest.approx(100.0)
    assert s["words_per_second_median"] == pytest.approx(50.0)
    assert s["seconds"] == [2.0, 1.0, 4.0]
    with pytest.raises(ValueError):
        speed.summarize([], words=10)


def test_cpu_seconds_give_their_own_best_and_ratio(speed) -> None:
    base = speed.BASELINE
    a = speed.summarize([2.0, 1.0], words=100, cpu_seconds=[0.5, 0.8])  # a pass waited: wall > CPU
    assert a["words_per_cpu_second_best"] == pytest.approx(200.0) and a["cpu_seconds"] == [0.5, 0.8]
    b = speed.summarize([1.0, 1.0], words=100, cpu_seconds=[0.25, 0.3])
    out = speed.ratios({"student": a, base: b})[f"student/{base}"]
    assert out["best_cpu"] == pytest.approx(0.5) and out["best"] == pytest.approx(1.0)
    assert "best_cpu" not in speed.ratios({"student": speed.summarize([1.0, 2.0], 10), base: b})[f"student/{base}"]


def _speeds(speed, seconds: dict[str, list[float]], words: int = 1000) -> dict:
    return {name: speed.summarize(s, words) for name, s in seconds.items()}


def test_ratios_of_one_run(speed) -> None:
    base = speed.BASELINE
    speeds = _speeds(speed, {base: [1.0, 2.0, 1.5], "sparse_expert_knowledge": [4.0, 6.0, 9.0],
                             "student": [1.0, 1.0, 3.0], "student_knowledge": [2.0, 2.0, 2.0]})
    out = speed.ratios(speeds)
    k = out[f"sparse_expert_knowledge/{base}"]
    assert k["best"] == pytest.approx(1.0 / 4.0)  # best passes: 1.0 s against 4.0 s
    assert k["median"] == pytest.approx(1.5 / 6.0)
    # rounds: 1/4, 2/6, 1.5/9 -> median 1/4
    assert k["median_of_rounds"] == pytest.approx(0.25)
    assert out[f"student/{base}"]["median_of_rounds"] == pytest.approx(1.0)
    # the student that keeps its knowledge has its own ratio: rounds 1/2, 2/2, 1.5/2
    assert out[f"student_knowledge/{base}"]["median_of_rounds"] == pytest.approx(0.75)
    # pairs with a system that was not timed are left out, not invented
    assert not any("no_knowledge" in key for key in out)
    with pytest.raises(ValueError, match="not one run"):
        speed.ratios(_speeds(speed, {base: [1.0, 2.0], "student": [1.0]}))


def test_interleave_rotates_the_order_each_round(speed) -> None:
    calls: list[str] = []

    def system(name: str):
        return lambda texts: calls.append(name) or [len(t) for t in texts]

    out = speed.interleave({"a": system("a"), "b": system("b"), "c": system("c")}, ["one two", "three"], repeats=4)
    assert calls == list("abc" "bca" "cab" "abc")
    for s in out.values():
        assert len(s["seconds"]) == 4
        assert s["words_per_second_best"] >= s["words_per_second_median"] > 0
        assert s["words_per_second_best"] == pytest.approx(3 / min(s["seconds"]))
    with pytest.raises(ValueError):
        speed.interleave({"a": system("a")}, ["x"], repeats=0)


def test_goals(speed) -> None:
    base = speed.BASELINE
    run_ratios = {"bbc_test": {f"sparse_expert_knowledge/{base}": {"best": 0.5},
                               f"student/{base}": {"best": 0.99}},
                  "short": {f"sparse_expert_knowledge/{base}": {"best": 0.2}}}
    g = speed.goals(run_ratios, knowledge_us=0.8)
    assert g["knowledge_on_half_of_spacy_bbc"] == {"value": 0.5, "met": True}
    assert g["knowledge_on_third_of_spacy_short"]["met"] is False
    assert g["student_at_least_spacy_bbc"]["met"] is False
    assert g["knowledge_features_under_1us_per_word"]["met"] is True
    assert speed.goals({}, None)["knowledge_on_half_of_spacy_bbc"] == {"value": None, "met": None}


def test_merge_profiles_keeps_other_labels(speed) -> None:
    old = [{"label": "before", "threads": 1, "texts": "bbc_test", "v": 1},
           {"label": "after", "threads": 1, "texts": "bbc_test", "v": 2}]
    new = [{"label": "after", "threads": 1, "texts": "bbc_test", "v": 3}]
    merged = speed.merge_profiles(old, new)
    assert [(p["label"], p["v"]) for p in merged] == [("before", 1), ("after", 3)]


def _results(speed) -> dict:
    base = speed.BASELINE
    runs = []
    for texts, scale in (("bbc_test", 1.0), ("short", 10.0)):
        speeds = _speeds(speed, {base: [1.0 * scale, 1.1 * scale], "sparse_expert_knowledge": [5.0 * scale, 6.0 * scale],
                                 "sparse_expert_no_knowledge": [3.0 * scale, 3.0 * scale],
                                 "student": [2.0 * scale, 2.5 * scale]})
        runs.append({"threads": 1, "texts": texts, "speeds": speeds, "ratios": speed.ratios(speeds)})
    us = {part: 1.0 for part in speed.PARTS}
    profiles = [{"label": "before", "threads": 1, "texts": "bbc_test", "us_per_word": us, "pipe_us_per_word": 10.0}]
    return {"command": "python benchmarks/speed.py --threads 1", "date": "2026-11-30T09:00:00+00:00",
            "machine": {"cpus": 2, "cpu": "test cpu", "torch": "2.x", "spacy": "3.x",
                        "load_average_1m": {"1": [1.0, 2.5], "2": [3.0, 2.0]}},
            "code": {"commit": "0123456789abcdef", "package_modified_since_commit": True},
            "repeats": {"bbc_test": 2, "short": 2}, "texts": {}, "systems": {}, "runs": runs,
            "goals": {"1": speed.goals({r["texts"]: r["ratios"] for r in runs}, 3.0)}, "profiles": profiles}


def test_results_shape_is_checked(speed) -> None:
    data = _results(speed)
    speed.validate(data)
    broken = {**data, "profiles": [{**data["profiles"][0], "us_per_word": {"tokenizer": 1.0}}]}
    with pytest.raises(ValueError, match="linking"):
        speed.validate(broken)
    with pytest.raises(ValueError, match="goals"):
        speed.validate({k: v for k, v in data.items() if k != "goals"})
    with pytest.raises(ValueError, match="unknown"):
        speed.validate({**data, "runs": [{**data["runs"][0], "texts": "tweets"}]})


def test_report_renders_speed_table(speed, report) -> None:
    text = report.speed(_results(speed))
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| BBC test | 1 | ours, knowledge on |"))
    # words/s = 1000 words / best 5.0 s; ratio to spaCy's best (1.0 s) = 0.20
    assert "| 200 |" in row and "| 0.20 |" in row
    short = next(line for line in lines if line.startswith("| first sentences | 1 | distilled student |"))
    assert "| 0.50 |" in short  # 10 s against 20 s
    assert "knowledge on half of spacy bbc not met (0.20)" in text
    assert "| linking | 1.00 (10%) |" in text and "| whole nlp.pipe | 10.00 (100%) |" in text
    assert "`python benchmarks/speed.py --threads 1` at commit 0123456 with uncommitted changes" in text
    assert "load average 1.0-3.0 during the run" in text
    assert "speed" in report.TABLES  # render() puts it between the README's speed markers


def test_profile_parts_of_a_tiny_knowledge_pipeline(speed, tmp_path: Path) -> None:
    """The profile runs every part on a real (tiny, untrained) pipeline with a KB and
    rules, and leaves the pipeline as it found it: same predictions, no hooks, same mode."""
    from spacy_sparse_expert.kb.compile import compile_kb
    from spacy_sparse_expert.kb.loaders import load_kb_v1
    from spacy_sparse_expert.ml.architectures import torch_module
    from spacy_sparse_expert.rules.loaders import load_rules_v1
    from tests.pipeline.conftest import (
        TRAIN_DATA,
        kb_path,
        make_examples,
        make_nlp,
        rules_path,
    )

    compile_kb([kb_path()]).to_disk(tmp_path / "kb")
    nlp = make_nlp()
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(tmp_path / "kb")),
                                       rules_loader=load_rules_v1(str(rules_path())))
    texts = [text for text, _ in TRAIN_DATA] * 2
    before = [doc.cats for doc in nlp.pipe(texts)]
    module = torch_module(nlp.get_pipe("textcat").model)
    mode = module.training
    # as the benchmark's worker does: the profile's gc.collect() then skips the loaded
    # libraries (half a second a call on a busy machine)
    gc.collect()
    gc.freeze()
    try:
        prof = speed.profile(nlp, texts, repeats=1)
    finally:
        gc.unfreeze()
    assert set(prof["us_per_word"]) == set(speed.PARTS)
    assert all(math.isfinite(v) for v in prof["us_per_word"].values())
    for part in ("tokenizer", "linking", "rules", "arrays", "model_encoder", "model_moe", "set_annotations"):
        assert prof["us_per_word"][part] > 0, part
    assert prof["knowledge_us_per_word"] == pytest.approx(
        sum(prof["us_per_word"][p] for p in speed.KNOWLEDGE_PARTS))
    assert prof["words"] == sum(len(t.split()) for t in texts) and prof["docs"] == len(texts)
    assert module.training == mode
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())
    assert [doc.cats for doc in nlp.pipe(texts)] == before


def test_spacy_tokenizer_alone_is_timed_beside_spacy(speed) -> None:
    """With spaCy's pipeline among the systems, its tokenizer alone is timed too (the
    floor of every pipeline): one pass tokenizes every text, nothing more."""
    import spacy

    nlp = spacy.blank("en")
    texts = ["Chelsea beat Arsenal.", "Shares fell 3% in London on Monday."]
    try:
        with_baseline = speed.predictors({speed.BASELINE: nlp})
        without = speed.predictors({"ours": nlp})
    finally:
        gc.unfreeze()
    assert set(with_baseline) == {speed.BASELINE, speed.TOKENIZER} and set(without) == {"ours"}
    assert with_baseline[speed.TOKENIZER](texts) == [len(nlp.make_doc(t)) for t in texts] == [4, 9]
    assert (speed.TOKENIZER, speed.BASELINE) in speed.RATIOS


@pytest.fixture(scope="module")
def pipeline_ab():
    return _load("pipeline_ab")


def test_pipeline_ab_times_two_saved_pipelines_interleaved(pipeline_ab, tmp_path: Path) -> None:
    """The A/B benchmark end to end on two tiny saved pipelines: one worker process per
    thread setting, b/a as the ratio, each pipeline's warm-up accuracy on the texts."""
    import json

    import spacy

    from tests.pipeline.conftest import TRAIN_DATA, make_examples, make_nlp

    folders = {}
    for name, seed in (("small", 0), ("other", 1)):
        spacy.util.fix_random_seed(seed)
        nlp = make_nlp(use_knowledge=False)
        nlp.get_pipe("textcat").initialize(lambda: make_examples(nlp), nlp=nlp)
        folders[name] = tmp_path / name
        nlp.to_disk(folders[name])
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in TRAIN_DATA), encoding="utf8")
    out = tmp_path / "ab.json"
    pipeline_ab.main(["--a", f"small={folders['small']}", "--b", f"other={folders['other']}", "--test", str(test),
                      "--threads", "1", "--repeats", "2", "--short-repeats", "3", "--out", str(out)])
    data = json.loads(out.read_text(encoding="utf8"))
    assert [(r["threads"], r["texts"]) for r in data["runs"]] == [(1, "bbc_test"), (1, "short")]
    for run, passes in zip(data["runs"], (2, 3)):
        speeds = run["speeds"]
        assert set(speeds) == {"small", "other"} and all(len(s["seconds"]) == passes for s in speeds.values())
        assert run["ratio"]["best"] == pytest.approx(speeds["other"]["words_per_second_best"]
                                                     / speeds["small"]["words_per_second_best"])
        assert run["torch_threads"] == 1 and set(run["warmup_accuracy"]) == {"small", "other"}
    assert data["pipelines"] == {"small": str(folders["small"]), "other": str(folders["other"])}


@pytest.mark.parametrize("value", ["no-equals", "=path", "name=", "name=/no/such/pipeline"])
def test_pipeline_ab_wants_name_equals_a_pipeline_folder(pipeline_ab, value: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="NAME=PATH|no pipeline"):
        pipeline_ab.named_path(value)
