"""Benchmark: distil a big BBC News teacher into a small student, against the same
student trained without the teacher.

    python benchmarks/distill.py                    # teacher (reused if trained), both students, measure
    python benchmarks/distill.py --retrain-teacher  # train the teacher again first
    python benchmarks/distill.py --teacher benchmarks/work/models/sparse_expert_transformer-train-knowledgeboth-seed0/model-best \
        --tag transformer --out benchmarks/results/distill_transformer.json
    python benchmarks/distill.py --teacher .../sparse_expert_transformer-train_small-knowledgeboth-seed0/model-best \
        --train-set train_small --unlabelled-rest --tag transformer_small --out benchmarks/results/distill_transformer_small.json

``--teacher`` takes any trained pipeline as the teacher instead of training
``configs/bbc_news_teacher.cfg`` (e.g. the frozen-MiniLM knowledge MoE of
``benchmarks/bbc.py --systems sparse_expert_transformer``). ``--train-set train_small`` gives the
students the 100 labelled documents only; ``--unlabelled-rest`` adds the other train documents
as unlabelled text (``--unlabelled``: the teacher labels them, their gold labels are never read).
A transformer teacher's words/s is measured with its vector cache switched off
(``cache_dir`` null, ``cache_mb`` 0) on the first ``--teacher-speed-docs`` test documents, one
timed pass after a warm-up; its macro-F1 comes from all test documents.

- ``teacher``: ``configs/bbc_news_teacher.cfg`` (16 experts, top-2, width-128 hashed
  encoder, knowledge on: FB15k-237 KB + knowledge/rules/news.jsonl), trained with
  ``python -m spacy train`` on ``train`` with ``dev`` for model selection (model-best).
- ``student``: ``sparse-expert distill`` with ``configs/distill.cfg`` (4 experts, top-1,
  one window block; seeded from the teacher, KD loss, pruning, fine-tuning), on
  ``train`` with ``dev`` for model selection.
- ``student_no_teacher``: the same config and trainer with alpha = 0 (gold labels only),
  init_from_teacher = false, no crops and no unlabelled text (nobody to label them),
  trained for at least as many optimizer steps (its epochs times (1 + augment_crops)
  times (labelled + unlabelled) / labelled, the student's own overrides applied; dev
  picks its best epoch): nothing of the teacher's weights or predictions reaches it (it
  gets the same rules, which are inputs, not learned).

Each is measured in this one process, one after another, on ``test``: params (torch
classifier parameters), disk_bytes (the pipeline folder), words_per_second (whitespace
words of the test texts / seconds of one ``nlp.pipe`` pass from raw text, best of 3
after a warm-up, one torch thread), macro_f1 (sklearn, argmax of doc.cats), accuracy.
Training runs use one torch thread (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

os.environ.setdefault("OMP_NUM_THREADS", "1")  # also for the `spacy train` subprocess

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

import bbc  # noqa: E402  (corpus, KB, spacy train and scoring helpers of the BBC benchmark)
import timing  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "distill.json"
TEACHER_CONFIG = REPO / "configs" / "bbc_news_teacher.cfg"
STUDENT_CONFIG = REPO / "configs" / "distill.cfg"
NO_TEACHER = {"distill.alpha": 0.0, "distill.init_from_teacher": False, "distill.router_weight": 0.0,
              "distill.augment_crops": 0}
NOTES = (
    "BBC News, fixed split (train 1558, dev 222, test 445). teacher: configs/bbc_news_teacher.cfg trained "
    "with `python -m spacy train` (dev for model-best). student: `sparse-expert distill` with "
    "configs/distill.cfg (teacher-seeded, KD loss, pruning + fine-tuning, dev for epoch selection). "
    "student_no_teacher: same config and trainer with alpha=0 and init_from_teacher=false. All measured "
    "in one process on test: params = torch classifier parameters; disk_bytes = pipeline folder (the "
    "copied KB included); words_per_second = whitespace words / seconds of one nlp.pipe pass over the test "
    "texts (tokenization included), best of 3 after a warm-up, 1 torch thread, 2-core machine shared "
    "with other jobs; macro_f1 = sklearn f1_score(average='macro'), prediction = argmax of doc.cats."
)


def no_teacher_overrides(config: Path, overrides: Optional[Dict[str, Any]] = None, *, n_labelled: int = 1,
                         n_unlabelled: int = 0) -> Dict[str, Any]:
    """NO_TEACHER, with at least as many optimizer steps as the distilled student: it
    trains on the `n_labelled` documents only, while the student's epoch also holds the
    teacher-labelled crops (``augment_crops`` per document) and the `n_unlabelled`
    documents, so the baseline gets epochs * (1 + augment_crops) * (n_labelled +
    n_unlabelled) / n_labelled, rounded up (dev picks its best epoch). The settings are
    read from the student's config with the student's own `overrides`: a student run
    with ``distill.augment_crops 0`` gets no crops, so its baseline gets no extra
    epochs for them."""
    from spacy_sparse_expert.distill import DistillSettings, load_student_config

    settings = DistillSettings.from_config(load_student_config(config, overrides))
    factor = (1 + settings.augment_crops) * (n_labelled + n_unlabelled) / n_labelled
    return {**NO_TEACHER, "distill.epochs": math.ceil(settings.epochs * factor),
            "distill.prune.finetune_epochs": math.ceil(settings.prune.finetune_epochs * factor)}


def train_teacher(work: Path, corpus: Dict[str, Path], kb: Path, rules: Path) -> Dict[str, Any]:
    out = work / "distill" / "teacher"
    overrides = ["--paths.train", str(corpus["train"].with_suffix(".spacy")),
                 "--paths.dev", str(corpus["dev"].with_suffix(".spacy")),
                 "--paths.kb", str(kb), "--paths.rules", str(rules)]
    info = bbc.train_spacy(TEACHER_CONFIG, out, work / "distill" / "teacher.log", overrides)
    (work / "distill" / "teacher_train.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf8")
    return info


def run_student(teacher: Path, output: Path, corpus: Dict[str, Path], config: Path,
                overrides: Optional[Dict[str, Any]] = None, train_set: str = "train",
                unlabelled: Optional[Path] = None) -> Dict[str, Any]:
    from spacy_sparse_expert.distill import distill

    start = time.perf_counter()
    result = distill(teacher, output, config=config, train=corpus[train_set].with_suffix(".spacy"),
                     dev=corpus["dev"].with_suffix(".spacy"), unlabelled=unlabelled, overrides=overrides,
                     measure=False)
    info = result.to_dict()
    info["train_seconds"] = round(time.perf_counter() - start, 1)
    return info


def write_unlabelled_rest(corpus: Dict[str, Path], out: Path) -> int:
    """The train documents that are not in train_small, as JSONL {"text": ...} lines (no labels)."""
    small = {d["text"] for d in bbc.read_jsonl(corpus["train_small"].with_suffix(".jsonl"))}
    rest = [d["text"] for d in bbc.read_jsonl(corpus["train"].with_suffix(".jsonl")) if d["text"] not in small]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps({"text": t}) + "\n" for t in rest), encoding="utf8")
    return len(rest)


def _has_transformer(path: Path) -> bool:
    cfg = (path / "config.cfg").read_text(encoding="utf8")
    return "TransformerEncoder" in cfg


def measure(path: Path, test: list[dict[str, Any]], speed_docs: int = 100) -> Dict[str, Any]:
    import spacy

    from spacy_sparse_expert.distill.evaluate import count_words
    from spacy_sparse_expert.distill.pipelines import dir_bytes, find_component
    from spacy_sparse_expert.ml.architectures import torch_module

    nlp = spacy.load(path)
    name = find_component(nlp)
    texts = [d["text"] for d in test]

    def predict_with(pipeline: Any) -> Any:
        def predict(batch: list[str]) -> list[str]:
            return [bbc.argmax_cats(doc.cats) for doc in pipeline.pipe(batch, batch_size=pipeline.batch_size)]
        return predict

    extra: Dict[str, Any] = {}
    if _has_transformer(path):
        # macro-F1 over all test docs (its frozen vectors may come from the disk cache: same
        # answers); speed without any cache, on a prefix of the test set, one timed pass
        preds = predict_with(nlp)(texts)
        uncached = spacy.load(path, config={f"components.{name}.model.encoder.cache_dir": None,
                                            f"components.{name}.model.encoder.cache_mb": 0})
        speed = timing.throughput(predict_with(uncached), texts[:speed_docs], passes=1)
        speed["predictions"] = preds
        extra = {"speed_docs": min(speed_docs, len(texts)), "speed_words": count_words(texts[:speed_docs]),
                 "speed_passes": 1}
    else:
        speed = timing.throughput(predict_with(nlp), texts)
    scores = bbc.score([d["label"] for d in test], speed["predictions"])
    return {"params": sum(p.numel() for p in torch_module(nlp.get_pipe(name).model).parameters()),
            "disk_bytes": dir_bytes(path), "words_per_second": round(speed["words_per_second_best"]),
            "words_per_second_median": round(speed["words_per_second_median"]), "macro_f1": round(scores["macro_f1"], 4),
            "accuracy": round(scores["accuracy"], 4), "words": count_words(texts), **extra,
            # the label of each test document, for paired intervals across runs (distill_seeds.py)
            "predictions": list(speed["predictions"])}


def main(argv: Optional[list[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=REPO / "benchmarks" / "work")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--retrain-teacher", action="store_true", help="train the teacher even if it exists")
    p.add_argument("--student-config", type=Path, default=STUDENT_CONFIG)
    p.add_argument("--rules", type=Path, default=bbc.DEFAULT_RULES)
    p.add_argument("--skip-training", action="store_true", help="only measure the pipelines already trained")
    p.add_argument("--teacher", type=Path, default=None,
                   help="a trained pipeline to use as the teacher (default: train configs/bbc_news_teacher.cfg)")
    p.add_argument("--train-set", choices=("train", "train_small"), default="train",
                   help="the labelled documents the students get")
    p.add_argument("--unlabelled-rest", action="store_true",
                   help="also give the students the train documents outside --train-set as unlabelled text")
    p.add_argument("--tag", default="", help="suffix of the student folders (keeps other runs' students)")
    p.add_argument("--set", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="student config override for both students, e.g. --set distill.augment_crops 0")
    p.add_argument("--teacher-speed-docs", type=int, default=100,
                   help="test documents timed for a transformer teacher (uncached)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    work = args.work.resolve()
    corpus = bbc.prepare_corpus(work / "corpus")
    kb = bbc.ensure_kb(None, work)
    teacher = args.teacher.resolve() if args.teacher else work / "distill" / "teacher" / "model-best"
    suffix = f"_{args.tag}" if args.tag else ""
    student, baseline = work / "distill" / f"student{suffix}", work / "distill" / f"student_no_teacher{suffix}"
    unlabelled, n_unlabelled = None, 0
    if args.unlabelled_rest:
        unlabelled = work / "distill" / f"unlabelled_outside_{args.train_set}.jsonl"
        n_unlabelled = write_unlabelled_rest(corpus, unlabelled)
        print(f"unlabelled: {n_unlabelled} train docs outside {args.train_set}")
    sets = {key: (json.loads(value) if value[:1] in "0123456789-[{tfn" else value) for key, value in args.set}
    runs: Dict[str, Any] = {}
    if not args.skip_training:
        n_labelled = len(bbc.read_jsonl(corpus[args.train_set].with_suffix(".jsonl")))
        if args.teacher is None and (args.retrain_teacher or not (teacher / "meta.json").exists()):
            print("== teacher", flush=True)
            train_teacher(work, corpus, kb, args.rules)
        for name, out, overrides in (("student", student, sets),
                                     ("student_no_teacher", baseline,
                                      {**sets, **no_teacher_overrides(args.student_config, sets, n_labelled=n_labelled,
                                                                         n_unlabelled=n_unlabelled)})):
            print(f"== {name}", flush=True)
            # the baseline has no teacher to label unlabelled text: gold documents only
            runs[name] = run_student(teacher, out, corpus, args.student_config, overrides, args.train_set,
                                     unlabelled if name == "student" else None)
            (work / "distill" / f"{name}{suffix}_run.json").write_text(json.dumps(runs[name], indent=2) + "\n",
                                                                       encoding="utf8")
    test = bbc.read_jsonl(corpus["test"].with_suffix(".jsonl"))
    data: Dict[str, Any] = {}
    for name, path in (("teacher", teacher), ("student", student), ("student_no_teacher", baseline)):
        print(f"== measure {name}", flush=True)
        data[name] = measure(path, test, args.teacher_speed_docs)
        print(json.dumps(data[name]), flush=True)
    teacher_train = work / "distill" / "teacher_train.json"
    if args.teacher is not None:
        data["teacher"]["path"] = str(args.teacher)
    elif teacher_train.exists():
        info = json.loads(teacher_train.read_text(encoding="utf8"))
        data["teacher"]["train_seconds"] = round(info["train_seconds"], 1)
        data["teacher"]["command"] = info.get("command")
    for name in ("student", "student_no_teacher"):
        run_file = work / "distill" / f"{name}{suffix}_run.json"
        if run_file.exists():
            run = json.loads(run_file.read_text(encoding="utf8"))
            data[name]["train_seconds"] = run.get("train_seconds")
            data[name]["pruning"] = run.get("pruning")
            data[name]["transfer"] = run.get("transfer")
            data[name]["epochs"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                                    for row in run.get("history", [])]
    t, s, b = data["teacher"], data["student"], data["student_no_teacher"]
    data["goals"] = {
        "speedup_vs_teacher": round(s["words_per_second"] / t["words_per_second"], 2),
        "param_reduction": round(1 - s["params"] / t["params"], 3),
        "f1_gap_points": round(100 * (t["macro_f1"] - s["macro_f1"]), 2),
        "f1_gain_over_no_teacher_points": round(100 * (s["macro_f1"] - b["macro_f1"]), 2),
    }
    data["goals"]["met"] = {
        "speedup_at_least_3x": data["goals"]["speedup_vs_teacher"] >= 3.0,
        "params_at_least_60pct_fewer": data["goals"]["param_reduction"] >= 0.6,
        "f1_within_1_point": data["goals"]["f1_gap_points"] <= 1.0,
        "better_than_no_teacher": data["goals"]["f1_gain_over_no_teacher_points"] > 0,
    }
    data["machine"] = bbc.machine_info()
    data["goals"]["met"].update({
        # the knowledge teacher's goals (frozen-MiniLM teacher): within 0.5 point with the full train
        # set, within 1 point with 100 labelled docs and unlabelled text; 20x faster, 150k words/s
        "f1_within_half_point": data["goals"]["f1_gap_points"] <= 0.5,
        "speedup_at_least_20x": data["goals"]["speedup_vs_teacher"] >= 20.0,
        "student_at_least_150k_words_per_second": s["words_per_second"] >= 150_000,
    })
    data["setup"] = {"train_set": args.train_set, "unlabelled": None if unlabelled is None else str(unlabelled.name),
                     "student_overrides": sets, "teacher": str(teacher)}
    data["command"] = " ".join(["python benchmarks/distill.py", *(sys.argv[1:] if argv is None else argv)])
    data["notes"] = NOTES
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf8")
    print(json.dumps(data["goals"], indent=2))
    print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
