"""Batch annotation of a corpus (`sparse-expert annotate`): JSONL or Parquet in, sharded
Parquet or JSONL out, with `nlp.pipe` in one process or Ray actors.

reader.py   the input's shard plan and the documents of one shard
rows.py     annotated docs -> a shard's rows, as columns -> the shard file's bytes
engines.py  a shard -> its file's bytes, by nlp.pipe here or in Ray actors
shards.py   the output folder: manifest, lock, atomic shard files
run.py      `annotate`: plan, skip finished shards, run an engine, progress
"""
from __future__ import annotations

from .run import AnnotateSummary, annotate
from .shards import read_output

__all__ = ["AnnotateSummary", "annotate", "read_output"]
