"""benchmarks/scale.py's generator on a tiny graph: deterministic from the seed, exactly
the triples asked for, the shape of the shipped graph (multilingual labels, shared
aliases, a class hierarchy, relations), importable into a KB; its corpus names KB
aliases; the README rendering of its results. No timing is asserted."""
from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import re
import sys
from pathlib import Path

import pyoxigraph as ox

import pytest

from spacy_sparse_expert.kb.compile import compile_kb

REPO = Path(__file__).parent.parent
BENCH = REPO / "benchmarks"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
N = 6000


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # report.py imports its sibling stats.py
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def parse(path: Path) -> list[ox.Quad]:
    with gzip.open(path, "rb") as fh:
        return list(ox.parse(fh, format=ox.RdfFormat.N_TRIPLES))


@pytest.fixture(scope="module")
def scale():
    return _load("scale")


@pytest.fixture(scope="module")
def graph(scale, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "graph.nt.gz"
    info = scale.generate_graph(path, N, seed=3, block=50)  # several blocks
    assert info["triples"] == N
    return path


def test_generator_is_deterministic_and_exact(scale, graph: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.nt.gz"
    scale.generate_graph(again, N, seed=3, block=50)
    quads = parse(graph)
    assert len(quads) == N
    assert quads == parse(again)
    other = tmp_path / "other.nt.gz"
    scale.generate_graph(other, N, seed=4, block=50)
    assert quads != parse(other)


def test_graph_has_the_shape_of_the_shipped_one(graph: Path) -> None:
    quads = parse(graph)
    by_pred = collections.Counter(q.predicate.value for q in quads)
    languages = collections.Counter(q.object.language for q in quads if q.predicate.value == RDFS + "label")
    assert {"en", "de", "fr", "es"} <= set(languages)
    assert by_pred[RDFS + "subClassOf"] > 0 and by_pred["http://www.w3.org/2004/02/skos/core#altLabel"] > 0
    n_entities = by_pred["http://www.w3.org/2002/07/owl#sameAs"]
    assert 20 < N / n_entities < 40  # the shipped graph: ~29 triples per entity
    relations = sum(c for p, c in by_pred.items() if "/relation/" in p)
    assert relations / n_entities > 10


def test_graph_imports_into_a_kb_with_ambiguous_aliases(graph: Path, scale) -> None:
    kb = compile_kb([graph], languages=("en", "de"))
    shape = scale.GraphShape(N, 3)
    labelled = {q.subject.value for q in parse(graph) if "/entity/" in q.subject.value
                and q.predicate.value in (RDFS + "label", "http://www.w3.org/2004/02/skos/core#altLabel")
                and q.object.language in ("en", "de")}
    assert set(kb.entities) == labelled
    assert 0.9 * shape.n_entities < kb.n_entities <= shape.n_entities  # the last block is cut at N triples
    assert kb.n_types >= 150 and kb.n_relations > 10 * kb.n_entities
    top = max(kb.aliases, key=lambda a: len(kb.candidates(a)))
    assert len(kb.candidates(top)) > 1 and " " not in top  # a family name shared by several entities


def test_corpus_names_entities_of_the_graph(scale, tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    scale.generate_corpus(path, 40, N, seed=3)
    docs = [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]
    assert len(docs) == 40 and len({d["id"] for d in docs}) == 40
    names = set(scale.GraphShape(N, 3).name.tolist())
    assert all(any(name in d["text"] for name in names) for d in docs)
    assert {d["label"] for d in docs} <= set(scale.TOPICS)


def test_readme_rendering_of_scale_results() -> None:
    report = _load("report")
    run = {"triples": 1000, "seed": 0, "date": "2026-11-30T00:00:00+00:00",
           "machine": {"cpus": 2, "memory_gb": 23.5, "torch": "2.13.0+cpu"},
           "kb_import": {"wall_seconds": 10.0, "cpu_seconds": 8.0, "peak_rss_mb": 300.0, "load_average_1m": 1.0,
                         "kb_folder_bytes": 2**21, "counts": {"entities": 35, "aliases": 50, "relations": 700}},
           "from_disk": {"runs": [{"seconds": 0.5, "rss_added_mb": 20.0, "load_average_1m": 1.0},
                                  {"seconds": 0.25, "rss_added_mb": 10.0, "load_average_1m": 2.0}]},
           "notes": "Shared machine."}
    text = report.scale({"runs": {"triples_1000": run}})
    assert "| `kb import` (35 entities, 50 aliases, 700 relations) | 10 | 8 | 300 | KB folder 2 MB | 1.0 |" in text
    assert "| `KnowledgeBase.from_disk`, best of 2 | 0.250 | - | - | +10 MB | 2.0 |" in text
    assert "import peak RSS 300.00 MB (goal < 4096: met)" in text
    assert text.endswith("torch 2.13.0+cpu. Shared machine.")


def test_readme_rendering_of_annotation_results() -> None:
    report = _load("report")

    def system(docs_per_second: float, load: float) -> dict:
        return {"docs_per_second": docs_per_second, "load_average_1m": load}

    def corpus(loads: tuple, frozen: bool) -> dict:
        pipe_load, ray_load = loads
        systems = {"nlp_pipe": system(3000.0, pipe_load), "annotate_local": system(2700.0, 1.0),
                   "ray_1_actor": system(2500.0, ray_load), "ray_2_actors": system(4300.0, 1.0)}
        out = {"documents": 1000, "systems": systems, "ray_overhead_1_actor_vs_nlp_pipe": 0.2,
               "outputs_identical_local_ray1_ray2": True}
        if frozen:  # runs before the frozen nlp.pipe pass have neither
            systems["nlp_pipe_frozen"] = system(3300.0, 1.2)
            out["overheads_vs_nlp_pipe_frozen"] = {"ray_1_actor": {"end_to_end": 0.32}}
        return out

    run = {"triples": 1000, "seed": 0, "date": "2026-12-01T00:00:00+00:00",
           "machine": {"cpus": 2, "memory_gb": 23.5, "torch": "2.13.0+cpu"},
           # loads 1.5 and 1.1: both runs had a core each, comparable; 3.0 and 1.0: not
           "annotate": {"bbc_test": corpus((3.0, 1.0), False), "synthetic": corpus((1.5, 1.1), True)}}
    text = report.scale({"runs": {"triples_1000": run}})
    assert "| `nlp.pipe`, heap frozen after the load | - | 3,300.0 (load 1.2) |" in text
    assert "| same, vs `nlp.pipe` with the heap frozen (like for like) | - | +32% |" in text
    assert "Ray overhead at 1 actor (synthetic) 20.00 % (goal < 20: not met)" in text
    assert "Ray overhead at 1 actor (bbc_test) +20% (goal < 20%: not comparable, load 3.0 during nlp.pipe" in text


@pytest.mark.parametrize("ray_seconds, verdict", [
    ([33.0, 33.3, 32.7, 33.6, 32.4, 33.0, 33.3, 32.7, 33.6, 32.4], "met"),        # +8% to +12%
    ([39.0, 39.3, 38.7, 39.6, 38.4, 39.0, 39.3, 38.7, 39.6, 38.4], "not met"),    # +28% to +32%
    ([33.0, 39.0, 33.3, 38.7, 36.0, 33.6, 38.4, 36.3, 32.7, 39.3], "not shown: the interval spans it"),
])
def test_ray_overhead_goal_wants_its_whole_interval_under_the_limit(ray_seconds: list, verdict: str) -> None:
    report = _load("report")

    def system(seconds: list, docs_per_second: float) -> dict:
        return {"docs_per_second": docs_per_second, "load_average_1m": 1.1,
                "runs": [{"seconds": s, "load_average_1m": 1.1} for s in seconds]}

    systems = {"nlp_pipe": system([30.0] * 10, 3000.0), "annotate_local": system([32.0] * 10, 2800.0),
               "ray_1_actor": system(ray_seconds, 2500.0), "ray_2_actors": system([20.0] * 10, 4500.0)}
    run = {"triples": 1000, "seed": 0, "date": "2026-12-01T00:00:00+00:00",
           "machine": {"cpus": 2, "memory_gb": 23.5, "torch": "2.13.0+cpu"},
           "annotate": {"synthetic": {"documents": 100000, "systems": systems, "ray_overhead_1_actor_vs_nlp_pipe": 0.2,
                                      "outputs_identical_local_ray1_ray2": True}}}
    text = report.scale({"runs": {"triples_1000": run}})
    found = re.search(r"Ray overhead at 1 actor \(synthetic\) \+[0-9.]+% \[[-+0-9., ]+\] over 10 rounds "
                      r"\(goal < 20%: ([^)]*)\)", text)
    assert found and found.group(1) == verdict, text[-400:]
