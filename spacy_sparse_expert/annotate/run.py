"""`annotate`: plan the input's shards, skip the finished ones, run an engine over the
rest and write each shard as it finishes, with a progress bar in documents/s."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ..errors import Errors, SparseExpertError
from ..kb.storage import KB_EXTRA_FILES
from .engines import ShardOutput, run_local, run_ray
from .reader import input_format, plan_input
from .shards import OutputDir

ENGINES = ("local", "ray")


class AnnotateSummary(NamedTuple):
    """What one run did. errors: (row, id, message) of the documents that failed in this
    run's shards, in input order (all of them are in the output's error column).
    seconds: from the engine's start to the last shard written; startup_seconds: the part
    of it until the pipeline was loaded (Ray: a Ray this run started, the actors' start
    and their loads; 0.0 when no engine ran)."""

    output: Path
    n_shards: int
    n_skipped: int
    n_docs: int
    seconds: float
    errors: Tuple[Tuple[int, Optional[str], str], ...]
    startup_seconds: float = 0.0

    @property
    def docs_per_second(self) -> float:
        return self.n_docs / self.seconds if self.seconds > 0 else 0.0

    @property
    def steady_docs_per_second(self) -> float:
        """Documents/s once the pipeline was loaded (every actor's, on Ray)."""
        busy = self.seconds - self.startup_seconds
        return self.n_docs / busy if busy > 0 else 0.0


def model_fingerprint(model: Path) -> str:
    """sha256 over the pipeline folder's file names, sizes and modification times: cheap
    (no file is read) and different after the pipeline is retrained or replaced. Derived
    caches that loading the pipeline may write (the KB's alias index) and hidden
    temporaries are left out: a first load must not make the resume check fail."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(model):
        dirs.sort()
        for name in sorted(files):
            if name in KB_EXTRA_FILES or name.startswith("."):
                continue
            stat = os.stat(os.path.join(root, name))
            rel = os.path.relpath(os.path.join(root, name), model)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode("utf8", "surrogateescape"))
    return digest.hexdigest()


def annotate(model: Path, input: Path, output: Path, *, engine: str = "local", text_field: str = "text",
             id_field: str = "id", input_format_name: Optional[str] = None, output_format: str = "parquet",
             shard_size: int = 1000, batch_size: int = 64, num_actors: int = 1, num_gpus: float = 0.0,
             address: Optional[str] = None, num_cpus: Optional[int] = None, object_store_mb: int = 512,
             progress: bool = False) -> AnnotateSummary:
    """Annotate the documents of `input` (JSONL or Parquet) with the pipeline at `model`
    and write them, in shards, to the folder `output`; a re-run with the same settings
    skips the shards already written.

    engine (str): "local" (nlp.pipe in this process) or "ray" (Ray actors).
    text_field / id_field (str): the input's text and id fields (the id may be missing).
    shard_size (int): input rows per shard (the unit of resuming).
    batch_size (int): documents per nlp.pipe batch.
    num_actors (int), num_gpus (float), address (str), num_cpus (int), object_store_mb (int):
        Ray settings; see engines.run_ray.
    progress (bool): show a progress bar on stderr.
    RETURNS (AnnotateSummary): shards and documents done, time taken, failed documents.
    """
    if engine not in ENGINES:
        raise SparseExpertError(Errors.E267.format(name="engine", value=engine, reason="use local or ray"))
    for name, value in (("batch_size", batch_size), ("num_actors", num_actors)):
        if value < 1:
            raise SparseExpertError(Errors.E267.format(name=name, value=value, reason="must be >= 1"))
    model, input, output = Path(model).resolve(), Path(input).resolve(), Path(output)
    if not (model / "config.cfg").is_file():
        raise SparseExpertError(Errors.E267.format(name="model", value=str(model), reason="not a spaCy pipeline "
                                                   "folder (no config.cfg); give a pipeline saved with nlp.to_disk"))
    fmt = input_format(input, input_format_name)
    plan = plan_input(input, fmt, shard_size, text_field=text_field, id_field=id_field)
    settings = {"input_sha256": plan.sha256, "input_format": fmt, "text_field": text_field, "id_field": id_field,
                "shard_size": shard_size, "output_format": output_format, "model": model_fingerprint(model)}
    errors: List[Tuple[int, Optional[str], str]] = []
    with OutputDir(output, settings).open() as out, _Progress(progress) as bar:
        pending = [shard for shard in plan.shards if not out.done(shard.number)]
        bar.start(sum(s.n_rows for s in pending))
        n_docs = 0
        began = time.perf_counter()

        def on_shard(shard: ShardOutput) -> None:
            nonlocal n_docs
            out.write_shard(shard.number, shard.data)
            errors.extend(shard.errors)
            n_docs += shard.n_rows
            bar.advance(plan.shards[shard.number].n_rows)

        kwargs: Dict[str, Any] = {"model": str(model), "input_path": str(input), "input_format": fmt,
                                  "text_field": text_field, "id_field": id_field, "batch_size": batch_size,
                                  "output_format": output_format}
        ready_at = began
        if not pending:
            pass  # all shards were written by earlier runs: start no engine
        elif engine == "local":
            ready_at = run_local(kwargs, pending, on_shard)
        else:
            ready_at = run_ray(kwargs, pending, on_shard, num_actors=num_actors, num_gpus=num_gpus, address=address,
                               num_cpus=num_cpus, object_store_mb=object_store_mb)
        seconds = time.perf_counter() - began
    return AnnotateSummary(output, len(plan.shards), len(plan.shards) - len(pending), n_docs, seconds,
                           tuple(sorted(errors)), ready_at - began)  # shards finish in any order


class _Progress:
    """A rich progress bar over input rows with a documents/s column; silent when off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("annotating"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]} docs/s"), TimeElapsedColumn(),
                                 console=Console(stderr=True))
            self._bar.__enter__()
        return self

    def start(self, total: int) -> None:
        if self._bar is not None:
            self._task = self._bar.add_task("annotate", total=total, rate="-")

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)
            speed = self._bar.tasks[0].speed
            self._bar.update(self._task, rate=f"{speed:,.0f}" if speed else "-")

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


__all__ = ["AnnotateSummary", "ENGINES", "annotate", "model_fingerprint"]
