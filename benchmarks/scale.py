"""Benchmark: the scale path on a synthetic graph of 10M+ triples with the shape of the
shipped FB15k-237 graph: import, ``KnowledgeBase.from_disk``, ``spacy.load`` and batch
annotation throughput.

    python benchmarks/scale.py                                  # 10M triples, every part
    python benchmarks/scale.py --triples 1000000 --docs 10000   # a quick run
    python benchmarks/scale.py --parts import,load              # only some parts

Parts (``--parts``, comma-separated; each reuses what an earlier part left in ``--work``):

- ``generate``: a seeded, deterministic graph of exactly ``--triples`` triples written as
  gzipped N-Triples to ``WORK/graph-<N>.nt.gz`` (never committed; ``benchmarks/work`` is
  git-ignored), plus a corpus of ``--docs`` short documents that mention the generated
  entities by their labels (``WORK/corpus-<docs>.jsonl``). The shape follows the shipped
  graph (knowledge/fb15k237.nt.gz: ~29 triples per entity): per entity an English
  rdfs:label, labels in de/fr/es for some, skos:altLabels (a shared family name, an
  initial and a family name: ambiguous aliases as in real graphs), a schema:description,
  an owl:sameAs, about 3 rdf:types drawn from a class hierarchy (rdfs:subClassOf, some
  classes with two parents), and about 20 relations to other entities whose objects
  follow a power law (a few very popular entities). Classes are typed rdfs:Class and
  predicates rdf:Property, each with a label. Lines are built with numpy object-array
  string operations, a block of entities at a time.
- ``import``: ``sparse-expert kb import`` of that graph (``--language en --language de``)
  in a fresh process: wall and CPU seconds, peak RSS of that process
  (``RUSAGE_CHILDREN`` of a parent that runs only it), the KB folder's size and counts;
  with ``--store``, once more with ``--store DIR`` (and the store's size). The pipeline
  built on the KB this import replaced is removed: it holds a copy of that KB, as the
  code of its time wrote it, so the next ``load`` or ``annotate`` builds it again.
- ``load``: in fresh processes (``benchmarks/kb_load.py``'s measures when that file is
  there), ``KnowledgeBase.from_disk`` of the big KB (seconds, RSS added) and, apart, the
  time of a first alias lookup after it; then ``spacy.load`` of the BBC pipeline with the shipped KB and of
  a small pipeline initialised on the big KB (built once per import: ``spacy.blank`` +
  ``sparse_expert_textcat`` + a few update steps on synthetic documents).
- ``annotate``: documents/s on the BBC test set (BBC pipeline) and on the synthetic
  corpus (the big-KB pipeline) for ``nlp.pipe`` in one process (plain, and with the
  heap frozen after the load as annotate's engines freeze it: ``gc.freeze()``, see
  ``ShardAnnotator``), ``annotate --engine local`` and ``--engine ray`` with 1 and 2
  actors, in one run: ``--rounds`` rounds (default 2), each running the five once, the
  order rotated by one per round; per system the median run. What each figure holds: an
  ``nlp.pipe`` figure is one pass over the texts, already in memory, with a pipeline
  loaded just before (fresh in each round, so its caches start cold as in every
  annotate run, and warmed up on 32 documents; the load is reported apart,
  ``pipeline_load_seconds``); an annotate run is the whole
  ``annotate()`` call as a user sees it: planning the input (one read for its sha256 and
  shard offsets), starting the engine (Ray: the actors' processes, their imports and a
  ``spacy.load`` in each; Ray's own start is reported, not counted, as a cluster would
  be running; it is started with the settings of the Ray ``annotate`` starts, its
  workers at this process's priority), reading and decoding the JSONL, the pipeline,
  building the rows and writing the Parquet shards (fsync, rename). Each annotate run
  also stores its ``startup_seconds`` (engine start until every pipeline was loaded) and
  ``steady_seconds`` (the rest), so the overheads against each ``nlp.pipe`` pass of the
  same round come three ways: end to end, against load + pipe (what a plain script pays)
  and steady (after the loads); against plain ``nlp.pipe`` (the goal's measure) and
  against the frozen one (like for like: what annotate itself adds). The README's goal
  line gives the end-to-end Ray overhead as the median of the rounds' ratios with its 95%
  bootstrap interval over the rounds (``report.py``), met only when all of it is under
  20%. At least 8 shards per corpus. A load that changes during a round moves the
  ratios: read them with the load averages stored beside each figure. ``--corpora``
  picks bbc_test, synthetic or both.

Every figure is stored with the 1-minute load average when it was taken: the machine
(2 cores) is shared, so compare figures of one run only. Results go to
``benchmarks/results/scale.json`` (one entry per graph size; the README shows the
largest) and, with ``python benchmarks/report.py``, into README.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "benchmarks" / "work" / "scale"
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
BBC_MODEL = REPO / "benchmarks" / "work" / "models" / "sparse_expert-train-knowledgeboth-seed0" / "model-best"
BBC_TEST = REPO / "benchmarks" / "work" / "corpus" / "test.jsonl"
PARTS = ("generate", "import", "load", "annotate")

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
NS = "https://w3id.org/sparse-expert/scale/"
TYPE, LABEL, ALT = f"<{RDF}type>", f"<{RDFS}label>", f"<{SKOS}altLabel>"
SUBCLASS, CLASS, PROPERTY = f"<{RDFS}subClassOf>", f"<{RDFS}Class>", f"<{RDF}Property>"
DESCRIPTION, SAME_AS = "<http://schema.org/description>", "<http://www.w3.org/2002/07/owl#sameAs>"

# Expected triples per entity, from the draws in `_entity_block`: labels 1 + 0.5 + 0.4 +
# 0.3, altLabels 1.3 + 0.2, description 0.9, sameAs 1, types 3.0, relations 20.
PER_ENTITY = 28.6
MEAN_RELATIONS = 20.0
SYLLABLES = np.array(("ka", "lo", "mi", "ra", "ven", "tor", "sa", "bel", "dor", "fi", "gan", "hu", "ib", "jo", "kel",
                      "lan", "mar", "nor", "ol", "pe", "quin", "ros", "sten", "tu", "ul", "vi", "wen", "xa", "yor",
                      "zel", "ber", "cas", "del", "em", "for", "gil", "har", "in", "jas", "kor", "lin", "mo", "nes",
                      "or", "pal", "rin", "sol", "tan", "ur", "val", "win", "ad", "bri", "cor", "da", "el", "fen",
                      "gor", "hal", "is"), dtype=object)
TOPICS = {
    "business": ("{a} agreed to buy a stake in {b}, sources close to {c} said.",
                 "Shares in {a} rose after {b} reported higher profits.",
                 "{a} and {b} signed a supply deal worth millions."),
    "politics": ("{a} criticised {b} in a speech in {c} on Tuesday.",
                 "The minister {a} met {b} to discuss the election.",
                 "{a} said {b} would vote against the bill."),
    "sport": ("{a} beat {b} two goals to one in {c}.",
              "{a} has signed for {b} on a three-year contract.",
              "Coach {a} praised {b} after the final."),
    "tech": ("{a} launched a new phone built with {b} in {c}.",
             "Engineers at {a} and {b} released the software update.",
             "{a} said its network would reach {b} next year."),
}


# --- generation ---------------------------------------------------------------------------------


def _words(rng: np.random.Generator, n: int, min_syl: int, max_syl: int) -> np.ndarray:
    """`n` distinct capitalised pseudo-words of `min_syl`..`max_syl` syllables."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = rng.integers(min_syl, max_syl + 1, size=2 * n)
        parts = SYLLABLES[rng.integers(0, SYLLABLES.size, size=(2 * n, max_syl))]
        words = parts[:, 0].copy()
        for j in range(1, max_syl):
            words = np.where(k > j, words + parts[:, j], words)
        for word in words.tolist():
            if word not in seen:
                seen.add(word)
                out.append(word.capitalize())
                if len(out) == n:
                    break
    return np.array(out, dtype=object)


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Power-law popularity over `n` items in a random order (normalised)."""
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    rng.shuffle(weights)
    return weights / weights.sum()


def _lit(text: np.ndarray, lang: str) -> np.ndarray:
    return '"' + text + f'"@{lang} .\n'


class GraphShape:
    """The fixed parts of a synthetic graph of about `n_triples` triples (seeded)."""

    def __init__(self, n_triples: int, seed: int) -> None:
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.n_entities = max(int(n_triples / PER_ENTITY), 50)
        self.n_classes = max(150, self.n_entities // 200)
        self.n_predicates = max(237, self.n_entities // 1000)
        self.n_domains = 24
        ids = np.arange(self.n_entities).astype(str).astype(object)
        self.entity_iri = f"<{NS}entity/E" + ids + ">"
        self.wikidata_iri = "<http://www.wikidata.org/entity/Q" + (ids + "1") + "> .\n"
        # Names: a given name from a small pool and a family name from a larger one, both
        # Zipf-distributed, so some full names and many family names are shared.
        given = _words(rng, 3000, 2, 2)
        family = _words(rng, max(1000, self.n_entities // 6), 2, 3)
        self.given = given[rng.choice(given.size, self.n_entities, p=_zipf_weights(given.size, 1.0, rng))]
        self.family = family[rng.choice(family.size, self.n_entities, p=_zipf_weights(family.size, 0.8, rng))]
        self.name = self.given + " " + self.family
        # Class hierarchy: domains are roots; every other class has a parent among the
        # earlier classes (depth grows slowly) and one in ten a second parent.
        cls = np.arange(self.n_classes)
        self.class_domain = cls % self.n_domains
        self.class_iri = f"<{NS}type/d" + self.class_domain.astype(str).astype(object) + "/c" + cls.astype(str).astype(object) + ">"
        parents = np.full(self.n_classes, -1)
        for c in range(self.n_domains, self.n_classes):
            same = np.arange(self.class_domain[c], c, self.n_domains)  # earlier classes of the same domain
            parents[c] = same[rng.integers(0, same.size)]
        second = rng.random(self.n_classes) < 0.1
        second[: self.n_domains] = False
        self.class_parents = [(c, int(p)) for c, p in enumerate(parents) if p >= 0]
        self.class_parents += [(int(c), int(rng.integers(0, c))) for c in np.flatnonzero(second)]
        self.class_label = _words(rng, self.n_classes, 2, 3) + " class"
        self.class_weights = _zipf_weights(self.n_classes, 1.1, rng)
        pred = np.arange(self.n_predicates).astype(str).astype(object)
        self.pred_iri = (f"<{NS}relation/d" + (np.arange(self.n_predicates) % self.n_domains).astype(str).astype(object)
                         + "/property/p" + pred + "./domain/relationship/link>")
        self.pred_label = _words(rng, self.n_predicates, 2, 3) + " relation"
        self.pred_weights = _zipf_weights(self.n_predicates, 0.6, rng)
        self.object_weights = _zipf_weights(self.n_entities, 0.9, rng)

    def schema_lines(self) -> list[str]:
        lines = (self.class_iri + f" {TYPE} {CLASS} .\n").tolist()
        lines += (self.class_iri + f" {LABEL} " + _lit(self.class_label, "en")).tolist()
        lines += [f"{self.class_iri[c]} {SUBCLASS} {self.class_iri[p]} .\n" for c, p in self.class_parents]
        lines += (self.pred_iri + f" {TYPE} {PROPERTY} .\n").tolist()
        lines += (self.pred_iri + f" {LABEL} " + _lit(self.pred_label, "en")).tolist()
        return lines

    def entity_block(self, lo: int, hi: int, round_: int = 0) -> list[str]:
        """The lines of entities lo..hi-1 (each block has its own generator: any block can
        be made alone). Rounds after the first add only more relations."""
        rng = np.random.default_rng([self.seed, lo, round_])
        n = hi - lo
        s = self.entity_iri[lo:hi]
        if round_:
            return self._relations(rng, s, n)
        name, given, family = self.name[lo:hi], self.given[lo:hi], self.family[lo:hi]
        out: list[np.ndarray] = [s + f" {LABEL} " + _lit(name, "en")]
        for lang, p in (("de", 0.5), ("fr", 0.4), ("es", 0.3)):
            pick = rng.random(n) < p
            local = np.array([w.replace("c", "k") if lang == "de" else w.replace("e", "é", 1) if lang == "fr"
                              else w + "o" for w in name[pick].tolist()], dtype=object)
            out.append(s[pick] + f" {LABEL} " + _lit(local, lang))
        n_alt = rng.choice(4, size=n, p=(0.25, 0.35, 0.25, 0.15))  # mean 1.3
        forms = (family, np.array([g[0] for g in given.tolist()], dtype=object) + ". " + family,
                 given + " " + np.array([f[0] for f in family.tolist()], dtype=object) + ". " + family)
        for j, form in enumerate(forms):
            pick = n_alt > j
            out.append(s[pick] + f" {ALT} " + _lit(form[pick], "en"))
        pick = rng.random(n) < 0.2
        out.append(s[pick] + f" {ALT} " + _lit(family[pick], "de"))
        n_types = rng.integers(1, 6, size=n)  # mean 3
        rows = np.repeat(np.arange(n), n_types)
        classes = rng.choice(self.n_classes, size=rows.size, p=self.class_weights)
        pick = rng.random(n) < 0.9
        domain_label = self.class_label[classes[np.searchsorted(rows, np.arange(n))]]
        out.append(s[pick] + f" {DESCRIPTION} " + _lit("a synthetic " + domain_label[pick].astype(object), "en"))
        out.append(s + f" {SAME_AS} " + self.wikidata_iri[lo:hi])
        out.append(s[rows] + f" {TYPE} " + self.class_iri[classes] + " .\n")
        return [line for block in out for line in block.tolist()] + self._relations(rng, s, n)

    def _relations(self, rng: np.random.Generator, s: np.ndarray, n: int) -> list[str]:
        n_rel = np.minimum(rng.geometric(1.0 / MEAN_RELATIONS, size=n), 400)
        rows = np.repeat(np.arange(n), n_rel)
        objects = rng.choice(self.n_entities, size=rows.size, p=self.object_weights)
        preds = rng.choice(self.n_predicates, size=rows.size, p=self.pred_weights)
        return (s[rows] + " " + self.pred_iri[preds] + " " + self.entity_iri[objects] + " .\n").tolist()


def generate_graph(path: Path, n_triples: int, seed: int, block: int = 20000) -> dict[str, Any]:
    """Write exactly `n_triples` lines of N-Triples, gzipped, to `path` (atomically)."""
    start = time.perf_counter()
    shape = GraphShape(n_triples, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    written = 0
    entities = 0
    with gzip.open(tmp, "wt", encoding="utf8", compresslevel=1) as fh:
        lines = shape.schema_lines()
        lo = round_ = 0
        while written < n_triples:
            if lo >= shape.n_entities:  # the draws gave fewer lines than asked: more relations
                lo, round_ = 0, round_ + 1
            lines += shape.entity_block(lo, min(lo + block, shape.n_entities), round_)
            entities = max(entities, min(lo + block, shape.n_entities))
            lo += block
            take = lines[: n_triples - written]
            fh.write("".join(take))
            written += len(take)
            lines = []
    os.replace(tmp, path)
    return {"path": _rel(path), "triples": written, "entities_generated": entities, "classes": shape.n_classes,
            "predicates": shape.n_predicates, "bytes_gzipped": path.stat().st_size, "seed": seed,
            "seconds": round(time.perf_counter() - start, 2)}


def generate_corpus(path: Path, n_docs: int, n_triples: int, seed: int) -> dict[str, Any]:
    """`n_docs` JSONL documents of 2-3 template sentences naming generated entities (by
    an English label or an alias), each with the topic of its templates as its label."""
    start = time.perf_counter()
    shape = GraphShape(n_triples, seed)
    rng = np.random.default_rng([seed, 1])
    topics = sorted(TOPICS)
    names = shape.name
    mentions = rng.choice(shape.n_entities, size=(n_docs, 9), p=shape.object_weights)
    doc_topic = rng.integers(0, len(topics), size=n_docs)
    n_sent = rng.integers(2, 4, size=n_docs)
    templates = rng.integers(0, 3, size=(n_docs, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", encoding="utf8") as fh:
        for i in range(n_docs):
            topic = topics[doc_topic[i]]
            m = names[mentions[i]].tolist()
            text = " ".join(TOPICS[topic][templates[i, j]].format(a=m[3 * j], b=m[3 * j + 1], c=m[3 * j + 2])
                            for j in range(n_sent[i]))
            fh.write(json.dumps({"id": f"doc{i}", "text": text, "label": topic}) + "\n")
    os.replace(tmp, path)
    return {"path": _rel(path), "documents": n_docs, "seconds": round(time.perf_counter() - start, 2)}


# --- measuring in fresh processes ---------------------------------------------------------------


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd` under a dedicated parent process, so the peak RSS it reports
    (RUSAGE_CHILDREN) is that of `cmd` alone. RETURNS wall seconds, peak RSS MB, stdout."""
    proc = subprocess.run([sys.executable, __file__, "--rusage", "--", *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rusage_main(cmd: list[str]) -> None:
    start = time.perf_counter()
    load = _load()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(proc.returncode)
    # CPU seconds (user + system, all threads) say what the work costs whatever the load;
    # wall seconds on a shared machine say what a user waited.
    print(json.dumps({"wall_seconds": round(wall, 3), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
                      "peak_rss_mb": round(peak, 1), "load_average_1m": load,
                      "load_average_1m_after": _load(), "stdout": proc.stdout[-4000:]}))


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _worker_from_disk(kb_dir: str, text: str) -> None:
    """Time from_disk and a first lookup of `text`; RSS before and after (a fresh process)."""
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

    before = _rss_mb()
    start = time.perf_counter()
    kb = KnowledgeBase.from_disk(kb_dir)
    seconds = time.perf_counter() - start
    after = _rss_mb()
    start = time.perf_counter()
    found = len(kb.candidates(text)) if text else 0
    lookup = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 4), "rss_before_mb": round(before, 1),
                      "rss_added_mb": round(after - before, 1), "first_lookup_seconds": round(lookup, 5),
                      "first_lookup": text, "first_lookup_candidates": found, "entities": kb.n_entities,
                      "aliases": kb.n_aliases}))


