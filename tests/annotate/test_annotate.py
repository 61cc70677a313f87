"""`sparse-expert annotate`: the local engine and Ray actors write the same shard files,
byte for byte; the columnar rows give the bytes the row-wise build gave; JSONL and
Parquet in and out; failing documents are reported with their ids; a run killed midway
and re-run skips the finished shards and ends with the output of an uninterrupted run.

Ray runs on a local instance started by this module with the engine's own settings
(loopback, 2 CPUs, an 80 MB object store, no dashboard), shut down when the module ends; the kill test's subprocess joins it
with --address so that the test pays for one Ray start.
"""
from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import spacy
from filelock import FileLock
from spacy.language import Language
from spacy.tokens import Doc
from typer.testing import CliRunner

from spacy_sparse_expert.annotate import annotate, read_output
from spacy_sparse_expert.annotate.engines import (SHARDS_IN_FLIGHT, ShardOutput, annotate_records, local_ray_options,
                                                  run_local, shards_to_queue)
from spacy_sparse_expert.annotate.reader import make_record, plan_input
from spacy_sparse_expert.annotate.rows import ShardColumns, output_schema
from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.errors import SparseExpertError

from .conftest import corpus, write_jsonl, write_parquet

KILL_DOCS = 400
KILL_SHARD = 10


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    import ray  # the dev extra installs ray[data]: a missing Ray is a failure, not a skip

    ray.init(**local_ray_options(2, 80))
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def with_bad_documents(records: List[Any]) -> List[Any]:
    """`records` with four documents that cannot be annotated, and a blank line."""
    records = list(records)
    records[3] = {"id": "doc-3", "text": 12}           # text not a string
    records[7] = {"id": "doc-7"}                        # no text
    records[9] = ["not", "an", "object"]
    records[11] = {"id": 1.5, "text": "a float id"}
    return records


def shard_files(path: Path) -> List[str]:
    return sorted(p.name for p in path.glob("part-*")) if path.exists() else []


def annotated(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in rows if r["error"] is None]


def same_files(a: Path, b: Path) -> bool:
    """Whether folders `a` and `b` hold the same shard files, byte for byte."""
    return shard_files(a) == shard_files(b) and all((a / n).read_bytes() == (b / n).read_bytes() for n in shard_files(a))


def test_local_and_ray_write_the_same_rows(tmp_path: Path, model_dir: Path, ray_address: str) -> None:
    """The same bytes whatever the engine, also when the local engine's process runs torch
    on two threads and each Ray actor on one (as on CI): an op whose bits depend on the
    thread count would break it."""
    import torch

    records = with_bad_documents(corpus(30))
    source = write_jsonl(tmp_path / "docs.jsonl", records)
    with source.open("a", encoding="utf8") as fh:
        fh.write("\n{not json\n")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        local = annotate(model_dir, source, tmp_path / "local", engine="local", shard_size=8, batch_size=4)
    finally:
        torch.set_num_threads(threads)
    ray = annotate(model_dir, source, tmp_path / "ray", engine="ray", shard_size=8, batch_size=4, num_actors=2)
    assert shard_files(tmp_path / "local") == shard_files(tmp_path / "ray") == [
        f"part-{i:05d}.parquet" for i in range(4)]
    assert same_files(tmp_path / "local", tmp_path / "ray")
    rows = read_output(tmp_path / "local")
    assert rows == read_output(tmp_path / "ray")
    assert local.errors == ray.errors
    assert 0 < local.startup_seconds < local.seconds and 0 < ray.startup_seconds < ray.seconds
    # every line but the blank one has a row; the good documents are all annotated
    assert [r["row"] for r in rows] == [i for i in range(32) if i != 30]
    assert len(annotated(rows)) == 26
    failed = {r["row"]: (r["id"], r["error"]) for r in rows if r["error"] is not None}
    assert failed[3][0] == "doc-3" and "'text' is 12, not a string" in failed[3][1]
    assert failed[7][0] == "doc-7" and "no 'text' field" in failed[7][1]
    assert failed[9][0] is None and "line 10: not a JSON object" in failed[9][1]
    assert failed[11][0] is None and "'id' is 1.5" in failed[11][1]
    assert failed[31][0] is None and "line 32: invalid JSON" in failed[31][1]
    # the pipeline's own answers: cats, linked entities over the right text, rule hits
    first = rows[0]
    assert first["id"] == "doc-0" and set(first["cats"]) == {"business", "politics", "sport"}
    assert abs(sum(first["cats"].values()) - 1.0) < 1e-5
    chelsea = next(e for e in first["entities"] if e["text"] == "Chelsea")
    assert chelsea["iri"] == "http://example.org/ChelseaFC" and (chelsea["start"], chelsea["end"]) == (0, 1)
    text = records[0]["text"]
    assert all(text[e["start_char"]:e["end_char"]] == e["text"] for e in first["entities"])
    assert {"rule": "sport-league", "start": 7, "end": 9} in first["rule_hits"]


