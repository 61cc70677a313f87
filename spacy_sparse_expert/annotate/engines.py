"""The engines of `sparse-expert annotate`: the same shard function run by `nlp.pipe` in
this process (`run_local`) or by Ray actors that each load the pipeline once
(`run_ray`). A shard comes back as the bytes of its output file, made where its
documents were annotated; both engines hand it to the same `on_shard` callback, which
writes it, so the two engines write identical files.

Ray is imported only inside `run_ray`: the package works without it.
"""
from __future__ import annotations

import gc
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import Errors, SparseExpertError
from .reader import Record, Shard, read_shard
from .rows import Row, RowError, ShardColumns, doc_row, error_row


class ShardOutput(NamedTuple):
    """One annotated shard: `data` is its output file's content, `n_rows` its rows,
    `errors` (row, id, message) of its documents that were not annotated."""

    number: int
    data: bytes
    n_rows: int
    errors: Tuple[RowError, ...]


# each finished shard, in the order shards finish
OnShard = Callable[[ShardOutput], None]


def annotated_docs(nlp: Any, records: Sequence[Record],
                   batch_size: int) -> Iterator[Tuple[Record, Optional[Any], Optional[str]]]:
    """(record, doc, None) or (record, None, error) for each of `records`, in order.

    The texts go through one `nlp.pipe(..., batch_size=batch_size)`, as a plain run over
    them would: the pipeline makes its own batches (ours grows a batch of short texts
    past `batch_size` documents, see `pipeline/textcat.py`), so a shard costs what
    `nlp.pipe` costs. A pipe of `batch_size` documents at a time made more, smaller
    forward passes (on 29-word documents at batch size 64, 5% slower in the median of
    paired rounds). When the pipeline raises, the
    documents from the first one it had not returned on go through `_annotated_chunks`:
    chunks of `batch_size`, and the documents of a failing chunk one at a time, so that
    only the failing ones get an error (the exception's type and message)."""
    records = list(records)
    good = [record for record in records if record.error is None]
    docs = iter(nlp.pipe((record.text for record in good), batch_size=batch_size))
    done = 0
    try:
        for record in records:
            if record.error is not None:
                item: Tuple[Record, Optional[Any], Optional[str]] = (record, None, record.error)
            else:
                item = (record, next(docs), None)
            done += 1
            yield item
    except Exception:  # one bad document must not stop the job: find it below
        yield from _annotated_chunks(nlp, records[done:], batch_size)


def _annotated_chunks(nlp: Any, records: Sequence[Record],
                      batch_size: int) -> Iterator[Tuple[Record, Optional[Any], Optional[str]]]:
    """`annotated_docs` by chunks of `batch_size` good records, each its own `nlp.pipe`."""
    chunk: List[Record] = []
    n_good = 0
    for record in records:
        chunk.append(record)
        n_good += record.error is None
        if n_good == batch_size:
            yield from _annotate_chunk(nlp, chunk, batch_size)
            chunk, n_good = [], 0
    if chunk:
        yield from _annotate_chunk(nlp, chunk, batch_size)


def _annotate_chunk(nlp: Any, chunk: List[Record],
                    batch_size: int) -> Iterator[Tuple[Record, Optional[Any], Optional[str]]]:
    good = [record for record in chunk if record.error is None]
    try:
        docs = list(nlp.pipe([r.text for r in good], batch_size=batch_size)) if good else []
    except Exception:  # one bad document must not stop the job: find it below
        docs = []
    by_row: Dict[int, Any] = {r.row: doc for r, doc in zip(good, docs)} if len(docs) == len(good) else {}
    for record in chunk:
        if record.error is not None:
            yield record, None, record.error
        elif by_row:
            yield record, by_row[record.row], None
        else:
            try:
                doc = nlp(record.text)
            except Exception as err:  # reported with the document's row; the job goes on
                yield record, None, f"row {record.row}: {type(err).__name__}: {err}"
            else:
                yield record, doc, None