def _worker_spacy_load(model: str, text: str) -> None:
    import spacy

    import spacy_sparse_expert  # noqa: F401  (registers the factories, as an installed package does)

    before = _rss_mb()
    start = time.perf_counter()
    nlp = spacy.load(model)
    seconds = time.perf_counter() - start
    after = _rss_mb()
    start = time.perf_counter()
    nlp(text)
    first = time.perf_counter() - start
    print(json.dumps({"seconds": round(seconds, 3), "rss_added_mb": round(after - before, 1),
                      "first_doc_seconds": round(first, 4)}))


def _worker_build_pipeline(kb_dir: str, corpus: str, out: str) -> None:
    """A small pipeline on the big KB: spacy.blank + sparse_expert_textcat, initialised
    on 200 synthetic documents and updated for 20 steps (enough to be a real pipeline
    whose load and throughput are measured; its accuracy is not the point)."""
    import random

    import spacy
    from spacy.training import Example

    import spacy_sparse_expert  # noqa: F401

    with open(corpus, encoding="utf8") as fh:
        records = [json.loads(line) for _, line in zip(range(200), fh)]
    nlp = spacy.blank("en")
    nlp.add_pipe("sparse_expert_textcat", name="textcat", config={"model": {
        "@architectures": "spacy-sparse-expert.MoETextCat.v1", "n_experts": 4, "k": 2, "d_ff": 32,
        "d_knowledge": 16, "bow_rows": 4096, "exclusive_classes": True,
        "encoder": {"@architectures": "spacy-sparse-expert.HashEncoder.v1", "width": 32,
                    "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"], "rows": [2000, 1000, 1000, 1000],
                    "n_hashes": 2, "window_size": 1, "depth": 1, "d_hidden": 64, "dropout": 0.1}}})
    labels = sorted({r["label"] for r in records})
    examples = [Example.from_dict(nlp.make_doc(r["text"]), {"cats": {lab: float(lab == r["label"]) for lab in labels}})
                for r in records]
    nlp.config["initialize"]["components"]["textcat"] = {
        "kb_loader": {"@misc": "spacy-sparse-expert.KBLoader.v1", "path": kb_dir}}
    nlp.initialize(lambda: examples)
    random.Random(0).shuffle(examples)
    for step in range(20):
        nlp.update(examples[(step * 10) % 200:(step * 10) % 200 + 10])
    nlp.to_disk(out)
    print(json.dumps({"documents": len(examples), "steps": 20}))


