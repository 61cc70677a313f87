"""Benchmark: words per second of spaCy's efficiency textcat, ours with knowledge on and
off, the distilled student, and a distilled student that keeps the KB and the rule file
(``student_knowledge``), all loaded in one process and timed interleaved; and a per-part
profile of ``nlp.pipe`` for ours with knowledge on.

    python benchmarks/speed.py                       # threads 1 and 2, writes results/speed.json
    python benchmarks/speed.py --repeats 10 --label after

Method
- Texts: the BBC test set (``WORK/corpus/test.jsonl``, made by ``benchmarks/bbc.py`` from
  ``shared/bench/bbc_split.py``) and the short texts: the first sentence of each test
  document (:func:`first_sentence`: leading whitespace dropped, then the text up to the
  first line break or the first ``.``/``!``/``?`` that is followed by whitespace,
  whichever comes first; in BBC articles that is the headline).
- Words are whitespace-split tokens (``timing.count_words``), the same count for every system.
- Each thread setting runs in its own subprocess with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``
  set before anything is imported and ``torch.set_num_threads``, so settings never leak.
- In that process all systems are loaded, each makes one untimed warm-up pass (its
  accuracy is kept as a sanity check that the right model ran), then ``repeats`` rounds:
  in each round every system makes one timed pass over the texts, the order rotated by
  one system per round; ``gc.collect()`` runs (untimed) before every pass so no system
  pays for another's garbage. A pass is ``nlp.pipe(texts, batch_size=nlp.batch_size)``
  (each pipeline's own configured batch size) plus the argmax of ``doc.cats``. A model
  with a token cache (the context-free student) starts every pass with it empty, so each
  pass pays for computing its distinct tokens once. Timed with them, as a floor: spaCy's
  tokenizer alone (``spacy_tokenizer``: ``nlp.tokenizer.pipe`` of the spaCy pipeline, the
  same English tokenizer that every pipeline here runs first). Its ratio to spaCy's
  textcat is the most that any pipeline with that tokenizer can reach, whatever its
  component costs.
- Figures: words/s of the best and of the median pass (and, beside them, words per CPU
  second of the best pass, ``time.process_time``: a pass that waited for a core on a shared
  machine loses wall time but not CPU time); ratios (for example ours with
  knowledge / spaCy) of the bests, of the medians, and the median over rounds of the
  per-round ratio (the two passes of a round ran seconds apart, so it is the figure least
  moved by other jobs on a shared machine), and ``best_cpu`` of the CPU-time figures. All
  ratios come from the same run.
- Profile (ours, knowledge on): each part of ``nlp.pipe``'s work is timed directly on its
  own, on the same documents and batches (the component's: ``nlp.batch_size`` docs, grown to
  ``pipe_min_tokens`` tokens where the code has it), in as many interleaved rounds as the timing,
  best round per part, reported as microseconds per word: tokenizer (``nlp.make_doc``), linking (the
  featurizer's linker per doc), rules (its rule matcher's token and entity hits),
  knowledge assembly (``featurizer.pipe`` minus linking and rules: the per-token arrays,
  and from commit d1230db on the one read of each batch's ORTH and LOWER that linking and
  rules share; in code before that commit also the annotation records), arrays (``build_inputs`` with the knowledge precomputed: hashed ids,
  n-gram bags, knowledge concatenation), model (numpy -> torch and the module's forward
  in eval and inference mode, split into encoder / MoE / rest by forward hooks),
  set_annotations (making the annotation records of the batch's links and rule hits, where
  the code makes them apart from the features, and writing them with the cats), and other = the whole ``nlp.pipe`` pass minus all of these (thinc
  wrapper, activation, spaCy's batching). Re-run with ``--label after`` once the parts
  change: profiles of other labels are kept in the results file, so "before" and "after"
  stand side by side; the speed table is always the latest run's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bbc
from timing import count_words

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work"
RESULTS = REPO / "benchmarks" / "results" / "speed.json"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# system -> (option, default pipeline folder, the command that makes it)
SYSTEMS: dict[str, tuple[str, Path, str]] = {
    "spacy_textcat_efficiency": ("--spacy-model", WORK / "models" / "spacy_textcat_efficiency-train-seed0" / "model-best",
                                 "python benchmarks/bbc.py --systems spacy_textcat_efficiency --train-sets train --seeds 0"),
    "sparse_expert_knowledge": ("--knowledge-model", WORK / "models" / "sparse_expert-train-knowledgeboth-seed0" / "model-best",
                                "python benchmarks/bbc.py --systems sparse_expert --train-sets train --knowledge both --seeds 0"),
    "sparse_expert_no_knowledge": ("--no-knowledge-model",
                                   WORK / "models" / "sparse_expert-train-knowledgenone-seed0" / "model-best",
                                   "python benchmarks/bbc.py --systems sparse_expert --train-sets train --knowledge none --seeds 0"),
    "student": ("--student-model", WORK / "distill" / "student", "python benchmarks/distill.py"),
    # the fastest pipeline of ours that keeps knowledge on: a context-free student that
    # reads the KB and the rule file, distilled from the `make demo`-style teacher (100
    # labelled documents, KB and rules) with the rest of train as unlabelled text
    "student_knowledge": ("--knowledge-student-model", WORK / "distill" / "student_hash_small_kb",
                          "python benchmarks/distill.py --teacher "
                          "benchmarks/work/models/sparse_expert-train_small-knowledgeboth-seed0/model-best "
                          "--train-set train_small --unlabelled-rest --set distill.student_kb true --set "
                          "components.textcat.model.knowledge_words 1.0 --tag hash_small_kb "
                          "--out benchmarks/results/distill_hash_small_kb.json"),
}
BASELINE = "spacy_textcat_efficiency"
# the baseline's tokenizer alone, timed beside the pipelines: the floor of all of them
TOKENIZER = "spacy_tokenizer"
# (numerator, denominator): every ratio stored beside the raw figures
RATIOS: tuple[tuple[str, str], ...] = (
    ("sparse_expert_knowledge", BASELINE), ("sparse_expert_no_knowledge", BASELINE), ("student", BASELINE),
    ("student_knowledge", BASELINE),
    ("sparse_expert_knowledge", "sparse_expert_no_knowledge"), (TOKENIZER, BASELINE),
)
TEXT_SETS: tuple[str, ...] = ("bbc_test", "short")
PROFILED = "sparse_expert_knowledge"
PARTS: tuple[str, ...] = ("tokenizer", "linking", "rules", "knowledge_assembly", "arrays", "model_encoder",
                          "model_moe", "model_rest", "set_annotations", "other")
KNOWLEDGE_PARTS: tuple[str, ...] = ("linking", "rules", "knowledge_assembly")
_SENTENCE_END = re.compile(r"\n|[.!?](?=\s)")


# --------------------------------------------------------------------------- pure parts

def first_sentence(text: str) -> str:
    """The text up to the first line break or sentence end (., ! or ? followed by
    whitespace, the mark kept), after dropping leading whitespace; all of it if neither."""
    text = text.lstrip()
    m = _SENTENCE_END.search(text)
    return (text[: m.end()] if m else text).strip()


def short_texts(texts: Sequence[str]) -> list[str]:
    return [first_sentence(t) for t in texts]


def summarize(seconds: Sequence[float], words: int, cpu_seconds: Sequence[float] | None = None) -> dict[str, Any]:
    """Words/s of the best and of the median pass (timing.throughput's definition); with
    `cpu_seconds` (the process's CPU time of each pass) also words per CPU second of the
    best pass: on a shared machine a pass that waited for a core loses wall time, not CPU
    time (with 2 threads CPU time sums both threads)."""
    if not seconds:
        raise ValueError("no timed passes")
    out = {"words_per_second_best": words / min(seconds), "words_per_second_median": words / statistics.median(seconds),
           "seconds": list(seconds)}
    if cpu_seconds:
        out.update(words_per_cpu_second_best=words / min(cpu_seconds), cpu_seconds=list(cpu_seconds))
    return out


def ratios(speeds: dict[str, dict[str, Any]], pairs: Sequence[tuple[str, str]] = RATIOS) -> dict[str, dict[str, float]]:
    """"a/b": best / best, median / median and the median of the per-round ratios
    (round i: b's seconds / a's seconds) for each pair whose two systems were timed."""
    out: dict[str, dict[str, float]] = {}
    for a, b in pairs:
        if a not in speeds or b not in speeds:
            continue
        sa, sb = speeds[a], speeds[b]
        if len(sa["seconds"]) != len(sb["seconds"]):
            raise ValueError(f"{a} and {b} have {len(sa['seconds'])} and {len(sb['seconds'])} passes: not one run")
        out[f"{a}/{b}"] = {
            "best": sa["words_per_second_best"] / sb["words_per_second_best"],
            "median": sa["words_per_second_median"] / sb["words_per_second_median"],
            "median_of_rounds": statistics.median(tb / ta for ta, tb in zip(sa["seconds"], sb["seconds"])),
        }
        if "words_per_cpu_second_best" in sa and "words_per_cpu_second_best" in sb:
            out[f"{a}/{b}"]["best_cpu"] = sa["words_per_cpu_second_best"] / sb["words_per_cpu_second_best"]
    return out


def interleave(predict: dict[str, Callable[[list[str]], Any]], texts: list[str], repeats: int) -> dict[str, dict]:
    """Time one pass of every system per round, the order rotated each round."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    names = list(predict)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            predict[name](texts)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    words = count_words(texts)
    return {n: summarize(s, words, cpu[n]) for n, s in seconds.items()}


def goals(run_ratios: dict[str, dict[str, dict[str, float]]], knowledge_us: float | None) -> dict[str, Any]:
    """Issue 15's goals on the best-pass ratios of one thread setting."""
    def best(texts: str, pair: str) -> float | None:
        return run_ratios.get(texts, {}).get(pair, {}).get("best")

    k, s = "sparse_expert_knowledge/" + BASELINE, "student/" + BASELINE
    checks = {"knowledge_on_half_of_spacy_bbc": (best("bbc_test", k), 0.5),
              "knowledge_on_third_of_spacy_short": (best("short", k), 1 / 3),
              "student_at_least_spacy_bbc": (best("bbc_test", s), 1.0),
              "knowledge_features_under_1us_per_word": (knowledge_us, None)}  # a ceiling, not a floor
    return {name: {"value": v, "met": None if v is None else (v < 1.0 if floor is None else v >= floor)}
            for name, (v, floor) in checks.items()}


def validate(data: dict[str, Any]) -> None:
    """Raise ValueError unless `data` has the shape report.py renders."""
    need = {"results": ("command", "date", "machine", "repeats", "texts", "systems", "runs", "goals", "profiles"),
            "run": ("threads", "texts", "speeds", "ratios"), "profile": ("label", "threads", "texts", "us_per_word")}
    items = [("results", data)] + [("run", r) for r in data.get("runs", [])] + [("profile", p) for p in data.get("profiles", [])]
    for what, item in items:
        missing = [k for k in need[what] if k not in item] + [p for p in PARTS if what == "profile" and p not in
                                                              item.get("us_per_word", {})]
        if missing:
            raise ValueError(f"speed {what} lacks {missing}: {str(item)[:200]}")
        if what == "run" and (item["texts"] not in TEXT_SETS or set(item["speeds"]) - set(SYSTEMS) - {TOKENIZER}):
            raise ValueError(f"unknown texts or systems in run: {item['texts']}, {sorted(item['speeds'])}")


def merge_profiles(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """Profiles of `new` replace those of `old` with the same (label, threads, texts)."""
    def key(p: dict) -> tuple:
        return p["label"], p["threads"], p["texts"]

    replaced = {key(p) for p in new}
    return [p for p in old if key(p) not in replaced] + list(new)


# --------------------------------------------------------------------------- worker (one thread setting)

def profile(nlp: Any, texts: list[str], repeats: int) -> dict[str, Any]:
    """Microseconds per word of each part of nlp.pipe (see the module docstring)."""
    import torch

    from spacy_sparse_expert.ml.architectures import torch_module
    from spacy_sparse_expert.ml.inputs import build_inputs, to_torch

    comp = nlp.get_pipe(nlp.pipe_names[-1])
    model, feat = comp.model, comp.featurizer
    module = torch_module(model)
    linker, matcher = feat.linker, feat.rule_matcher
    docs = [nlp.make_doc(t) for t in texts]
    size = nlp.batch_size
    if hasattr(comp, "pipe_min_tokens"):  # the batches the component's pipe makes
        from spacy_sparse_expert.pipeline.textcat import _word_batches

        batches = list(_word_batches(docs, size, comp.pipe_min_tokens))
    else:  # older code: spaCy's batches of batch_size docs
        batches = [docs[i : i + size] for i in range(0, len(docs), size)]
    # the featurizer's own batch steps where the code has them (linker.pipe and
    # _rule_hits over a batch), else the per-doc calls of older code, so that
    # knowledge_assembly (featurizer.pipe minus linking and rules) is what is left
    batch_steps = hasattr(feat, "_rule_hits") and (linker is None or hasattr(linker, "pipe"))
    # code whose featurizer reads each batch's tokens once for linking and rules gets them
    # read here, untimed, so that reading them is counted once, in knowledge_assembly
    shared_tokens = hasattr(feat, "_analyse")
    if shared_tokens:
        from spacy_sparse_expert.features.bounded_patterns import doc_batch

        token_batches = {id(b): doc_batch(b) for b in batches}
    if batch_steps:
        from spacy_sparse_expert.features.features import BatchLinks, LinkResult

        def link_batch(b: list) -> list:
            if linker is None:
                return [LinkResult.empty() for _ in b]
            return linker.pipe(b, token_batches[id(b)].orths) if shared_tokens else linker.pipe(b)

        def rule_hits(b: list, bl: list) -> Any:
            if shared_tokens:
                return feat._rule_hits(b, BatchLinks.of(bl), token_batches[id(b)])
            return feat._rule_hits(b, BatchLinks.of(bl))
    links = [linker(d) for d in docs] if linker is not None and not batch_steps else []
    batch_links = [link_batch(b) for b in batches] if batch_steps else []
    knowledge = [feat.pipe(b) for b in batches]
    # the inputs the component's inference builds: code whose token-cached models hash only
    # the tokens their cache lacks builds them lazily for such a model
    lazy = {"lazy_hash_ids": True} if getattr(module, "caches_tokens", lambda: False)() else {}

    def arrays() -> list:
        return [build_inputs(model, b, knowledge=k, **lazy) for b, k in zip(batches, knowledge)]

    inputs = arrays()
    preds = [comp.predict(b) for b in batches]
    hooked: dict[str, float] = {"model_encoder": 0.0, "model_moe": 0.0}
    starts: dict[int, float] = {}

    def pre(mod: Any, _args: Any) -> None:
        starts[id(mod)] = time.perf_counter()

    def post_for(part: str) -> Callable[..., None]:
        def post(mod: Any, _args: Any, _out: Any) -> None:
            hooked[part] += time.perf_counter() - starts[id(mod)]
        return post

    handles = []
    for part, mods in (("model_encoder", [module.encoder]), ("model_moe", list(module.moe))):
        for mod in mods:
            handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post_for(part))]

    def rules() -> None:
        if matcher is None:
            return
        if batch_steps:
            for b, bl in zip(batches, batch_links):
                rule_hits(b, bl)
            return
        for d, link in zip(docs, links or [None] * len(docs)):
            matcher.token_hits(d)
            if link is not None:
                matcher.entity_hits(link.entities, link.starts, link.ends)

    def forward() -> None:
        was_training = module.training
        module.eval()
        with torch.inference_mode():
            for x in inputs:
                module(**to_torch(x, torch.device("cpu")))
        module.train(was_training)

    # code that makes the annotation records apart from the features (only when they are
    # written, not in training) makes them here, from the links and hits of each batch
    lazy_records = batch_steps and shared_tokens
    batch_hits = [rule_hits(b, bl) if matcher is not None else None
                  for b, bl in zip(batches, batch_links)] if lazy_records else []

    def set_annotations() -> None:
        if lazy_records:
            from spacy_sparse_expert.features.rule_matcher import FlatHits

            for b, p, bl, h in zip(batches, preds, batch_links, batch_hits):
                p = {**p, "annotations": feat._annotations(bl, FlatHits.empty() if h is None else h)}
                comp.set_annotations(b, p)
            return
        for b, p in zip(batches, preds):
            comp.set_annotations(b, p)

    timed: dict[str, Callable[[], Any]] = {
        "tokenizer": lambda: [nlp.make_doc(t) for t in texts],
        "linking": (lambda: [link_batch(b) for b in batches]) if batch_steps
                   else (lambda: [linker(d) for d in docs] if linker is not None else None),
        "rules": rules,
        "featurizer_pipe": lambda: [feat.pipe(b) for b in batches],
        "arrays": arrays,
        "model": forward,
        "set_annotations": set_annotations,
        "pipe": lambda: list(nlp.pipe(texts, batch_size=size)),
    }
    best: dict[str, float] = {}
    try:
        for r in range(repeats):
            for name, fn in timed.items():
                gc.collect()
                hooked.update(model_encoder=0.0, model_moe=0.0)
                start = time.perf_counter()
                fn()
                took = time.perf_counter() - start
                parts = {name: took}
                if name == "model":  # split by the hooks of this same pass
                    parts = {"model_encoder": hooked["model_encoder"], "model_moe": hooked["model_moe"],
                             "model_rest": took - hooked["model_encoder"] - hooked["model_moe"]}
                for part, sec in parts.items():
                    best[part] = min(best.get(part, sec), sec)
    finally:
        for h in handles:
            h.remove()
    best["knowledge_assembly"] = best.pop("featurizer_pipe") - best["linking"] - best["rules"]
    best["other"] = best["pipe"] - sum(best[p] for p in PARTS if p != "other")
    words = count_words(texts)
    us = {part: 1e6 * best[part] / words for part in (*PARTS, "pipe")}
    return {"us_per_word": {p: us[p] for p in PARTS}, "pipe_us_per_word": us["pipe"],
            "knowledge_us_per_word": sum(us[p] for p in KNOWLEDGE_PARTS), "words": words, "docs": len(texts)}


def _cold_token_caches(nlp: Any, predict: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """`predict` with the token cache of every torch classifier of `nlp` emptied first
    (a context-free model such as the student computes each distinct token once and
    then looks it up, see spacy_sparse_expert/ml/torch/token_cache.py): every pass
    pays for its own distinct tokens, as a first pass over new text would."""
    caches = [getattr(shim._model, "token_cache") for _, pipe in nlp.pipeline if hasattr(pipe, "model")
              for node in pipe.model.walk() for shim in node.shims if hasattr(getattr(shim, "_model", None),
                                                                              "token_cache")]
    if not caches:
        return predict

    def cold(texts: list[str]) -> Any:
        for cache in caches:
            cache.clear()
        return predict(texts)
    return cold


def predictors(nlps: dict[str, Any]) -> dict[str, Callable[[list[str]], Any]]:
    """One timed pass per pipeline: ``nlp.pipe`` at its own batch size, the argmax label
    of each doc, token caches emptied first (`_cold_token_caches`); and, when spaCy's
    pipeline is among them, its tokenizer alone (``TOKENIZER``). The loaded pipelines
    are then frozen out of the garbage collector's reach: they are never garbage, and the
    gc.collect() before every timed pass would walk them (half a second a call on a busy
    machine)."""
    predict = {name: _cold_token_caches(nlp, lambda texts, nlp=nlp: [
        bbc.argmax_cats(d.cats) for d in nlp.pipe(texts, batch_size=nlp.batch_size)]) for name, nlp in nlps.items()}
    if BASELINE in nlps:
        tokenizer = nlps[BASELINE].tokenizer
        predict[TOKENIZER] = lambda texts: [len(doc) for doc in tokenizer.pipe(texts)]
    gc.collect()
    gc.freeze()
    return predict


def warm_up(predict: dict[str, Callable[[list[str]], Any]], texts: list[str], gold: list[str]) -> dict[str, float]:
    """One untimed pass of every system over `texts`; RETURNS each pipeline's accuracy
    against `gold` (it says the right model ran; the tokenizer alone has no labels)."""
    accuracy = {}
    for system, fn in predict.items():
        pred = fn(texts)
        if system != TOKENIZER:
            accuracy[system] = sum(p == g for p, g in zip(pred, gold)) / len(texts)
    return accuracy


def worker(paths: dict[str, Path], texts: dict[str, list[str]], gold: dict[str, list[str]], threads: int,
           repeats: dict[str, int]) -> dict[str, Any]:
    """Every system loaded once; per text set: warm-up, interleaved timing, profile
    (as many rounds as the timing)."""
    import spacy
    import torch

    import spacy_sparse_expert  # registers the factories; where it came from is recorded

    torch.set_num_threads(threads)
    nlps = {name: spacy.load(path) for name, path in paths.items()}
    predict = predictors(nlps)
    load_start = os.getloadavg()[0]
    runs, profiles = [], []
    for name, items in texts.items():
        accuracy = warm_up(predict, items, gold[name])
        speeds = interleave(predict, items, repeats[name])
        runs.append({"threads": threads, "torch_threads": torch.get_num_threads(), "texts": name,
                     "speeds": speeds, "ratios": ratios(speeds), "warmup_accuracy": accuracy})
        if PROFILED in nlps:
            prof = profile(nlps[PROFILED], items, repeats[name])
            profiles.append({"threads": threads, "texts": name, "system": PROFILED, **prof})
    return {"runs": runs, "profiles": profiles, "load_average_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "package": str(Path(spacy_sparse_expert.__file__).resolve().parent)}


# --------------------------------------------------------------------------- driver

def resolve_paths(args: argparse.Namespace) -> dict[str, Path]:
    paths, missing = {}, []
    for system, (option, _default, command) in SYSTEMS.items():
        path = Path(getattr(args, option.lstrip("-").replace("-", "_")))
        if not (path / "config.cfg").exists():
            missing.append(f"{system}: no pipeline at {path} ({option}); make it with `{command}`")
        paths[system] = path
    if missing:
        raise SystemExit("speed.py needs every system:\n  " + "\n  ".join(missing))
    return paths


def load_texts(test: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    if not test.exists():
        raise SystemExit(f"no BBC test set at {test}; make it with `python benchmarks/bbc.py --systems "
                         "tfidf_linearsvc` (it writes WORK/corpus first)")
    rows = [json.loads(line) for line in test.read_text(encoding="utf8").splitlines() if line.strip()]
    texts = [r["text"] for r in rows]
    gold = [r["label"] for r in rows]
    return {"bbc_test": texts, "short": short_texts(texts)}, {"bbc_test": gold, "short": gold}


def code_info(package: str) -> dict[str, Any]:
    """The commit and whether the package that ran differs from it (other work in the
    tree changes the figures); `package` is where spacy_sparse_expert was imported from."""
    def git(*cmd: str) -> str | None:
        try:
            return subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), *cmd], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", "spacy_sparse_expert") if Path(package).is_relative_to(REPO) else None
    return {"commit": commit, "package": package, "package_modified_since_commit": None if status is None else bool(status)}


def run_thread_setting(argv: list[str], threads: int, script: Path = Path(__file__)) -> dict[str, Any]:
    """`script` (this one by default) in a subprocess with the thread variables set
    before any import, as a worker: ``--worker-threads`` and ``--worker-out`` added to
    `argv`; RETURNS what the worker wrote there."""
    env = {**os.environ, **{v: str(threads) for v in THREAD_VARS}}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worker.json"
        cmd = [sys.executable, str(script.resolve()), *argv, "--worker-threads", str(threads),
               "--worker-out", str(out)]
        subprocess.run(cmd, env=env, check=True)
        return json.loads(out.read_text(encoding="utf8"))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for option, default, command in SYSTEMS.values():
        p.add_argument(option, type=Path, default=default, help=f"pipeline folder (made by `{command}`)")
    p.add_argument("--test", type=Path, default=WORK / "corpus" / "test.jsonl", help="BBC test set (jsonl)")
    p.add_argument("--threads", default="1,2", help="comma list of thread settings, each in its own process")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds on the BBC test set")
    p.add_argument("--short-repeats", type=int, default=15, help="timed rounds on the short texts (each is ~1/30 the words)")
    p.add_argument("--label", default="before", help="name of this profile (kept beside those of other labels)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--worker-threads", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    paths = resolve_paths(args)
    texts, gold = load_texts(args.test)
    if args.worker_threads is not None:
        result = worker(paths, texts, gold, args.worker_threads, {"bbc_test": args.repeats, "short": args.short_repeats})
        args.worker_out.write_text(json.dumps(result), encoding="utf8")
        return
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    started = dt.datetime.now(dt.timezone.utc)
    parts = {t: run_thread_setting(argv, t) for t in threads}
    for part in parts.values():
        for prof in part["profiles"]:
            prof["label"] = args.label
    old = json.loads(args.out.read_text(encoding="utf8")) if args.out.exists() else {}
    new_profiles = [prof for part in parts.values() for prof in part["profiles"]]
    runs = [run for part in parts.values() for run in part["runs"]]
    knowledge_us = {prof["threads"]: prof["knowledge_us_per_word"] for prof in new_profiles if prof["texts"] == "bbc_test"}
    data = {
        "command": "python benchmarks/speed.py" + ("" if not argv else " " + " ".join(argv)),
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1),
        # torch_threads of this parent process says nothing: each run states its own
        "machine": {**{k: v for k, v in bbc.machine_info().items() if k != "torch_threads"},
                    "load_average_1m": {str(t): part["load_average_1m"] for t, part in parts.items()}},
        "code": code_info(next(iter(parts.values()))["package"]),
        "repeats": {"bbc_test": args.repeats, "short": args.short_repeats},
        "texts": {name: {"docs": len(items), "words": count_words(items)} for name, items in texts.items()},
        "systems": {s: {"path": str(path.resolve().relative_to(REPO)) if path.resolve().is_relative_to(REPO)
                        else str(path)} for s, path in paths.items()},
        "runs": runs,
        "goals": {str(t): goals({r["texts"]: r["ratios"] for r in runs if r["threads"] == t}, knowledge_us.get(t))
                  for t in threads},
        "profiles": merge_profiles(old.get("profiles", []), new_profiles),
        "notes": __doc__.split("Method\n", 1)[1].strip(),
    }
    validate(data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf8")
    for run in runs:
        print(run["threads"], run["texts"], {s: round(v["words_per_second_best"]) for s, v in run["speeds"].items()},
              {k: round(v["best"], 3) for k, v in run["ratios"].items()})
    print(f"results -> {args.out}\nmade by: {data['command']}")


if __name__ == "__main__":
    main()