def _schedule(n_shards: int, n_actors: int, seconds_per_shard: List[float]) -> List[List[int]]:
    """The shards each actor annotates when run_ray hands them out by `shards_to_queue`:
    actors ready one after another, actor i taking seconds_per_shard[i] a shard, each
    running its queue in order (as Ray runs an actor's calls)."""
    pending = list(range(n_shards))
    queues: List[List[int]] = [[] for _ in range(n_actors)]
    done: List[List[int]] = [[] for _ in range(n_actors)]
    busy_until = [0.0] * n_actors

    def top_up(actor: int) -> None:
        for _ in range(shards_to_queue(len(queues[actor]), len(pending), n_actors)):
            queues[actor].append(pending.pop(0))

    for actor in range(n_actors):
        top_up(actor)
    while any(queues):
        actor = min((a for a in range(n_actors) if queues[a]),
                    key=lambda a: busy_until[a] + seconds_per_shard[a])
        busy_until[actor] += seconds_per_shard[actor]
        done[actor].append(queues[actor].pop(0))
        top_up(actor)
    return done


def test_ray_actors_get_a_next_shard_queued_and_share_the_last_ones() -> None:
    assert SHARDS_IN_FLIGHT == 2
    # plenty of shards: each loaded actor is handed two, then one for each it returns
    assert shards_to_queue(0, 50, 2) == 2 and shards_to_queue(1, 48, 2) == 1 and shards_to_queue(2, 48, 2) == 0
    # fewer left than actors: at most one each, none when one is still queued
    assert shards_to_queue(0, 1, 2) == 1 and shards_to_queue(1, 1, 2) == 0 and shards_to_queue(0, 0, 2) == 0
    # three actors, four shards: every actor annotates one, nobody holds two of three
    assert sorted(len(d) for d in _schedule(4, 3, [1.0, 1.0, 1.0])) == [1, 1, 2]
    # a slow actor (3x) keeps no shard from the fast one at the end: the fast one does
    # three times as many, and the whole input is annotated once
    done = _schedule(40, 2, [1.0, 3.0])
    assert sorted(done[0] + done[1]) == list(range(40)) and len(done[0]) == 30


def test_parquet_in_jsonl_out(tmp_path: Path, model_dir: Path) -> None:
    records = corpus(20)
    records[4] = {"id": 4, "text": None}  # an integer id, a null text
    jsonl = write_jsonl(tmp_path / "docs.jsonl", records)
    parquet = write_parquet(tmp_path / "docs.parquet", [{"id": str(r["id"]), "text": r["text"]} for r in records])
    annotate(model_dir, jsonl, tmp_path / "from_jsonl", engine="local", shard_size=6)
    annotate(model_dir, parquet, tmp_path / "from_parquet", engine="local", shard_size=6, output_format="jsonl")
    assert shard_files(tmp_path / "from_parquet") == [f"part-{i:05d}.jsonl" for i in range(4)]
    # row groups of 7 cut across shards of 6: every row read once, in order
    assert read_output(tmp_path / "from_parquet") == read_output(tmp_path / "from_jsonl")
    lines = (tmp_path / "from_parquet" / "part-00000.jsonl").read_text(encoding="utf8").splitlines()
    assert json.loads(lines[4])["id"] == "4" and "'text' is null" in json.loads(lines[4])["error"]