# --- the parts ----------------------------------------------------------------------------------


def _cli() -> str:
    return str(Path(sys.executable).parent / "sparse-expert")


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def part_import(graph: Path, kb_dir: Path, store: bool) -> dict[str, Any]:
    cmd = [_cli(), "kb", "import", str(graph), "--output", str(kb_dir), "--quiet", "--language", "en", "--language", "de"]
    out: dict[str, Any] = {}
    run = measured(cmd)
    meta = json.loads((kb_dir / "meta.json").read_text(encoding="utf8"))
    out["kb_import"] = {"command": " ".join(["sparse-expert", *cmd[1:]]).replace(str(REPO) + "/", ""),
                        "wall_seconds": run["wall_seconds"], "cpu_seconds": run["cpu_seconds"],
                        "peak_rss_mb": run["peak_rss_mb"], "load_average_1m": run["load_average_1m"],
                        "load_average_1m_after": run["load_average_1m_after"], "kb_folder_bytes": _folder_bytes(kb_dir),
                        "counts": meta["counts"], "timing": meta["timing"]}
    if store:
        store_dir = kb_dir.with_name(kb_dir.name + "-store")
        shutil.rmtree(store_dir, ignore_errors=True)
        run = measured(cmd[:-4] + ["--quiet", "--store", str(store_dir)] + cmd[-4:])
        out["kb_import_with_store"] = {"wall_seconds": run["wall_seconds"], "cpu_seconds": run["cpu_seconds"],
                                       "peak_rss_mb": run["peak_rss_mb"], "load_average_1m": run["load_average_1m"],
                                       "load_average_1m_after": run["load_average_1m_after"],
                                       "store_folder_bytes": _folder_bytes(store_dir)}
    return out


