"""Render benchmarks/results/*.json as Markdown tables into README.md.

    python benchmarks/report.py            # rewrite the tables between the README markers
    python benchmarks/report.py --check    # exit 1 if README.md is out of date

Each table lives between `<!-- results:NAME -->` and `<!-- /results:NAME -->`; a results
file that does not exist yet renders as a line saying so.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import stats  # noqa: E402  (benchmarks/stats.py)
RESULTS = ROOT / "benchmarks" / "results"


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else None


def kb_import(data: dict) -> str:
    speedup = data["rdflib_parse_seconds"] / data["ours_seconds"]
    rows = [
        "| import of `{}` ({:,} triples) | seconds | triples/s | peak RSS MB |".format(data["file"], data["triples"]),
        "|---|---:|---:|---:|",
        f"| `sparse-expert kb import` (parse + compile + graph features + write) | {data['ours_seconds']:.2f} "
        f"| {data['triples'] / data['ours_seconds']:,.0f} | {data['peak_rss_mb']:.0f} |",
        f"| rdflib `Graph.parse` alone | {data['rdflib_parse_seconds']:.2f} "
        f"| {data['triples'] / data['rdflib_parse_seconds']:,.0f} | {data.get('rdflib_peak_rss_mb', float('nan')):.0f} |",
        "",
        f"Whole import **{speedup:.1f}x** faster than rdflib's parse alone (best of "
        f"{data.get('repeat', 1)} runs each, 2 CPU cores).",
    ]
    return "\n".join(rows)


def moe_layer(data: dict) -> str:
    runs = data["runs"]
    keyed: dict[tuple, dict[str, dict]] = {}
    for run in runs:
        key = (run["device"], run["E"], run["k"], run["d_model"], run["d_ff"], run["tokens"], run["dtype"])
        keyed.setdefault(key, {})[run["impl"]] = run
    rows = [
        "| device | E | k | d_model | d_ff | tokens | dtype | naive tok/s | dense tok/s | ours tok/s | ours / naive | ours TFLOP/s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for key, impls in sorted(keyed.items()):
        device, e, k, d, f, n, dtype = key

        def tps(impl: str) -> str:
            return f"{impls[impl]['tokens_per_second']:,.0f}" if impl in impls else "-"

        ratio = (impls["ours"]["tokens_per_second"] / impls["naive"]["tokens_per_second"]
                 if "ours" in impls and "naive" in impls else float("nan"))
        tflops = impls.get("ours", {}).get("tflops")
        rows.append(f"| {device} | {e} | {k} | {d} | {f} | {n:,} | {dtype} | {tps('naive')} | {tps('dense')} "
                    f"| {tps('ours')} | {ratio:.2f}x | {tflops if tflops is None else f'{tflops:.2f}'} |")
    return "\n".join(rows)


def _knowledge_name(value: object) -> str:
    # results written before the ablation recorded knowledge as true (KB and rules) / false
    return {True: "both", False: "none", None: "-"}.get(value, str(value))  # type: ignore[arg-type]


def _bbc_groups(runs: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        key = (run["system"], run["train_set"], _knowledge_name(run.get("knowledge")))
        groups.setdefault(key, []).append(run)
    return groups


def _gold(data: dict) -> list[str] | None:
    return data.get("test_labels")


def bbc(data: dict) -> str:
    """One row per (system, train set, knowledge): mean ± std of test macro-F1 over the
    seeds, its 95% paired-bootstrap interval over test documents (seeds averaged inside
    each resample), macro-F1 on the test documents unseen in train; then the knowledge
    ablation of sparse_expert as differences from knowledge none, with their intervals."""
    gold, labels = _gold(data), data.get("labels")
    rows = [
        "| system | train set | knowledge | seeds | macro-F1 (mean ± std) | 95% interval | unseen docs | train s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    groups = _bbc_groups(data["runs"])
    for (system, train_set, know), runs in groups.items():
        f1 = stats.seed_summary([r["macro_f1"] for r in runs])
        preds = [r["predictions"] for r in runs if "predictions" in r]
        interval = "-"
        if gold and labels and len(preds) == len(runs):
            ci = stats.bootstrap_interval(gold, preds, labels)
            interval = f"{ci['low']:.4f}-{ci['high']:.4f}"
        unseen = [r["macro_f1_unseen"] for r in runs if "macro_f1_unseen" in r]
        unseen_text = f"{sum(unseen) / len(unseen):.4f}" if unseen else "-"
        train_s = sum(r["train_seconds"] for r in runs) / len(runs)
        rows.append(f"| {system} | {train_set} | {know} | {f1['n']} | {f1['mean']:.4f} ± {f1['std']:.4f} "
                    f"| {interval} | {unseen_text} | {train_s:.0f} |")
    ablation = _bbc_ablation(groups, gold, labels)
    return "\n".join(rows + ([""] + ablation if ablation else []))


def _bbc_ablation(groups: dict[tuple, list[dict]], gold: list[str] | None, labels: list[str] | None) -> list[str]:
    if not gold or not labels:
        return []
    rows = ["| train set | knowledge | macro-F1 minus knowledge none | 95% interval | verdict |",
            "|---|---|---:|---:|---|"]
    for train_set in ("train", "train_small"):
        base = groups.get(("sparse_expert", train_set, "none"))
        if not base or not all("predictions" in r for r in base):
            continue
        for know in ("kb", "rules", "both"):
            runs = groups.get(("sparse_expert", train_set, know))
            if not runs or not all("predictions" in r for r in runs):
                continue
            diff = stats.paired_difference(gold, [r["predictions"] for r in runs],
                                           [r["predictions"] for r in base], labels)
            verdict = {"a better": "knowledge helps", "b better": "knowledge hurts"}.get(
                diff["verdict"], diff["verdict"])
            rows.append(f"| {train_set} | {know} | {diff['difference']:+.4f} | {diff['low']:+.4f} to "
                        f"{diff['high']:+.4f} | {verdict} |")
    return rows if len(rows) > 2 else []


def distill(data: dict) -> str:
    rows = ["| model | params | disk bytes | words/s (CPU) | macro-F1 |", "|---|---:|---:|---:|---:|"]
    for name in ("teacher", "student", "student_no_teacher"):
        if name in data:
            r = data[name]
            rows.append(f"| {name} | {r['params']:,} | {r['disk_bytes']:,} | {r['words_per_second']:,.0f} | {r['macro_f1']:.4f} |")
    return "\n".join(rows)


SPEED_SYSTEMS = {"spacy_textcat_efficiency": "spaCy efficiency textcat", "sparse_expert_knowledge": "ours, knowledge on",
                 "sparse_expert_no_knowledge": "ours, knowledge off", "student": "distilled student"}
SPEED_TEXTS = {"bbc_test": "BBC test", "short": "first sentences"}


def speed(data: dict) -> str:
    """Words/s of one interleaved run (best and median pass) with each system's ratio to
    spaCy's efficiency textcat from that run; the goals; the per-part profile of ours with
    knowledge on (microseconds per word and share of the nlp.pipe pass) per label."""
    base = "spacy_textcat_efficiency"
    rows = ["| texts | threads | system | words/s best | words/s median | / spaCy, best | / spaCy, median of rounds |",
            "|---|---:|---|---:|---:|---:|---:|"]
    for run in data["runs"]:
        for system, s in run["speeds"].items():
            r = run["ratios"].get(f"{system}/{base}", {"best": 1.0, "median_of_rounds": 1.0} if system == base else None)
            ratio = f"{r['best']:.2f} | {r['median_of_rounds']:.2f}" if r else "- | -"
            rows.append(f"| {SPEED_TEXTS.get(run['texts'], run['texts'])} | {run['threads']} "
                        f"| {SPEED_SYSTEMS.get(system, system)} | {s['words_per_second_best']:,.0f} "
                        f"| {s['words_per_second_median']:,.0f} | {ratio} |")
    for threads, checks in data.get("goals", {}).items():
        done = ", ".join(f"{name.replace('_', ' ')} {'met' if c['met'] else 'not met'} "
                         f"({'-' if c['value'] is None else format(c['value'], '.2f')})" for name, c in checks.items())
        rows += ["", f"Goals, {threads} thread(s): {done}."]
    for texts, title in SPEED_TEXTS.items():
        profs = [p for p in data["profiles"] if p["texts"] == texts]
        if not profs:
            continue
        rows += ["", f"| part ({title}), microseconds per word (share) | "
                 + " | ".join(f"{p['label']}, {p['threads']} thread(s)" for p in profs) + " |",
                 "|---|" + "---:|" * len(profs)]
        parts = list(profs[0]["us_per_word"]) + ["whole nlp.pipe"]
        for part in parts:
            cells = [(p["pipe_us_per_word"] if part == "whole nlp.pipe" else p["us_per_word"][part], p["pipe_us_per_word"])
                     for p in profs]
            rows.append(f"| {part} | " + " | ".join(f"{us:.2f} ({100 * us / whole:.0f}%)" for us, whole in cells) + " |")
    m, rep, code = data["machine"], data["repeats"], data.get("code", {})
    loads = [x for pair in m.get("load_average_1m", {}).values() for x in pair]
    load = f"; 1-minute load average {min(loads):.1f}-{max(loads):.1f} during the run" if loads else ""
    commit = f" at commit {code['commit'][:7]}" if code.get("commit") else ""
    commit += " with uncommitted changes to the package" if code.get("package_modified_since_commit") else ""
    rows += ["", (f"Made by `{data['command']}`{commit} on {data['date'][:10]}: {m['cpus']} cores ({m['cpu']}), "
                  f"torch {m['torch']}, spaCy {m['spacy']}; {rep['bbc_test']} rounds on the BBC test set, "
                  f"{rep['short']} on the first sentences{load}.")]
    return "\n".join(rows)


TABLES: dict[str, Callable[[dict], str]] = {"kb_import": kb_import, "moe_layer": moe_layer, "bbc": bbc, "distill": distill,
                                            "speed": speed}


def sentiment(data: dict) -> str:
    """The BBC table for the Sentiment Labelled Sentences (same columns, same knowledge
    ablation), then ours with knowledge minus each baseline, paired over test sentences."""
    gold, labels = _gold(data), data.get("labels")
    table = bbc(data)
    if not gold or not labels:
        return table
    groups = _bbc_groups(data["runs"])
    rows = ["| train set | ours, knowledge | minus | difference | 95% interval | verdict |",
            "|---|---|---|---:|---:|---|"]
    for train_set in ("train", "train_small"):
        baselines = sorted(system for system, ts, _ in groups if ts == train_set and system != "sparse_expert")
        for know in ("rules", "kb", "both"):
            ours = groups.get(("sparse_expert", train_set, know))
            if not ours or not all("predictions" in r for r in ours):
                continue
            for system in baselines:
                other = groups[(system, train_set, "-")]
                diff = stats.paired_difference(gold, [r["predictions"] for r in ours],
                                               [r["predictions"] for r in other], labels)
                verdict = {"a better": "ours better", "b better": "baseline better"}.get(diff["verdict"], diff["verdict"])
                rows.append(f"| {train_set} | {know} | {system} | {diff['difference']:+.4f} | {diff['low']:+.4f} to "
                            f"{diff['high']:+.4f} | {verdict} |")
    return table + ("\n\n" + "\n".join(rows) if len(rows) > 2 else "")


TABLES["sentiment"] = sentiment


def render(readme: str) -> str:
    for name, fn in TABLES.items():
        data = _load(name)
        body = fn(data) if data is not None else f"_No results yet: run `python benchmarks/{name}.py`._"
        pattern = re.compile(rf"(<!-- results:{name} -->).*?(<!-- /results:{name} -->)", re.S)
        readme = pattern.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", readme)
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    path = ROOT / "README.md"
    old = path.read_text(encoding="utf8")
    new = render(old)
    if args.check:
        sys.exit(0 if new == old else "README.md tables are out of date: run python benchmarks/report.py")
    path.write_text(new, encoding="utf8")


if __name__ == "__main__":
    main()
