"""Benchmark: loading a compiled KB and a pipeline that carries one, format 1 (tables and
arrays read whole) against format 2 (memory-mapped, kb/storage.py), in one run.

    python benchmarks/kb_load.py                        # shipped KB; writes results/kb_load.json
    python benchmarks/kb_load.py --kb DIR --rounds 5    # any KB folder (format 1 or 2)

Every measurement runs in a fresh interpreter (`measure_from_disk`, `measure_spacy_load`),
so nothing is cached in the process: what is imported first (numpy, the package, spaCy)
is not timed; the timed call is `KnowledgeBase.from_disk(path)` or `spacy.load(path)`.
Added RSS is VmRSS after minus before, split into anonymous memory (RssAnon: what the
load allocated) and file pages (RssFile: mapped pages it touched, which the kernel can
drop and which processes mapping the same KB share). Rounds alternate the order of the
variants; best and median per variant. The machine is shared: the 1-minute load average
before and after is recorded, and only figures of the same run are compared.

`benchmarks/scale.py` calls `measure_from_disk` and `measure_spacy_load` for its
10M-triple KB.

Variants for the shipped KB (knowledge/fb15k237.nt.gz, imported once into a temporary
folder by the current code: format 2 with the blank-English alias index), its copy
rewritten in format 1, and a trained BBC pipeline (benchmarks/bbc.py) with the KB
copied in either format, and referring to the format-2 folder by path.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHIPPED = REPO / "knowledge" / "fb15k237.nt.gz"
DEFAULT_PIPELINE = HERE / "work" / "models" / "sparse_expert-train-knowledgekb-seed0" / "model-best"
OUT = HERE / "results" / "kb_load.json"

# Run in the child: imports first (untimed), then the timed call, then /proc/self/status.
_CHILD = r'''
import json, os, sys, time, warnings
os.environ.setdefault("OMP_NUM_THREADS", "1")
kind, path = sys.argv[1], sys.argv[2]

def status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024
    return out

import numpy
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
if kind == "spacy_load":
    import spacy, spacy_sparse_expert  # noqa: F401
before = status()
warnings.simplefilter("error")  # a load that tokenizes the aliases (W200) fails the measurement
start, cpu = time.perf_counter(), time.process_time()
if kind == "from_disk":
    kb = KnowledgeBase.from_disk(path)
    sizes = {"entities": kb.n_entities, "aliases": kb.n_aliases, "relations": kb.n_relations}
else:
    nlp = spacy.load(path)
    kb = next(pipe.kb for _, pipe in nlp.pipeline if getattr(pipe, "kb", None) is not None)
    sizes = {"entities": kb.n_entities, "aliases": kb.n_aliases}
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
after = status()
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                  "rss_added_mb": after["VmRSS"] - before["VmRSS"],
                  "rss_anon_added_mb": after["RssAnon"] - before["RssAnon"],
                  "rss_file_added_mb": after["RssFile"] - before["RssFile"],
                  "format_version": kb.meta.get("format_version"), **sizes}))
'''


def _child(kind: str, path: Path, timeout: float) -> Dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(path)], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_from_disk(path: str | Path, *, timeout: float = 600) -> Dict[str, Any]:
    """`KnowledgeBase.from_disk(path)` in a fresh interpreter.

    RETURNS (dict): seconds, cpu_seconds, rss_added_mb (VmRSS), rss_anon_added_mb,
        rss_file_added_mb, format_version and the KB's sizes.
    """
    return _child("from_disk", Path(path), timeout)


def measure_spacy_load(path: str | Path, *, timeout: float = 600) -> Dict[str, Any]:
    """`spacy.load(path)` of a pipeline with a sparse-expert component that has a KB, in
    a fresh interpreter (spaCy and the package imported first, untimed). Fails if the
    load warns (e.g. W200: the aliases were tokenized because no fitting index was stored).

    RETURNS (dict): as `measure_from_disk`.
    """
    return _child("spacy_load", Path(path), timeout)


def _summary(values: List[float]) -> Dict[str, float]:
    return {"best": round(min(values), 4), "median": round(statistics.median(values), 4)}


def _rounds(measure: Any, variants: Dict[str, Path], rounds: int) -> Dict[str, Any]:
    """Each variant `rounds` times, the order rotating per round."""
    runs: Dict[str, List[Dict[str, Any]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            runs[name].append(measure(variants[name]))
    out: Dict[str, Any] = {}
    for name, results in runs.items():
        out[name] = {key: _summary([x[key] for x in results])
                     for key in ("seconds", "cpu_seconds", "rss_added_mb", "rss_anon_added_mb", "rss_file_added_mb")}
        out[name]["format_version"] = results[0]["format_version"]
        out[name]["rounds"] = len(results)
    return out


def _folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 2)


def prepare(tmp: Path, kb: Path | None, pipeline: Path | None) -> Dict[str, Dict[str, Path]]:
    """KB folders (format 2 and 1, same content) and pipeline copies to measure."""
    from spacy_sparse_expert.kb.alias_index import build_blank_alias_index
    from spacy_sparse_expert.kb.compile import import_rdf
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

    v2 = tmp / "kb_v2"
    if kb is None:
        import_rdf([SHIPPED], v2)
    else:
        shutil.copytree(kb, v2)
    loaded = KnowledgeBase.from_disk(v2)
    if loaded.meta.get("format_version") != 2 or loaded.alias_index is None:  # a KB given by --kb
        loaded.alias_index = loaded.alias_index or build_blank_alias_index(loaded.alias_surfaces)
        loaded.to_disk(v2, format_version=2)
    KnowledgeBase.from_disk(v2).to_disk(tmp / "kb_v1", format_version=1)
    kbs = {"format1": tmp / "kb_v1", "format2": v2}
    pipes: Dict[str, Path] = {}
    if pipeline is not None:
        import spacy

        # The pipeline's own KB is replaced by the measured one (the same graph for the
        # default pipeline, trained with the shipped KB): format 1 as saved before this
        # change (with the alias index a first load used to write), format 2 copied, and
        # format 2 referred to by path.
        for name, source in (("format1_copied", kbs["format1"]), ("format2_copied", kbs["format2"])):
            dest = tmp / name
            shutil.copytree(pipeline, dest)
            shutil.rmtree(dest / "textcat" / "kb")
            shutil.copytree(source, dest / "textcat" / "kb")
        nlp = spacy.load(tmp / "format2_copied")
        pipe = nlp.get_pipe("textcat")
        referred = KnowledgeBase.from_disk(kbs["format2"])
        referred.by_reference = True  # what KBLoader.v1 `by_reference = true` sets
        pipe.set_knowledge(referred, pipe.rules)
        nlp.to_disk(tmp / "format2_by_reference")
        pipes = {"format1_copied": tmp / "format1_copied", "format2_copied": tmp / "format2_copied",
                 "format2_by_reference": tmp / "format2_by_reference"}
    return {"kbs": kbs, "pipelines": pipes}


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=Path, default=None, help="a KB folder (default: import the shipped graph)")
    parser.add_argument("--pipeline", type=Path, default=DEFAULT_PIPELINE,
                        help="a trained pipeline with component textcat (benchmarks/bbc.py)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pipeline = args.pipeline if (args.pipeline / "textcat").is_dir() else None
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kb_load-") as tmp_name:
        tmp = Path(tmp_name)
        made = prepare(tmp, args.kb, pipeline)
        result: Dict[str, Any] = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "kb": str(args.kb) if args.kb else "knowledge/fb15k237.nt.gz (imported now)",
            "pipeline": (str(pipeline.relative_to(REPO)) if pipeline and pipeline.is_relative_to(REPO)
                         else str(pipeline)),
            "threads": os.environ.get("OMP_NUM_THREADS"),
            "cpus": os.cpu_count(),
            "kb_folder_mb": {name: _folder_mb(path) for name, path in made["kbs"].items()},
            "from_disk": _rounds(measure_from_disk, made["kbs"], args.rounds),
        }
        if made["pipelines"]:
            result["spacy_load"] = _rounds(measure_spacy_load, made["pipelines"], args.rounds)
    result["load_average"] = {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(f".{args.out.name}.tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    os.replace(tmp_out, args.out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