def test_cli_reports_failures_by_id(tmp_path: Path, model_dir: Path) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", with_bad_documents(corpus(14)))
    result = CliRunner().invoke(app, ["annotate", str(model_dir), str(source), str(tmp_path / "out"),
                                      "--engine", "local", "--shard-size", "5", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "14 documents in 3 shards" in result.output
    assert "4 documents failed" in result.output
    assert "id 'doc-3'" in result.output and "id 'doc-7'" in result.output
    assert len(annotated(read_output(tmp_path / "out"))) == 10


def test_the_local_engine_freezes_the_loaded_heap_for_its_run_only(tmp_path: Path, model_dir: Path) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(12))
    plan = plan_input(source, "jsonl", 4, text_field="text", id_field="id")
    kwargs = {"model": str(model_dir), "input_path": str(source), "input_format": "jsonl", "text_field": "text",
              "id_field": "id", "batch_size": 4, "output_format": "jsonl"}
    seen: List[Any] = []

    def on_shard(out: ShardOutput) -> None:
        seen.append((out.number, out.n_rows, gc.get_freeze_count()))

    assert gc.get_freeze_count() == 0
    run_local(kwargs, plan.shards, on_shard)
    # while the shards run, the objects alive after the load (spaCy's, torch's, the
    # pipeline's) are out of the collector's reach; afterwards they are back
    assert [(number, n_rows) for number, n_rows, _ in seen] == [(0, 4), (1, 4), (2, 4)]
    assert all(frozen > 10_000 for _, _, frozen in seen)
    assert gc.get_freeze_count() == 0
    # a process that froze objects itself keeps them frozen and gets nothing more frozen
    gc.freeze()
    try:
        mine = gc.get_freeze_count()
        seen.clear()
        run_local(kwargs, plan.shards, on_shard)
        assert len(seen) == 3 and all(frozen <= mine for _, _, frozen in seen)
        assert 0 < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()


def test_rerun_skips_finished_shards(tmp_path: Path, model_dir: Path) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(12))
    out = tmp_path / "out"
    annotate(model_dir, source, out, engine="local", shard_size=4)
    before = read_output(out)
    kept = (out / "part-00000.parquet").stat().st_mtime_ns
    (out / "part-00001.parquet").unlink()
    (out / ".part-00001.parquet.tmp-abc12345").write_bytes(b"half a shard")  # left by a kill
    again = annotate(model_dir, source, out, engine="local", shard_size=4)
    assert (again.n_skipped, again.n_docs) == (2, 4)
    assert (out / "part-00000.parquet").stat().st_mtime_ns == kept
    assert not list(out.glob(".part-*"))
    assert read_output(out) == before
    done = annotate(model_dir, source, out, engine="ray", shard_size=4)  # nothing left: no Ray is started
    assert (done.n_skipped, done.n_docs) == (3, 0)


def test_a_document_the_pipeline_fails_on_is_reported(model_dir: Path) -> None:
    nlp = spacy.load(model_dir)
    plain = annotate_records(nlp, [make_record(i, r["id"], r["text"], text_field="text", id_field="id")
                                   for i, r in enumerate(corpus(10))], batch_size=4)
    nlp.add_pipe("test_annotate_fails_on_boom")
    records = corpus(10)
    records[5]["text"] = "BOOM " + records[5]["text"]
    rows = annotate_records(nlp, [make_record(i, r["id"], r["text"], text_field="text", id_field="id")
                                  for i, r in enumerate(records)], batch_size=4)
    assert rows[5]["id"] == "doc-5" and rows[5]["cats"] is None
    assert rows[5]["error"] == "row 5: ValueError: cannot annotate BOOM"
    # the other documents of the failing batch (4-7) and of the others are annotated as usual:
    # the same rows, with cats equal to float rounding (the failing batch's documents are run
    # one at a time, and a forward pass over other rows may round differently)
    others, expected = rows[:5] + rows[6:], plain[:5] + plain[6:]
    assert [{**r, "cats": None} for r in others] == [{**r, "cats": None} for r in expected]
    for got, want in zip(others, expected):
        assert got["cats"].keys() == want["cats"].keys()
        assert got["cats"] == pytest.approx(want["cats"], abs=1e-6)


class PipeCalls:
    """A component that counts the `pipe` calls spaCy makes on it and the docs of each."""

    def __init__(self) -> None:
        self.calls: List[int] = []

    def __call__(self, doc: Doc) -> Doc:
        return doc

    def pipe(self, stream: Any, batch_size: int = 128) -> Iterator[Doc]:
        self.calls.append(0)
        for doc in stream:
            self.calls[-1] += 1
            yield doc


@Language.factory("test_annotate_pipe_calls")
def make_pipe_calls(nlp: Language, name: str) -> PipeCalls:
    return PipeCalls()