def annotate_records(nlp: Any, records: Sequence[Record], batch_size: int) -> List[Row]:
    """The output rows of `records`, in order, as dicts (see `annotated_docs`)."""
    return [doc_row(record, doc) if error is None else error_row(record, error)
            for record, doc, error in annotated_docs(nlp, records, batch_size)]


def freeze_loaded_heap() -> bool:
    """Move every object alive now out of reach of Python's cyclic garbage collector
    (`gc.freeze()`, after a `gc.collect()` so that no garbage is kept), unless something
    in this process froze objects already (it manages the collector itself). RETURNS
    (bool): whether this call froze them (`gc.unfreeze()` hands them back)."""
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


class ShardAnnotator:
    """Loads the pipeline once; turns one shard description into that shard's output.
    Used as is by the local engine and as the Ray actor class.

    freeze_heap (bool): once the pipeline is loaded, move every object alive then (the
    pipeline's, spaCy's, torch's: about 230k) out of reach of Python's cyclic garbage
    collector with `gc.freeze()`, until `close()`. Every full collection would otherwise
    traverse them all again (about 0.14 s each, a few every 10k documents: 5-10% of a
    job), although they live as long as the job. Objects frozen are still freed when
    their last reference goes; only cycles among them wait for `close()`. Nothing is
    frozen when something in this process froze objects already (it manages the
    collector itself)."""

    def __init__(self, *, model: str, input_path: str, input_format: str, text_field: str, id_field: str,
                 batch_size: int, output_format: str, use_gpu: bool = False, freeze_heap: bool = False) -> None:
        import spacy

        began = time.perf_counter()
        if use_gpu:
            spacy.require_gpu()
        self.nlp = spacy.load(model)
        self.froze_heap = freeze_heap and freeze_loaded_heap()
        self.load_seconds = time.perf_counter() - began
        self.input_path = Path(input_path)
        self.input_format = input_format
        self.text_field = text_field
        self.id_field = id_field
        self.batch_size = batch_size
        self.output_format = output_format

    def ready(self) -> float:
        """The seconds the pipeline took to load (Ray: answered once the actor is up)."""
        return self.load_seconds

    def close(self) -> None:
        """Hand the objects frozen at load back to the garbage collector."""
        if self.froze_heap:
            gc.unfreeze()
            self.froze_heap = False

    def shard_output(self, shard: Shard) -> ShardOutput:
        records = read_shard(self.input_path, self.input_format, shard, text_field=self.text_field,
                             id_field=self.id_field)
        columns = ShardColumns()
        for record, doc, error in annotated_docs(self.nlp, records, self.batch_size):
            if error is None:
                columns.add_doc(record, doc)
            else:
                columns.add_error(record, error)
        return ShardOutput(shard.number, columns.encode(self.output_format), len(columns), tuple(columns.errors()))


def run_local(annotator_kwargs: Dict[str, Any], shards: Sequence[Shard], on_shard: OnShard) -> float:
    """Annotate `shards` with `nlp.pipe` in this process. RETURNS (float): the
    `time.perf_counter()` at which the pipeline was loaded."""
    annotator = ShardAnnotator(**annotator_kwargs, freeze_heap=True)
    ready_at = time.perf_counter()
    try:
        for shard in shards:
            on_shard(annotator.shard_output(shard))
    finally:
        annotator.close()
    return ready_at


def local_ray_options(num_cpus: int, object_store_mb: int) -> Dict[str, Any]:
    """The `ray.init` settings of the local Ray that `run_ray` starts (also used by the
    benchmarks and tests, so that they measure the same Ray): loopback, no dashboard,
    `num_cpus` CPUs, an object store of `object_store_mb` MB, no worker logs on the
    terminal, and workers at the driver's priority. Ray starts its workers 15 nice levels
    below the raylet by default (`worker_niceness`) to keep drivers responsive; here the
    actors do all of the work while the driver waits, and on a machine shared with other
    jobs those actors were starved behind every other process (an actor at nice 19 beside
    `--engine local` at nice 5 under the same load)."""
    return {"num_cpus": num_cpus, "object_store_memory": object_store_mb << 20, "include_dashboard": False,
            "_node_ip_address": "127.0.0.1", "logging_level": logging.WARNING, "log_to_driver": False,
            "_system_config": {"worker_niceness": 0}}


