"""Benchmark: Sentiment Labelled Sentences (negative / positive, amazon + imdb + yelp review
sentences) on the fixed split of `shared/bench/sentiment_split.py`, our sparse-expert textcat
against the real alternatives: the second domain, showing whether settings carry over from BBC.

    python benchmarks/sentiment.py --systems tfidf_linearsvc
    python benchmarks/sentiment.py --systems sparse_expert --knowledge none,rules --seeds 0,1,2
    python benchmarks/sentiment.py --systems minilm_lr,setfit --seeds 0,1,2
    python benchmarks/sentiment.py --systems sparse_expert_transformer --knowledge none,both --seeds 0,1,2
    python benchmarks/sentiment.py --systems sparse_expert_finetune --knowledge none,both --seeds 0,1,2

Systems (each trained on `train` (2,088 sentences) or `train_small` (96: 16 per source and
label), evaluated once on `test` (596)):

- ``rules_only``: no training, the rule file alone: the label with the larger summed rule
  evidence (ties: the more frequent train label), i.e. the lexicon with negation by itself.
- ``tfidf_linearsvc``: TfidfVectorizer (word 1-2 grams, sublinear tf, otherwise defaults) +
  LinearSVC, C chosen by dev macro-F1 from 0.01-100 (the protocol of the data's README).
- ``sparse_expert``: ``configs/sentiment.cfg`` (hash encoder + MoE, settings chosen on dev
  only) with four knowledge settings: ``none`` (``use_knowledge false``, no KB, no rules),
  ``rules`` (``knowledge/rules/sentiment.jsonl``, the VADER lexicon with negation), ``kb``
  (the compiled FB15k-237 KB, no rules) and ``both``.
- ``sparse_expert_transformer``: ``configs/sentiment_transformer.cfg``, the same with the
  frozen all-MiniLM-L6-v2 encoder of ``configs/bbc_news_transformer.cfg`` (the knowledge
  teacher), every other setting carried over unchanged; the same knowledge settings.
- ``sparse_expert_finetune``: ``configs/sentiment_finetune.cfg``, the same with the MiniLM
  encoder fine-tuned end to end (at a tenth of the classifier's learning rate, chosen on dev).
- ``minilm_lr``, ``setfit``, ``minilm_finetune``: the MiniLM baselines of
  ``benchmarks/baselines.py`` (``baselines.run(system, train, dev, test_texts, labels, seed)``),
  imported only when one of them is asked for.

Runs are stored as in ``bbc.py`` (``bbc.py``'s helpers are reused): per (system, train_set,
knowledge, seed) test accuracy, macro-F1 over both labels, train_seconds, settings and the
test predictions, from which ``report.py`` computes 95% paired-bootstrap intervals. Results
are merged into benchmarks/results/sentiment.json, so the benchmark can be run in parts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bbc  # benchmarks/bbc.py: training, scoring and results helpers
import stats  # benchmarks/stats.py

REPO = bbc.REPO
RESULTS = REPO / "benchmarks" / "results" / "sentiment.json"
DATA = REPO.parent / "shared" / "data" / "sentiment_sentences"
CONFIG = REPO / "configs" / "sentiment.cfg"
# the config of each of our systems (--config replaces sparse_expert's)
CONFIGS = {"sparse_expert": CONFIG, "sparse_expert_transformer": REPO / "configs" / "sentiment_transformer.cfg",
           "sparse_expert_finetune": REPO / "configs" / "sentiment_finetune.cfg"}
KNOWLEDGE_SYSTEMS: tuple[str, ...] = tuple(CONFIGS)
DEFAULT_RULES = REPO / "knowledge" / "rules" / "sentiment.jsonl"

LABELS: tuple[str, ...] = ("negative", "positive")
SPLITS = bbc.SPLITS
TRAIN_SETS = bbc.TRAIN_SETS
KNOWLEDGE = bbc.KNOWLEDGE
MINILM_SYSTEMS: tuple[str, ...] = ("minilm_lr", "setfit", "minilm_finetune")
SYSTEMS: tuple[str, ...] = ("rules_only", "tfidf_linearsvc", *KNOWLEDGE_SYSTEMS, *MINILM_SYSTEMS)
DETERMINISTIC = ("rules_only", "tfidf_linearsvc")
TFIDF_C_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
NOTES = (
    "Sentiment Labelled Sentences (Kotzias et al. 2015, UCI, CC BY 4.0), fixed split of "
    "shared/bench/sentiment_split.py (train 2088, dev 298, test 596, train_small 96 = 16 per source and label; "
    "18 duplicate sentences dropped). accuracy and macro_f1 on test (macro-F1 over negative, positive); "
    "macro_f1_unseen on the test sentences whose text does not occur in train (all of them: duplicates were "
    "dropped before splitting); predictions = the test labels predicted, in test order, for paired-bootstrap "
    "intervals (benchmarks/stats.py). Every setting chosen on dev only: tfidf_linearsvc's C from "
    f"{list(TFIDF_C_GRID)} by dev macro-F1; configs/sentiment.cfg by dev runs; spaCy's model-best by dev score. "
    "seed = system.seed of the spaCy config or the baselines' seed (tfidf_linearsvc is deterministic: seed 0 "
    "only). train_seconds = wall time of the `python -m spacy train` subprocess (initialization included), of "
    "the C search + fit for tfidf_linearsvc, or as baselines.run reports it; on a 2-core machine shared with "
    "other jobs (load_average_1m per run). sparse_expert, sparse_expert_transformer and sparse_expert_finetune "
    "(configs/sentiment.cfg, configs/sentiment_transformer.cfg, configs/sentiment_finetune.cfg) knowledge: "
    "none (no KB, no rules), rules (knowledge/rules/sentiment.jsonl), kb (FB15k-237 KB), both."
)


# --------------------------------------------------------------------------- data

def prepare_corpus(corpus: Path, data_dir: Path = DATA) -> dict[str, Path]:
    """corpus/{split}.spacy and .jsonl of the fixed split, written unless they exist."""
    if not all((corpus / f"{s}.spacy").exists() and (corpus / f"{s}.jsonl").exists() for s in SPLITS):
        from spacy_sparse_expert.data.sentiment import write_sentiment

        write_sentiment(data_dir, corpus)
    return {s: corpus / s for s in SPLITS}


def pairs(records: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(d["text"]), str(d["label"])) for d in records]


# --------------------------------------------------------------------------- systems

def run_tfidf(train: list[dict[str, Any]], dev: list[dict[str, Any]], test: list[dict[str, Any]],
              unseen: Sequence[bool]) -> dict[str, Any]:
    """TF-IDF (word 1-2 grams, sublinear tf) + LinearSVC; C = the grid value with the best dev
    macro-F1 (the smallest such C on ties), then evaluated once on test."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x = vectorizer.fit_transform([d["text"] for d in train])
    y = [d["label"] for d in train]
    x_dev = vectorizer.transform([d["text"] for d in dev])
    dev_f1: dict[float, float] = {}
    for c in TFIDF_C_GRID:
        pred = LinearSVC(C=c).fit(x, y).predict(x_dev)
        dev_f1[c] = stats.macro_f1([d["label"] for d in dev], [str(p) for p in pred], LABELS)
    best_c = max(TFIDF_C_GRID, key=lambda c: (dev_f1[c], -c))
    clf = LinearSVC(C=best_c).fit(x, y)
    train_seconds = time.perf_counter() - start
    preds = [str(p) for p in clf.predict(vectorizer.transform([d["text"] for d in test]))]
    return {**bbc.score([d["label"] for d in test], preds, LABELS, unseen), "train_seconds": train_seconds,
            "settings": {"ngram_range": [1, 2], "sublinear_tf": True, "C": best_c, "C_grid": list(TFIDF_C_GRID),
                         "dev_macro_f1": round(dev_f1[best_c], 4)}}