def test_a_shard_goes_through_one_pipe_as_nlp_pipe_would(model_dir: Path) -> None:
    """The records go through one `nlp.pipe` stream, not one per `batch_size` documents:
    the pipeline makes its own batches (ours grows them past batch_size on short texts),
    so the cats are those of `nlp.pipe` over the same texts, bit for bit. Records that
    could not be read pass through in their places."""
    nlp = spacy.load(model_dir)
    counter = nlp.add_pipe("test_annotate_pipe_calls")
    records = [make_record(i, r["id"], r["text"], text_field="text", id_field="id")
               for i, r in enumerate(corpus(10))]
    records[2] = make_record(2, "doc-2", 12, text_field="text", id_field="id")
    rows = annotate_records(nlp, records, batch_size=3)
    assert counter.calls == [9]
    assert rows[2]["error"] is not None and rows[2]["cats"] is None
    good = [r for r in records if r.error is None]
    plain = [doc.cats for doc in nlp.pipe([r.text for r in good], batch_size=3)]
    assert [row["cats"] for row in rows if row["error"] is None] == [
        {label: float(score) for label, score in cats.items()} for cats in plain]


def row_wise(record: Any, doc: Any) -> Dict[str, Any]:
    """An output row as the engines built it before the columns: a dict per entity."""
    spans = doc.spans["kb_entities"] if "kb_entities" in doc.spans else ()
    return {"row": record.row, "id": record.id, "cats": {label: float(score) for label, score in doc.cats.items()},
            "entities": [{"iri": s.kb_id_, "start": s.start, "end": s.end, "start_char": s.start_char,
                          "end_char": s.end_char, "label": s.label_, "text": s.text} for s in spans],
            "rule_hits": [{"rule": rule, "start": start, "end": end} for rule, start, end in doc._.rule_hits or ()],
            "error": None}


def test_columns_give_the_bytes_of_the_row_wise_build(model_dir: Path) -> None:
    """The shard bytes built from columns equal those of the rows as dicts (the build
    before the columns: ``pa.Table.from_pylist``, ``json.dumps`` a line), with error rows,
    rows without entities, rule hits and a null id among them."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    nlp = spacy.load(model_dir)
    records = [make_record(i, None if i == 2 else f"doc-{i}", r["text"], text_field="text", id_field="id")
               for i, r in enumerate(corpus(12))]
    error = "ValueError: no ünïcode here"
    rows, columns = [], ShardColumns()
    for record, doc in zip(records, nlp.pipe([r.text for r in records])):
        if record.row in (4, 9):
            columns.add_error(record, error)
            rows.append({"row": record.row, "id": record.id, "cats": None, "entities": [], "rule_hits": [],
                         "error": error})
        else:
            columns.add_doc(record, doc)
            rows.append(row_wise(record, doc))
    assert columns.rows() == rows
    assert any(r["entities"] for r in rows) and any(r["rule_hits"] for r in rows)
    assert any(not r["entities"] and r["error"] is None for r in rows)
    assert columns.errors() == [(4, "doc-4", error), (9, "doc-9", error)]
    parquet = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=output_schema()), parquet)
    assert columns.encode("parquet") == parquet.getvalue()
    assert columns.encode("jsonl") == b"".join(json.dumps(r, ensure_ascii=False).encode("utf8") + b"\n" for r in rows)


def test_a_jsonl_shard_needs_no_pyarrow(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JSONL in and out works without pyarrow (see reader.parquet_module): a shard's rows
    and JSONL bytes, linked entities included, are made without importing it."""
    nlp = spacy.load(model_dir)
    records = [make_record(i, f"doc-{i}", r["text"], text_field="text", id_field="id") for i, r in enumerate(corpus(6))]
    columns = ShardColumns()
    for record, doc in zip(records, nlp.pipe([r.text for r in records])):
        columns.add_doc(record, doc)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    rows = [row_wise(record, doc) for record, doc in zip(records, nlp.pipe([r.text for r in records]))]
    assert any(r["entities"] for r in rows)
    assert columns.encode("jsonl") == b"".join(json.dumps(r, ensure_ascii=False).encode("utf8") + b"\n" for r in rows)
    with pytest.raises(ImportError):
        columns.encode("parquet")


def test_ray_workers_run_at_the_drivers_priority(ray_address: str) -> None:
    """Ray's default starts workers 15 nice levels down: on a shared machine the actors,
    which do all of the work, would wait behind every other process."""
    import ray

    @ray.remote(num_cpus=1)
    def niceness() -> int:
        return os.nice(0)

    assert ray.get(niceness.remote()) == os.nice(0)


def test_a_pipeline_that_fails_to_load_on_ray_stops_with_e268(tmp_path: Path, model_dir: Path,
                                                               ray_address: str) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "textcat" / "cfg").write_text("{not json", encoding="utf8")
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(6))
    with pytest.raises(SparseExpertError, match=r"E268.*Annotation with Ray failed"):
        annotate(broken, source, tmp_path / "out", engine="ray", shard_size=3)
    assert shard_files(tmp_path / "out") == []