# shards queued on a Ray actor at a time (see run_ray)
SHARDS_IN_FLIGHT = 2


def shards_to_queue(in_flight: int, n_pending: int, n_actors: int) -> int:
    """How many of the `n_pending` shards to hand now to a loaded actor that holds
    `in_flight`: up to SHARDS_IN_FLIGHT while every actor can still get one more
    (`n_pending >= n_actors`), so that an actor never waits for the driver between
    shards; up to one after that, so that the last shards go to whichever actor is free
    instead of waiting in another actor's queue."""
    limit = SHARDS_IN_FLIGHT if n_pending >= n_actors else 1
    return max(0, min(n_pending, limit - in_flight))


def run_ray(annotator_kwargs: Dict[str, Any], shards: Sequence[Shard], on_shard: OnShard, *, num_actors: int,
            num_gpus: float = 0.0, address: Optional[str] = None, num_cpus: Optional[int] = None,
            object_store_mb: int = 512) -> float:
    """Annotate `shards` with `num_actors` Ray actors, each loading the pipeline once and
    annotating one shard per call; an actor holds up to SHARDS_IN_FLIGHT shards (the one
    it annotates and the next, so that it never waits for the driver) while there are
    shards for every actor, then one at a time (`shards_to_queue`), and gets more as it
    hands them back, so at the end a slow actor keeps at most one queued shard from the
    others. Starts a local Ray (`local_ray_options`) unless Ray is running in this
    process or `address` names a cluster to join; stops only a Ray it started. The
    driver writes the shards, so the output folder need not be shared with a cluster;
    the input file must be readable at the same path on every node.
    RETURNS (float): the `time.perf_counter()` at which every actor had loaded the pipeline."""
    try:
        import ray
    except ImportError as err:
        raise SparseExpertError(Errors.E265.format(reason=err)) from None
    if num_actors < 1:
        raise SparseExpertError(Errors.E267.format(name="num_actors", value=num_actors, reason="must be >= 1"))
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(**local_ray_options(num_cpus or num_actors, object_store_mb))
        started = True
    actors: List[Any] = []
    try:
        # no more actors than shards: each one loads the pipeline, which costs seconds
        remote = ray.remote(num_cpus=1, num_gpus=num_gpus or 0, max_restarts=0)(ShardAnnotator)
        actors = [remote.remote(**annotator_kwargs, use_gpu=num_gpus > 0, freeze_heap=True)
                  for _ in range(min(num_actors, len(shards)))]
        pending = deque(shards)
        running: Dict[Any, Any] = {actor.ready.remote(): actor for actor in actors}
        in_flight: Dict[Any, int] = {actor: 0 for actor in actors}
        n_loading = len(actors)
        ready_at = time.perf_counter()
        try:
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                actor = running.pop(ref)
                result = ray.get(ref)
                if isinstance(result, ShardOutput):
                    in_flight[actor] -= 1
                # before this shard is written, so that the actor's next one is already
                # waiting on it (Ray runs an actor's calls in the order they were made)
                for _ in range(shards_to_queue(in_flight[actor], len(pending), len(actors))):
                    running[actor.shard_output.remote(pending.popleft())] = actor
                    in_flight[actor] += 1
                if isinstance(result, ShardOutput):
                    on_shard(result)
                else:
                    n_loading -= 1
                    if not n_loading:
                        ready_at = time.perf_counter()
        except SparseExpertError:
            raise
        except Exception as err:  # Ray wraps actor failures (the model did not load, ...)
            raise SparseExpertError(Errors.E268.format(reason=f"{type(err).__name__}: {err}")) from err
        return ready_at
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


__all__ = ["SHARDS_IN_FLIGHT", "ShardAnnotator", "ShardOutput", "annotate_records", "annotated_docs", "doc_row",
           "error_row", "freeze_loaded_heap", "local_ray_options", "run_local", "run_ray", "shards_to_queue"]