def run_rules_only(train: list[dict[str, Any]], test: list[dict[str, Any]], rules: Path,
                   unseen: Sequence[bool]) -> dict[str, Any]:
    """The rule file alone, no training: the label with the larger summed rule evidence (what
    the untrained model's rule path adds); on a tie (no hit, or hits that cancel) the more
    frequent train label, the first in LABELS if the train set is balanced."""
    import spacy

    from spacy_sparse_expert.features.features import KnowledgeFeaturizer
    from spacy_sparse_expert.rules.rules import RuleSet

    start = time.perf_counter()
    nlp = spacy.blank("en")
    featurizer = KnowledgeFeaturizer(nlp.vocab, None, RuleSet.from_file(rules), labels=LABELS, n_experts=1)
    counts = {label: sum(d["label"] == label for d in train) for label in LABELS}
    fallback = max(LABELS, key=lambda label: (counts[label], -LABELS.index(label)))
    setup_seconds = time.perf_counter() - start
    preds, ties = [], 0
    for doc in nlp.tokenizer.pipe(d["text"] for d in test):
        bias = featurizer.analyse(doc)[0].label_bias
        if bias.max() == bias.min():
            ties += 1
            preds.append(fallback)
        else:
            preds.append(LABELS[int(bias.argmax())])
    return {**bbc.score([d["label"] for d in test], preds, LABELS, unseen), "train_seconds": setup_seconds,
            "settings": {"rules": str(rules.relative_to(REPO)) if rules.is_relative_to(REPO) else str(rules),
                         "tie_label": fallback, "test_ties": ties}}


