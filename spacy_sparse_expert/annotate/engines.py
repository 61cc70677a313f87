"""The engines of `sparse-expert annotate`: the same shard function run by `nlp.pipe` in
this process (`run_local`) or by Ray Data actors that each load the pipeline once
(`run_ray`). Both hand finished shards to the same `on_shard` callback, which writes them,
so the two engines write identical files.

Ray is imported only inside `run_ray`: the package works without it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..errors import Errors, SparseExpertError
from ..features.annotations import SPANS_KEY
from .reader import Record, Shard, read_shard
from .shards import Row

# (shard index, rows) for each finished shard, in the order shards finish
OnShard = Callable[[int, List[Row]], None]


def doc_row(record: Record, doc: Any) -> Row:
    """The output row of an annotated document."""
    spans = doc.spans[SPANS_KEY] if SPANS_KEY in doc.spans else ()
    hits = doc._.rule_hits or () if doc.has_extension("rule_hits") else ()
    return {
        "row": record.row,
        "id": record.id,
        "cats": {label: float(score) for label, score in doc.cats.items()},
        "entities": [{"iri": s.kb_id_, "start": s.start, "end": s.end, "start_char": s.start_char,
                      "end_char": s.end_char, "label": s.label_, "text": s.text} for s in spans],
        "rule_hits": [{"rule": rule, "start": start, "end": end} for rule, start, end in hits],
        "error": None,
    }


def error_row(record: Record, error: str) -> Row:
    return {"row": record.row, "id": record.id, "cats": None, "entities": [], "rule_hits": [], "error": error}


def annotate_records(nlp: Any, records: Sequence[Record], batch_size: int) -> List[Row]:
    """Rows for `records`, in order. Texts go through `nlp.pipe` in batches of
    `batch_size`; when a batch fails, its documents are run one at a time so that only
    the failing ones become error rows (with the exception's type and message)."""
    rows: Dict[int, Row] = {}
    good = []
    for record in records:
        if record.error is not None:
            rows[record.row] = error_row(record, record.error)
        else:
            good.append(record)
    for start in range(0, len(good), batch_size):
        batch = good[start:start + batch_size]
        try:
            docs = list(nlp.pipe([r.text for r in batch], batch_size=batch_size))
        except Exception:  # one bad document must not stop the job: find it below
            docs = []
        if len(docs) == len(batch):
            for record, doc in zip(batch, docs):
                rows[record.row] = doc_row(record, doc)
            continue
        for record in batch:
            try:
                rows[record.row] = doc_row(record, nlp(record.text))
            except Exception as err:  # reported with the document's id; the job goes on
                rows[record.row] = error_row(record, f"row {record.row}: {type(err).__name__}: {err}")
    return [rows[r.row] for r in records]


class ShardAnnotator:
    """Loads the pipeline once; turns one shard description into that shard's rows.
    Used as is by the local engine and as the Ray Data actor class."""

    def __init__(self, *, model: str, input_path: str, input_format: str, text_field: str, id_field: str,
                 batch_size: int, use_gpu: bool = False) -> None:
        import spacy

        if use_gpu:
            spacy.require_gpu()
        self.nlp = spacy.load(model)
        self.input_path = Path(input_path)
        self.input_format = input_format
        self.text_field = text_field
        self.id_field = id_field
        self.batch_size = batch_size

    def shard_rows(self, shard: Shard) -> List[Row]:
        records = read_shard(self.input_path, self.input_format, shard, text_field=self.text_field,
                             id_field=self.id_field)
        return annotate_records(self.nlp, records, self.batch_size)

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Ray Data: a batch of shard descriptions -> one row per shard, its rows msgpacked
        (one shard stays one row, however Ray Data cuts blocks; msgpack keeps floats exact)."""
        import msgpack
        import numpy as np

        payloads = []
        for values in zip(*(batch[name] for name in Shard._fields)):
            shard = Shard(*(int(v) for v in values))
            payloads.append(msgpack.packb(self.shard_rows(shard), use_bin_type=True))
        return {"shard": np.asarray(batch["number"]), "rows": np.array(payloads, dtype=object)}


def run_local(annotator_kwargs: Dict[str, Any], shards: Sequence[Shard], on_shard: OnShard) -> None:
    """Annotate `shards` with `nlp.pipe` in this process."""
    annotator = ShardAnnotator(**annotator_kwargs)
    for shard in shards:
        on_shard(shard.number, annotator.shard_rows(shard))


# Ray Data's own progress bars and statistics, off while `run_ray` runs (restored after)
_QUIET_DATA_CONTEXT = {"enable_progress_bars": False, "enable_operator_progress_bars": False,
                       "enable_auto_log_stats": False}


def run_ray(annotator_kwargs: Dict[str, Any], shards: Sequence[Shard], on_shard: OnShard, *, num_actors: int,
            num_gpus: float = 0.0, address: Optional[str] = None, num_cpus: Optional[int] = None,
            object_store_mb: int = 512) -> None:
    """Annotate `shards` with Ray Data: `num_actors` actors, each loading the pipeline
    once, one shard per call. Starts a local Ray (loopback, no dashboard, `num_cpus`
    CPUs, a bounded object store) unless Ray is running in this process or `address`
    names a cluster to join; stops only a Ray it started. The driver writes the shards,
    so the output folder need not be shared with a cluster; the input file must be
    readable at the same path on every node."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise SparseExpertError(Errors.E265.format(reason=err)) from None
    if num_actors < 1:
        raise SparseExpertError(Errors.E267.format(name="num_actors", value=num_actors, reason="must be >= 1"))
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or num_actors, object_store_memory=object_store_mb << 20,
                     include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING,
                     log_to_driver=False)
        started = True
    # Ray Data logs each execution's plan at INFO on the terminal; our bar says the progress
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    saved = {name: getattr(ctx, name) for name in _QUIET_DATA_CONTEXT}
    try:
        for name, value in _QUIET_DATA_CONTEXT.items():  # ours shows documents/s
            setattr(ctx, name, value)
        items = [shard._asdict() for shard in shards]
        # one block per shard, so every actor gets work from the start
        descriptions = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        ds = descriptions.map_batches(ShardAnnotator, fn_constructor_kwargs={**annotator_kwargs, "use_gpu": num_gpus > 0},
                            batch_size=1, compute=ray.data.ActorPoolStrategy(size=num_actors),
                            num_cpus=1, num_gpus=num_gpus or None, batch_format="numpy")
        import msgpack

        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for index, payload in zip(batch["shard"], batch["rows"]):
                    on_shard(int(index), msgpack.unpackb(payload, raw=False))
        except SparseExpertError:
            raise
        except Exception as err:  # Ray wraps actor failures (the model did not load, ...)
            raise SparseExpertError(Errors.E268.format(reason=f"{type(err).__name__}: {err}")) from err
    finally:
        data_logger.setLevel(level)
        for name, value in saved.items():
            setattr(ctx, name, value)
        if started:
            ray.shutdown()


__all__ = ["ShardAnnotator", "annotate_records", "doc_row", "error_row", "run_local", "run_ray"]
