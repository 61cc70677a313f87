"""The output of `sparse-expert annotate`: a folder of shard files, each written atomically.

    OUTPUT/_annotate.json        what the run was (input sha256, model fingerprint, fields,
                                 shard size, format): a re-run resumes only with the same
    OUTPUT/part-00000.parquet    one file per input shard, rows in input order
    OUTPUT/.annotate.lock        held while a run writes (one run per folder)

A shard is written to a temporary file beside its final name and renamed into place
(`os.replace`), so a shard file exists whole or not at all, whenever the process is
killed; a re-run skips the shards that exist and removes temporaries a killed run left.
Names starting with "_" or "." are skipped by pyarrow and pandas, so
``pandas.read_parquet(OUTPUT)`` reads the shards as one table.

The rows of a shard and the bytes of its file are made in rows.py, where the documents
were annotated (a Ray actor or the local process); this module only writes those bytes.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, List, Mapping

from filelock import FileLock, Timeout

from ..errors import Errors, SparseExpertError
from .reader import parquet_module
from .rows import Row

MANIFEST = "_annotate.json"
LOCK = ".annotate.lock"
MARKER = "spacy-sparse-expert.annotate"
OUTPUT_FORMATS = ("parquet", "jsonl")
_PART = re.compile(r"part-(\d{5,})\.(parquet|jsonl)")
_TMP = re.compile(r"\.part-\d{5,}\.(parquet|jsonl)\.tmp-[A-Za-z0-9_]+")

def shard_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}.{fmt}"


class OutputDir:
    """The output folder of one run: checked, locked, and written one shard at a time.

    path (Path): the folder (created if missing).
    settings (Mapping): what makes two runs' shards the same; stored in the manifest and
        compared on a re-run (E263 on a difference).
    """

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = dict(settings)
        self.format = str(settings["output_format"])
        if self.format not in OUTPUT_FORMATS:
            raise SparseExpertError(Errors.E267.format(name="output_format", value=self.format,
                                                       reason=f"use one of {', '.join(OUTPUT_FORMATS)}"))
        if self.format == "parquet":
            parquet_module("output")  # before any document is annotated

    @contextlib.contextmanager
    def open(self) -> Iterator["OutputDir"]:
        """Check the folder is ours, lock it, write or compare the manifest, remove the
        temporaries of a killed run."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SparseExpertError(Errors.E266.format(shard="-", path=self.path, reason=err.strerror or err)) from None
        if self.path.is_symlink() or not self.path.is_dir():
            raise SparseExpertError(Errors.E262.format(path=self.path, files="not a folder"))
        self._check_ours()
        lock = FileLock(str(self.path / LOCK))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise SparseExpertError(Errors.E264.format(path=self.path, lock=self.path / LOCK)) from None
        try:
            for entry in os.listdir(self.path):
                if _TMP.fullmatch(entry):
                    with contextlib.suppress(OSError):
                        os.unlink(self.path / entry)
            self._write_or_compare_manifest()
            yield self
        finally:
            lock.release()

    def _check_ours(self) -> None:
        entries = os.listdir(self.path)
        foreign = [e for e in entries if e not in (MANIFEST, LOCK) and not _PART.fullmatch(e) and not _TMP.fullmatch(e)]
        if entries and MANIFEST not in entries and any(_PART.fullmatch(e) for e in entries):
            foreign.append("shards without " + MANIFEST)
        if foreign:
            raise SparseExpertError(Errors.E262.format(path=self.path, files=", ".join(sorted(foreign)[:5])))

    def _write_or_compare_manifest(self) -> None:
        manifest = self.path / MANIFEST
        wanted = {"format": MARKER, "version": 1, **self.settings}
        if manifest.exists():
            try:
                found = json.loads(manifest.read_text(encoding="utf8"))
            except (OSError, ValueError) as err:
                raise SparseExpertError(Errors.E262.format(path=self.path, files=f"{MANIFEST} ({err})")) from None
            if not isinstance(found, dict) or found.get("format") != MARKER:
                raise SparseExpertError(Errors.E262.format(path=self.path, files=MANIFEST))
            for key, value in wanted.items():
                if found.get(key) != value:
                    raise SparseExpertError(Errors.E263.format(path=self.path, key=key, old=found.get(key),
                                                               new=value))
            return
        self._atomic_write(manifest, lambda fh: fh.write(json.dumps(wanted, indent=2).encode("utf8") + b"\n"),
                           shard="manifest")

    def done(self, index: int) -> bool:
        """Whether shard `index` was written (by this run or an earlier one)."""
        return (self.path / shard_name(index, self.format)).is_file()

    def write_shard(self, index: int, data: bytes) -> Path:
        """Write shard `index` (its file's bytes, from rows.ShardColumns.encode)
        atomically; returns the shard's path."""
        target = self.path / shard_name(index, self.format)
        self._atomic_write(target, lambda fh: fh.write(data), shard=index)
        return target

    def _atomic_write(self, target: Path, write: Any, *, shard: Any) -> None:
        # temporary file beside the target, fsync, rename: a reader (or a re-run) sees the
        # whole shard or none, even after SIGKILL or a power cut
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=self.path)
        except OSError as err:
            raise SparseExpertError(Errors.E266.format(shard=shard, path=target, reason=err.strerror or err)) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise SparseExpertError(Errors.E266.format(shard=shard, path=target, reason=err.strerror or err)) from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def read_output(path: Path) -> List[Row]:
    """All rows of an output folder, in input order, as plain dicts (cats as a dict)."""
    path = Path(path)
    rows: List[Row] = []
    for entry in sorted(os.listdir(path)):
        match = _PART.fullmatch(entry)
        if not match:
            continue
        if match.group(2) == "jsonl":
            with (path / entry).open(encoding="utf8") as fh:
                rows.extend(json.loads(line) for line in fh if line.strip())
        else:
            import pyarrow.parquet as pq

            for row in pq.read_table(path / entry).to_pylist():
                row["cats"] = dict(row["cats"]) if row["cats"] is not None else None
                rows.append(row)
    rows.sort(key=lambda r: r["row"])
    return rows


__all__ = ["MANIFEST", "OUTPUT_FORMATS", "OutputDir", "Row", "read_output", "shard_name"]