def run_minilm(system: str, train: list[dict[str, Any]], dev: list[dict[str, Any]], test: list[dict[str, Any]],
               seed: int, unseen: Sequence[bool], work: Path) -> dict[str, Any]:
    """A MiniLM baseline through benchmarks/baselines.py (imported here: it needs the MiniLM
    weights and setfit, which the other systems do not)."""
    try:
        import baselines  # benchmarks/baselines.py
    except ImportError as exc:
        raise SystemExit(f"{system} needs benchmarks/baselines.py (baselines.run), which cannot be imported: "
                         f"{exc}. Run the other systems with --systems tfidf_linearsvc,sparse_expert.") from exc
    out = baselines.run(system, pairs(train), pairs(dev), [d["text"] for d in test], list(LABELS), seed, work=work)
    preds = [str(p) for p in out["predictions"]]
    extras = {k: v for k, v in out.items() if k not in ("predictions", "seed", "n_train") and _is_json(v)}
    return {**extras, **bbc.score([d["label"] for d in test], preds, LABELS, unseen),
            "train_seconds": float(out["train_seconds"]), "settings": dict(out.get("settings", {}))}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def run_sparse_expert(paths: dict[str, Path], train_set: str, knowledge: str, seed: int, *, kb: Optional[Path],
                      rules: Path, work: Path, test: list[dict[str, Any]], unseen: Sequence[bool],
                      config: Path = CONFIG, extra: Sequence[str] = (),
                      system: str = "sparse_expert", tag: str = "") -> dict[str, Any]:
    overrides = ["--paths.train", str(paths[train_set].with_suffix(".spacy")),
                 "--paths.dev", str(paths["dev"].with_suffix(".spacy")), "--system.seed", str(seed),
                 *bbc.knowledge_overrides(knowledge, kb, rules), *extra]
    if system == "sparse_expert_transformer":  # the frozen encoder's vectors, kept for the other runs
        overrides += ["--components.textcat.model.encoder.cache_dir", str(work / "vector_cache")]
    name = f"{system}-{train_set}-knowledge{knowledge}-seed{seed}" + (f"-{tag}" if tag else "")
    trained = bbc.train_spacy(config, work / "models" / name, work / "logs" / f"{name}.log", overrides)
    return {**trained, **evaluate_spacy(work / "models" / name / "model-best", test, unseen),
            "settings": {"config": str(config.relative_to(REPO)), "overrides": list(extra)}}


def evaluate_spacy(model: Path, test: list[dict[str, Any]], unseen: Sequence[bool]) -> dict[str, Any]:
    import spacy

    nlp = spacy.load(model)
    preds = [bbc.argmax_cats(doc.cats) for doc in nlp.pipe([d["text"] for d in test], batch_size=256)]
    return bbc.score([d["label"] for d in test], preds, LABELS, unseen)


# --------------------------------------------------------------------------- results

RUN_KEYS = bbc.RUN_KEYS


def validate_run(run: dict[str, Any]) -> None:
    missing = [k for k in RUN_KEYS if k not in run]
    if missing:
        raise ValueError(f"run {bbc.run_key(run)} lacks {missing}")
    if run["system"] not in SYSTEMS or run["train_set"] not in TRAIN_SETS:
        raise ValueError(f"unknown system / train_set in {bbc.run_key(run)}")
    if (run["system"] in KNOWLEDGE_SYSTEMS) != (run["knowledge"] in KNOWLEDGE):
        raise ValueError(f"knowledge must be one of {KNOWLEDGE} for {KNOWLEDGE_SYSTEMS} and null otherwise: "
                         f"{bbc.run_key(run)}")
    if len(run["predictions"]) != run.get("n_test", len(run["predictions"])):
        raise ValueError(f"run {bbc.run_key(run)} has {len(run['predictions'])} predictions for {run['n_test']}")


def write_results(out: Path, new_runs: list[dict[str, Any]], test_labels: Sequence[str]) -> dict[str, Any]:
    """Merge `new_runs` into the results file (a run replaces the one with the same system,
    train set, knowledge and seed); the gold test labels are stored once for the bootstrap."""
    for r in new_runs:
        validate_run(r)
    old = json.loads(out.read_text(encoding="utf8")) if out.exists() else {}
    if old.get("test_labels") not in (None, list(test_labels)):
        old = {}  # another test set: its runs cannot be compared with these
    order = {s: i for i, s in enumerate(SYSTEMS)}
    runs = sorted(bbc.merge_runs(old.get("runs", []), new_runs),
                  key=lambda r: (order.get(r["system"], 99), TRAIN_SETS.index(r["train_set"]),
                                 KNOWLEDGE.index(r["knowledge"]) if r["knowledge"] in KNOWLEDGE else -1, r["seed"]))
    runs = [{**{k: r[k] for k in RUN_KEYS}, **{k: v for k, v in r.items() if k not in RUN_KEYS}} for r in runs]
    data = {"runs": runs, "labels": list(LABELS), "test_labels": list(test_labels), "machine": bbc.machine_info(),
            "notes": NOTES}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")
    return data