@Language.component("test_annotate_fails_on_boom")
def fails_on_boom(doc: Doc) -> Doc:
    if doc.text.startswith("BOOM"):
        raise ValueError("cannot annotate BOOM")
    return doc


def test_refuses_other_settings_and_foreign_folders(tmp_path: Path, model_dir: Path) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(6))
    annotate(model_dir, source, tmp_path / "out", engine="local", shard_size=4)
    with pytest.raises(SparseExpertError, match=r"E263.*shard_size was 4, now 3"):
        annotate(model_dir, source, tmp_path / "out", engine="local", shard_size=3)
    write_jsonl(source, corpus(7))
    with pytest.raises(SparseExpertError, match=r"E263.*input_sha256"):
        annotate(model_dir, source, tmp_path / "out", engine="local", shard_size=4)
    with FileLock(str(tmp_path / "out" / ".annotate.lock")):  # another run holds the folder
        with pytest.raises(SparseExpertError, match=r"E264.*running"):
            annotate(model_dir, source, tmp_path / "out", engine="local", shard_size=4)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me", encoding="utf8")
    with pytest.raises(SparseExpertError, match=r"E262.*notes\.txt"):
        annotate(model_dir, source, tmp_path / "mine", engine="local")
    with pytest.raises(SparseExpertError, match=r"E267.*no config\.cfg"):
        annotate(tmp_path / "mine", source, tmp_path / "other", engine="local")
    with pytest.raises(SparseExpertError, match=r"E261.*'body'"):
        annotate(model_dir, write_parquet(tmp_path / "d.parquet", corpus(3)), tmp_path / "p", text_field="body")


def kill_midway(tmp_path: Path, command: List[str], out: Path, n_shards: int) -> List[str]:
    """Run `command` in its own session, SIGKILL it (and whatever it started) once two
    shards are written; returns the shard files it left."""
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while len(shard_files(out)) < 2:
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text(encoding="utf8", errors="replace")
                assert time.monotonic() < deadline, "no shard written in 120 s"
                time.sleep(0.01)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started, nothing else
            proc.wait(timeout=30)
    written = shard_files(out)
    assert 2 <= len(written) < n_shards, "the run was not killed midway"
    return written


def cli_command(model_dir: Path, source: Path, out: Path, shard_size: int, *options: str) -> List[str]:
    return [sys.executable, "-m", "spacy_sparse_expert.cli.main", "annotate", str(model_dir), str(source), str(out),
            "--shard-size", str(shard_size), "--batch-size", str(shard_size), "--quiet", *options]


def test_killed_local_run_resumes_to_the_same_output(tmp_path: Path, model_dir: Path) -> None:
    n_docs, shard_size = 80, 4
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(n_docs))
    annotate(model_dir, source, tmp_path / "reference", engine="local", shard_size=shard_size, batch_size=shard_size)
    out = tmp_path / "out"
    written = kill_midway(tmp_path, cli_command(model_dir, source, out, shard_size, "--engine", "local"), out,
                          n_docs // shard_size)
    resumed = annotate(model_dir, source, out, engine="local", shard_size=shard_size, batch_size=shard_size)
    assert (resumed.n_skipped, resumed.n_docs) == (len(written), n_docs - len(written) * shard_size)
    assert shard_files(out) == shard_files(tmp_path / "reference")
    assert read_output(out) == read_output(tmp_path / "reference")


@pytest.mark.slow
def test_killed_ray_run_resumes_to_the_same_output(tmp_path: Path, model_dir: Path, ray_address: str) -> None:
    """The Ray driver (joined to this module's Ray with --address) is killed midway; the
    re-run on Ray writes the missing shards only, and the output equals a local run's."""
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(KILL_DOCS))
    annotate(model_dir, source, tmp_path / "reference", engine="local", shard_size=KILL_SHARD, batch_size=KILL_SHARD)
    out = tmp_path / "out"
    command = cli_command(model_dir, source, out, KILL_SHARD, "--engine", "ray", "--address", ray_address)
    written = kill_midway(tmp_path, command, out, KILL_DOCS // KILL_SHARD)
    resumed = annotate(model_dir, source, out, engine="ray", shard_size=KILL_SHARD, batch_size=KILL_SHARD)
    assert (resumed.n_skipped, resumed.n_docs) == (len(written), KILL_DOCS - len(written) * KILL_SHARD)
    assert shard_files(out) == shard_files(tmp_path / "reference")
    assert read_output(out) == read_output(tmp_path / "reference")
