"""benchmarks/stats.py: macro-F1 as scikit-learn computes it, bootstrap intervals that
cover the point estimate and shrink with more documents, paired differences."""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
LABELS = ("business", "entertainment", "politics", "sport", "tech")


@pytest.fixture(scope="module")
def stats():
    spec = importlib.util.spec_from_file_location("bench_stats", REPO / "benchmarks" / "stats.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _noisy(gold: list[str], error_rate: float, rng: random.Random) -> list[str]:
    return [rng.choice(LABELS) if rng.random() < error_rate else g for g in gold]


@pytest.mark.parametrize("seed", range(20))
def test_macro_f1_equals_sklearn(stats, seed: int) -> None:
    from sklearn.metrics import f1_score

    rng = random.Random(seed)
    n = rng.randint(1, 60)
    gold = [rng.choice(LABELS[: rng.randint(1, 5)]) for _ in range(n)]
    pred = _noisy(gold, rng.random(), rng)
    expected = f1_score(gold, pred, labels=list(LABELS), average="macro", zero_division=0)
    assert stats.macro_f1(gold, pred, LABELS) == pytest.approx(expected, abs=1e-12)


def test_interval_covers_estimate_and_narrows_with_more_documents(stats) -> None:
    rng = random.Random(0)
    widths = []
    for n in (100, 400, 1600):
        gold = [rng.choice(LABELS) for _ in range(n)]
        pred = _noisy(gold, 0.2, rng)
        ci = stats.bootstrap_interval(gold, pred, LABELS, seed=1)
        assert ci["low"] <= ci["macro_f1"] <= ci["high"]
        widths.append(ci["high"] - ci["low"])
    assert widths[0] > widths[1] > widths[2] > 0
    # perfect predictions: every resample scores 1 wherever all labels occur
    gold = list(LABELS) * 40
    ci = stats.bootstrap_interval(gold, gold, LABELS)
    assert ci["macro_f1"] == 1.0 and ci["high"] == 1.0


def test_paired_difference_verdicts(stats) -> None:
    rng = random.Random(3)
    gold = [rng.choice(LABELS) for _ in range(445)]
    good, bad = _noisy(gold, 0.02, rng), _noisy(gold, 0.3, rng)
    assert stats.paired_difference(gold, good, bad, LABELS)["verdict"] == "a better"
    assert stats.paired_difference(gold, bad, good, LABELS)["verdict"] == "b better"
    # two systems that differ on one document of 445: no finding
    one_off = list(good)
    one_off[0] = next(label for label in LABELS if label != good[0])
    same = stats.paired_difference(gold, good, one_off, LABELS)
    assert same["verdict"] == "no measurable difference"
    assert same["low"] <= same["difference"] <= same["high"]
    # the same resamples give the same figures
    assert stats.paired_difference(gold, good, bad, LABELS) == stats.paired_difference(gold, good, bad, LABELS)


def test_bad_input_and_seed_summary(stats) -> None:
    with pytest.raises(ValueError, match="predictions"):
        stats.macro_f1(["sport"], [], LABELS)
    with pytest.raises(ValueError, match="not one of"):
        stats.macro_f1(["cooking"], ["sport"], LABELS)
    s = stats.seed_summary([0.9, 0.92, 0.94])
    assert s["mean"] == pytest.approx(0.92) and s["std"] == pytest.approx(0.02) and s["n"] == 3
    assert stats.seed_summary([0.5])["std"] == 0.0


def test_several_seeds_average_inside_each_resample(stats) -> None:
    rng = random.Random(5)
    gold = [rng.choice(LABELS) for _ in range(300)]
    seeds = [_noisy(gold, 0.15, rng) for _ in range(3)]
    ci = stats.bootstrap_interval(gold, seeds, LABELS)
    mean = sum(stats.macro_f1(gold, p, LABELS) for p in seeds) / 3
    assert ci["macro_f1"] == pytest.approx(mean) and ci["low"] <= mean <= ci["high"]
    # one seed given as a list of one list equals the plain form
    assert stats.bootstrap_interval(gold, [seeds[0]], LABELS) == stats.bootstrap_interval(gold, seeds[0], LABELS)
    worse = [_noisy(gold, 0.4, rng) for _ in range(3)]
    assert stats.paired_difference(gold, seeds, worse, LABELS)["verdict"] == "a better"


def test_throughput_reports_best_and_median_and_warmup_predictions() -> None:
    spec = importlib.util.spec_from_file_location("bench_timing", REPO / "benchmarks" / "timing.py")
    assert spec is not None and spec.loader is not None
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    calls: list[int] = []

    def predict(texts: list[str]) -> list[int]:
        calls.append(len(texts))
        return [len(t.split()) for t in texts]

    out = timing.throughput(predict, ["a b", "c d e"], passes=4)
    assert calls == [2] * 5  # one warm-up, four timed passes
    assert out["predictions"] == [2, 3] and out["passes"] == 4
    assert out["words_per_second_best"] >= out["words_per_second_median"] > 0
    assert timing.count_words(["a b  c", "\tone\ntwo ", ""]) == 5
    with pytest.raises(ValueError):
        timing.throughput(predict, ["a"], passes=0)


def test_median_interval_holds_the_median_and_narrows_with_more_rounds(stats) -> None:
    rng = random.Random(0)
    few = [18 + rng.gauss(0, 8) for _ in range(10)]
    many = [18 + rng.gauss(0, 8) for _ in range(200)]
    median, low, high = stats.median_interval(few)
    assert low <= median <= high and low < high
    m2, low2, high2 = stats.median_interval(many)
    assert low2 <= m2 <= high2 and high2 - low2 < (high - low) / 2
    assert stats.median_interval([5.0, 5.0, 5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="no values"):
        stats.median_interval([])