# --------------------------------------------------------------------------- main

def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="tfidf_linearsvc,sparse_expert", help="comma list of " + ", ".join(SYSTEMS))
    p.add_argument("--train-sets", default="train,train_small")
    p.add_argument("--knowledge", default="none,rules,kb,both", help="runs of our systems: none, rules, kb, both")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--data", type=Path, default=DATA, help="folder with the three *_labelled.txt files")
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work" / "sentiment",
                   help="corpus, models and logs (git-ignored)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--kb", type=Path, default=None,
                   help="compiled KB dir (default: benchmarks/work/kb, imported from knowledge/fb15k237.nt.gz)")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="extra `spacy train` override for our systems (dev tuning), recorded in settings")
    p.add_argument("--eval-set", choices=("test", "dev"), default="test",
                   help="split to evaluate on; choose settings with dev (results then go to "
                        "results/sentiment_dev.json unless --out is given), report with test")
    p.add_argument("--tag", default="", help="suffix of the model folders of this invocation (candidate settings)")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="RESULTS",
                   help="only merge the runs of these results files (parts run in parallel) into --out")
    args = p.parse_args(argv)
    if args.merge:
        parts = [json.loads(path.read_text(encoding="utf8")) for path in args.merge]
        gold = parts[0]["test_labels"]
        if any(part["test_labels"] != gold for part in parts):
            raise SystemExit("the files to merge were made on different test sets")
        write_results(args.out, [run for part in parts for run in part["runs"]], gold)
        print(f"merged {len(parts)} files -> {args.out}")
        return

    systems = bbc._flag_list(args.systems, SYSTEMS, "system")
    train_sets = bbc._flag_list(args.train_sets, TRAIN_SETS, "train set")
    knowledge = bbc._flag_list(args.knowledge, KNOWLEDGE, "knowledge value")
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    extra = [part for kv in args.override for part in ("--" + kv.split("=", 1)[0], kv.split("=", 1)[1])]
    work = args.work.resolve()
    paths = prepare_corpus(work / "corpus", args.data)
    data = {s: bbc.read_jsonl(paths[s].with_suffix(".jsonl")) for s in SPLITS}
    test = data[args.eval_set]
    unseen = bbc.unseen_in_train(test, data["train"])
    if args.eval_set == "dev" and args.out == RESULTS:  # never mix dev scores into the test results
        args.out = RESULTS.with_name("sentiment_dev.json")
    jobs = [(system, train_set, k, seed) for system in systems for train_set in train_sets
            for k in (knowledge if system in KNOWLEDGE_SYSTEMS else [None])
            for seed in (seeds if system not in DETERMINISTIC else [0])]
    needs_kb = any(k in ("kb", "both") for _, _, k, _ in jobs)
    kb = bbc.ensure_kb(args.kb, REPO / "benchmarks" / "work") if needs_kb else None

    for system, train_set, k, seed in jobs:
        label = f"{system}/{train_set}" + ("" if k is None else f"/knowledge={k}") + f"/seed{seed}"
        print(f"== {label}", flush=True)
        run: dict[str, Any] = {"system": system, "train_set": train_set, "knowledge": k, "seed": seed,
                               "n_test": len(test), "n_train": len(data[train_set])}
        if args.eval_set != "test":
            run["eval_set"] = args.eval_set  # n_test, macro_f1, predictions: of this split
        if system == "rules_only":
            run.update(run_rules_only(data[train_set], test, args.rules.resolve(), unseen))
        elif system == "tfidf_linearsvc":
            run.update(run_tfidf(data[train_set], data["dev"], test, unseen))
        elif system in MINILM_SYSTEMS:
            run.update(run_minilm(system, data[train_set], data["dev"], test, seed, unseen, work))
        else:
            config = args.config if system == "sparse_expert" else CONFIGS[system]
            run.update(run_sparse_expert(paths, train_set, str(k), seed, kb=kb, rules=args.rules, work=work,
                                         test=test, unseen=unseen, config=config, extra=extra, system=system,
                                         tag=args.tag))
        run["load_average_1m"] = round(os.getloadavg()[0], 2)
        run = bbc._round(run)
        print(json.dumps({key: v for key, v in run.items() if key != "predictions"}), flush=True)
        write_results(args.out, [run], [d["label"] for d in test])  # after every run: keep what was measured
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