def _load_measures() -> tuple[Any, Any, str]:
    """(from_disk measure, spacy.load measure, what measured): benchmarks/kb_load.py's
    fresh-interpreter measures when it is there, else this file's own workers."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import kb_load  # benchmarks/kb_load.py

        return kb_load.measure_from_disk, kb_load.measure_spacy_load, "benchmarks/kb_load.py"
    except ImportError:
        pass
    finally:
        sys.path.pop(0)

    def from_disk(path: Path) -> dict[str, Any]:
        run = measured([sys.executable, __file__, "--worker", "from_disk", str(path), ""])
        return {**json.loads(run["stdout"].strip().splitlines()[-1]), "peak_rss_mb": run["peak_rss_mb"]}

    def spacy_load(path: Path) -> dict[str, Any]:
        run = measured([sys.executable, __file__, "--worker", "spacy_load", str(path), "A first document."])
        return {**json.loads(run["stdout"].strip().splitlines()[-1]), "peak_rss_mb": run["peak_rss_mb"]}

    return from_disk, spacy_load, "benchmarks/scale.py workers"


def ensure_pipeline(kb_dir: Path, corpus: Path, pipeline: Path) -> None:
    """Build the small pipeline on the big KB unless it is there (`part_import` removes
    the one built on a KB it replaced)."""
    if (pipeline / "config.cfg").exists():
        return
    tmp = pipeline.with_name(pipeline.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    measured([sys.executable, __file__, "--worker", "build_pipeline", str(kb_dir), str(corpus), str(tmp)])
    shutil.rmtree(pipeline, ignore_errors=True)
    os.replace(tmp, pipeline)


def part_load(kb_dir: Path, corpus: Path, pipeline: Path, lookup: str, repeat: int) -> dict[str, Any]:
    from_disk, spacy_load, how = _load_measures()
    runs = []
    for _ in range(repeat):
        load = _load()
        runs.append({**from_disk(kb_dir), "load_average_1m": load})
    lookup_run = measured([sys.executable, __file__, "--worker", "from_disk", str(kb_dir), lookup])
    ensure_pipeline(kb_dir, corpus, pipeline)
    loads: dict[str, list[dict[str, Any]]] = {"bbc_shipped_kb": [], "synthetic_big_kb": []}
    models = {"bbc_shipped_kb": BBC_MODEL, "synthetic_big_kb": pipeline}
    for _ in range(repeat):  # interleaved
        for name, model in models.items():
            load = _load()
            loads[name].append({**spacy_load(model), "load_average_1m": load})
    return {
        "load_measured_with": how,
        "from_disk": {"best_seconds": min(r["seconds"] for r in runs), "runs": runs,
                      "first_lookup": json.loads(lookup_run["stdout"].strip().splitlines()[-1])},
        "spacy_load": {name: {"model": _rel(models[name]), "best_seconds": min(r["seconds"] for r in rs), "runs": rs}
                       for name, rs in loads.items()},
        "pipeline_folder_bytes": _folder_bytes(pipeline),
    }


SYSTEMS = ("nlp_pipe", "nlp_pipe_frozen", "annotate_local", "ray_1_actor", "ray_2_actors")
# the nlp.pipe passes; nlp_pipe_frozen freezes the loaded heap as annotate's engines do
PIPE_SYSTEMS = ("nlp_pipe", "nlp_pipe_frozen")
_ENGINES = {"annotate_local": ("local", 1), "ray_1_actor": ("ray", 1), "ray_2_actors": ("ray", 2)}


def _same_files(*folders: Path) -> bool:
    """Whether the folders hold the same shard files, byte for byte."""
    names = [sorted(p.name for p in folder.glob("part-*")) for folder in folders]
    return all(n == names[0] for n in names) and all(
        (folders[0] / name).read_bytes() == (folder / name).read_bytes() for folder in folders[1:] for name in names[0])


def part_annotate(corpora: dict[str, tuple[Path, Path]], shard_size: int, rounds: int, done: Any) -> None:
    """Documents/s per system and corpus: `rounds` rounds per corpus, each running the
    five systems once, the order rotated by one per round (nlp.pipe with a pipeline
    loaded just before, not timed, fresh in every round: the pipeline's caches (entity
    signatures, token representations) would otherwise be warm from an earlier pass,
    while every annotate run loads its own; annotate runs include their loads, as a user
    sees them). Per system the median run; the overheads per round, then their median."""
    import statistics

    import ray
    import spacy

    import spacy_sparse_expert  # noqa: F401
    from spacy_sparse_expert.annotate import annotate, read_output
    from spacy_sparse_expert.annotate.engines import freeze_loaded_heap, local_ray_options

    began = time.perf_counter()
    # the Ray `annotate` starts itself (workers at this process's priority), started once here
    ray.init(**local_ray_options(2, 256))
    ray_start = round(time.perf_counter() - began, 2)  # reported, not counted: a cluster would be running
    tmp = Path(tempfile.mkdtemp(prefix="scale-annotate-"))
    try:
        for name, (model, corpus) in corpora.items():
            records = [json.loads(line) for line in corpus.read_text(encoding="utf8").splitlines() if line.strip()]
            source = tmp / f"{name}.jsonl"
            source.write_text("".join(json.dumps({"id": str(r["id"]), "text": r["text"]}) + "\n" for r in records),
                              encoding="utf8")
            texts = [r["text"] for r in records]
            result: dict[str, Any] = {"model": _rel(model), "documents": len(texts),
                                      "words": sum(len(t.split()) for t in texts), "rounds": rounds,
                                      "ray_start_seconds": ray_start, "systems": {}}
            # at least 8 shards, so that two actors have work to share on a small corpus
            shards = result["shard_size"] = max(1, min(shard_size, len(texts) // 8))
            batch_size = result["batch_size"] = spacy.util.load_config(model / "config.cfg")["nlp"]["batch_size"]
            pipe_cats: list[dict[str, float]] = []
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
            for round_ in range(rounds):
                for system in SYSTEMS[round_ % len(SYSTEMS):] + SYSTEMS[:round_ % len(SYSTEMS)]:
                    load = _load()
                    out = tmp / f"{name}-{system}-{round_}"
                    began = time.perf_counter()
                    if system in PIPE_SYSTEMS:
                        nlp = spacy.load(model)
                        # what ShardAnnotator(freeze_heap=True) does
                        froze = system == "nlp_pipe_frozen" and freeze_loaded_heap()
                        load_seconds = time.perf_counter() - began
                        list(nlp.pipe(texts[:32], batch_size=nlp.batch_size))  # warm-up
                        load = _load()
                        began = time.perf_counter()
                        cats = [doc.cats for doc in nlp.pipe(texts, batch_size=nlp.batch_size)]
                        seconds = time.perf_counter() - began
                        if froze:
                            gc.unfreeze()
                        if system == "nlp_pipe":
                            pipe_cats = cats
                        run = {"seconds": round(seconds, 2), "load_average_1m": load,
                               "pipeline_load_seconds": round(load_seconds, 2)}
                        del nlp, cats
                    else:
                        engine, actors = _ENGINES[system]
                        summary = annotate(model, source, out, engine=engine, num_actors=actors, shard_size=shards,
                                           batch_size=batch_size)
                        seconds = time.perf_counter() - began
                        # startup: engine start until every pipeline was loaded (Ray: the actors'
                        # processes, imports and spacy.load); steady: the rest of the engine's time;
                        # the remainder of the call is planning the input (one read for its sha256
                        # and shard offsets), the output folder's lock and manifest
                        run = {"seconds": round(seconds, 2), "load_average_1m": load,
                               "startup_seconds": round(summary.startup_seconds, 2),
                               "steady_seconds": round(summary.seconds - summary.startup_seconds, 2),
                               "plan_seconds": round(seconds - summary.seconds, 2)}
                    runs[system].append(run)
                    print(f"  {name} round {round_} {system}: {len(texts) / seconds:,.1f} docs/s (load {load})",
                          file=sys.stderr, flush=True)
            for system, system_runs in runs.items():
                seconds = statistics.median(r["seconds"] for r in system_runs)
                entry = {"seconds": round(seconds, 2), "docs_per_second": round(len(texts) / seconds, 1),
                         "load_average_1m": round(statistics.mean(r["load_average_1m"] for r in system_runs), 2),
                         "runs": system_runs}
                if system not in PIPE_SYSTEMS:
                    steady = statistics.median(r["steady_seconds"] for r in system_runs)
                    entry.update({"startup_seconds": statistics.median(r["startup_seconds"] for r in system_runs),
                                  "steady_docs_per_second": round(len(texts) / steady, 1)})
                result["systems"][system] = entry
            result["pipeline_load_seconds"] = statistics.median(r["pipeline_load_seconds"] for r in runs["nlp_pipe"])
            last = rounds - 1
            folders = [tmp / f"{name}-{s}-{last}" for s in SYSTEMS if s not in PIPE_SYSTEMS]
            rows = [read_output(folder) for folder in folders]
            result["outputs_identical_local_ray1_ray2"] = rows[0] == rows[1] == rows[2]
            result["shard_files_byte_identical_local_ray1_ray2"] = _same_files(*folders)
            result["max_cats_difference_annotate_vs_nlp_pipe"] = max(
                (abs(row["cats"][label] - cats[label]) for row, cats in zip(rows[0], pipe_cats) for label in cats),
                default=0.0)

            def overhead(system: str, measure: Any, baseline: str = "nlp_pipe") -> float:
                per_round = [measure(run, pipe) for run, pipe in zip(runs[system], runs[baseline])]
                return round(statistics.median(per_round), 3)

            def overheads(baseline: str) -> dict[str, dict[str, float]]:
                # against the `baseline` pass of the same round: end to end (the whole annotate
                # call), against load + pipe (what a plain script pays), and steady (after the loads)
                return {system: {
                    "end_to_end": overhead(system, lambda run, pipe: run["seconds"] / pipe["seconds"] - 1, baseline),
                    "vs_load_and_pipe": overhead(system, lambda run, pipe: run["seconds"] / (
                        pipe["seconds"] + pipe["pipeline_load_seconds"]) - 1, baseline),
                    "steady": overhead(system, lambda run, pipe: run["steady_seconds"] / pipe["seconds"] - 1, baseline)}
                    for system in ("annotate_local", "ray_1_actor")}

            result["overheads_vs_nlp_pipe"] = overheads("nlp_pipe")
            # like for like: nlp.pipe with the heap frozen as annotate's engines freeze it
            result["overheads_vs_nlp_pipe_frozen"] = overheads("nlp_pipe_frozen")
            result["ray_overhead_1_actor_vs_nlp_pipe"] = result["overheads_vs_nlp_pipe"]["ray_1_actor"]["end_to_end"]
            done(name, result)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def _machine() -> dict[str, Any]:
    import torch

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--rusage"]:
        _rusage_main(argv[2:] if argv[1:2] == ["--"] else argv[1:])
        return
    if argv[:1] == ["--worker"]:
        {"from_disk": _worker_from_disk, "spacy_load": _worker_spacy_load,
         "build_pipeline": _worker_build_pipeline}[argv[1]](*argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", type=int, default=10_000_000)
    parser.add_argument("--docs", type=int, default=100_000, help="documents of the synthetic corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}")
    parser.add_argument("--work", type=Path, default=WORK, help="where the graph, KB and pipeline go")
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process runs of from_disk and spacy.load")
    parser.add_argument("--store", action="store_true", help="also time an import with --store")
    parser.add_argument("--shard-size", type=int, default=2000)
    parser.add_argument("--corpora", default="bbc_test,synthetic", help="annotate: bbc_test, synthetic or both")
    parser.add_argument("--rounds", type=int, default=2, help="annotate: rounds of the five systems per corpus")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown --parts {unknown}; choose from {', '.join(PARTS)}")
    if "annotate" in parts:
        os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: one core per worker, as in annotate.py
    work = args.work
    graph = work / f"graph-{args.triples}-seed{args.seed}.nt.gz"
    corpus = work / f"corpus-{args.docs}-{args.triples}-seed{args.seed}.jsonl"
    kb_dir = work / f"kb-{args.triples}-seed{args.seed}"
    pipeline = work / f"pipeline-{args.triples}-seed{args.seed}"
    key = f"triples_{args.triples}"
    results = json.loads(args.output.read_text(encoding="utf8")) if args.output.exists() else {"runs": {}}
    entry: dict[str, Any] = results["runs"].get(key, {})
    entry.update({"triples": args.triples, "seed": args.seed, "machine": _machine()})
    log = entry.setdefault("load_average_1m", {})

    def save() -> None:
        """Write what was measured so far (after every part, and after each annotated
        corpus): a later failure or a kill keeps it."""
        loads = [v for v in log.values() if isinstance(v, (int, float))]
        if loads and max(loads) > (os.cpu_count() or 1):
            entry["notes"] = (f"The machine was shared: 1-minute load average {min(loads):.1f}-{max(loads):.1f} on "
                              f"{os.cpu_count()} cores around the steps, so wall times are longer than on an idle "
                              "machine; CPU seconds are the cost whatever the load.")
        else:
            entry.pop("notes", None)
        entry["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        # Re-read before writing: what another run of other parts wrote meanwhile stays.
        results = json.loads(args.output.read_text(encoding="utf8")) if args.output.exists() else {"runs": {}}
        old = results["runs"].get(key, {})
        merged = {**old, **entry, "load_average_1m": {**old.get("load_average_1m", {}), **log}}
        if "annotate" in entry:  # per corpus: a run of one corpus keeps the other's figures
            merged["annotate"] = {**old.get("annotate", {}), **entry["annotate"]}
        results["runs"][key] = merged
        args.output.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.output.with_name(args.output.name + ".partial")
        tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf8")
        os.replace(tmp, args.output)

    for part in PARTS:
        if part not in parts:
            continue
        log[f"{part}_before"] = _load()
        print(f"{part} (load {log[f'{part}_before']})", file=sys.stderr, flush=True)
        if part == "generate":
            entry["generate"] = {"graph": generate_graph(graph, args.triples, args.seed),
                                 "corpus": generate_corpus(corpus, args.docs, args.triples, args.seed)}
        elif part == "import":
            if not graph.exists():
                sys.exit(f"{graph} is missing: run with --parts generate first")
            entry.update(part_import(graph, kb_dir, args.store))
            shutil.rmtree(pipeline, ignore_errors=True)  # built on the KB just replaced: built again
        elif part == "load":
            shape = GraphShape(args.triples, args.seed)
            entry.update(part_load(kb_dir, corpus, pipeline, str(shape.family[0]), args.repeat))
        elif part == "annotate":
            entry.setdefault("annotate", {})  # a run of one corpus keeps the other's figures

            def done(name: str, result: dict[str, Any]) -> None:
                entry["annotate"][name] = result
                save()

            corpora = {"bbc_test": (BBC_MODEL, BBC_TEST), "synthetic": (pipeline, corpus)}
            if "synthetic" in args.corpora.split(","):
                ensure_pipeline(kb_dir, corpus, pipeline)
            part_annotate({c: corpora[c] for c in args.corpora.split(",")}, args.shard_size, args.rounds, done)
        log[f"{part}_after"] = _load()
        save()
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
