"""The input of `sparse-expert annotate`: a plan of shards over a JSONL or Parquet file,
and the documents of one shard.

A shard is a fixed run of `shard_size` input rows (JSONL: lines, blank ones included;
Parquet: table rows), so shard i always holds the same documents and a re-run can skip
the shards an earlier run finished. Planning reads the file once (sha256 for the resume
check; JSONL: the byte offset of every shard's first line); reading a shard seeks to it,
so a Ray actor reads only its own shard and no document passes through the driver.

A record that cannot be annotated (a line that is not JSON, a text that is not a string,
an id that is neither a string nor an integer) becomes a `Record` with `error` set: it is
reported in the output with its row and id, and the job goes on.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator, List, NamedTuple, Optional, Tuple

from ..errors import Errors, SparseExpertError
from ..jsonl import MAX_LINE_BYTES, SKIP, JSONLineError, check_input_file, decode_json_line, show_value

FORMATS = ("jsonl", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_HASH_CHUNK = 1 << 20


class Record(NamedTuple):
    """One input document: row (0-based line or table row), id (str or None), text, or
    the reason it cannot be annotated (then text is None)."""

    row: int
    id: Optional[str]
    text: Optional[str]
    error: Optional[str] = None


class Shard(NamedTuple):
    """Shard `number`: rows [first_row, first_row + n_rows) of the input; JSONL: bytes
    [byte_start, byte_end)."""

    number: int
    first_row: int
    n_rows: int
    byte_start: int = 0
    byte_end: int = 0


class InputPlan(NamedTuple):
    path: Path
    format: str
    sha256: str
    n_rows: int
    shards: Tuple[Shard, ...]


def input_format(path: Path, given: Optional[str]) -> str:
    """The input format: `given` ("jsonl" / "parquet"), else from the file suffix."""
    if given is not None:
        if given not in FORMATS:
            raise SparseExpertError(Errors.E267.format(name="input_format", value=given,
                                                       reason=f"use one of {', '.join(FORMATS)}"))
        return given
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise SparseExpertError(Errors.E260.format(path=path, reason=f"unknown suffix {path.suffix!r}"))
    return found


def plan_input(path: Path, fmt: str, shard_size: int, *, text_field: str, id_field: str) -> InputPlan:
    """Read `path` once and cut it into shards of `shard_size` rows."""
    if shard_size < 1:
        raise SparseExpertError(Errors.E267.format(name="shard_size", value=shard_size, reason="must be >= 1"))
    check_input_file(path, Errors.E260.format(path=path, reason="no such file"), suffix=f".{fmt}")
    if fmt == "jsonl":
        return _plan_jsonl(path, shard_size)
    return _plan_parquet(path, shard_size, text_field=text_field, id_field=id_field)


def _plan_jsonl(path: Path, shard_size: int) -> InputPlan:
    digest = hashlib.sha256()
    starts: List[int] = []
    row = 0
    with path.open("rb") as fh:
        for offset, line in _lines(fh, 0, None):
            digest.update(line)
            if row % shard_size == 0:
                starts.append(offset)
            row += 1
        end = fh.tell()
    bounds = starts + [end]
    shards = tuple(Shard(i, i * shard_size, min(shard_size, row - i * shard_size), bounds[i], bounds[i + 1])
                   for i in range(len(starts)))
    return InputPlan(path, "jsonl", digest.hexdigest(), row, shards)


def parquet_module(what: str) -> Any:
    """pyarrow.parquet, or E269: the local engine with JSONL in and out needs no pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise SparseExpertError(Errors.E269.format(what=what, reason=err)) from None
    return pq


def _plan_parquet(path: Path, shard_size: int, *, text_field: str, id_field: str) -> InputPlan:
    pq = parquet_module("input")

    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise SparseExpertError(Errors.E260.format(path=path, reason=f"not a Parquet file ({err})")) from None
    columns = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if text_field not in columns:
        raise SparseExpertError(Errors.E261.format(path=path, field=text_field, columns=", ".join(columns)))
    n = meta.num_rows
    shards = tuple(Shard(i, start, min(shard_size, n - start)) for i, start in enumerate(range(0, n, shard_size)))
    return InputPlan(path, "parquet", _sha256(path), n, shards)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _lines(fh: BinaryIO, start: int, end: Optional[int]) -> Iterator[Tuple[int, bytes]]:
    """(offset, raw line) from byte `start` to `end`. A line over MAX_LINE_BYTES is kept
    as its first MAX_LINE_BYTES + 1 bytes (the rest is skipped): enough to report it,
    and memory stays bounded for a file without newlines."""
    fh.seek(start)
    offset = start
    while end is None or offset < end:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        head = line
        while not line.endswith(b"\n"):  # an over-long line: skip to its end
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
        yield offset, head
        offset = fh.tell()


def read_shard(path: Path, fmt: str, shard: Shard, *, text_field: str, id_field: str) -> List[Record]:
    """The records of `shard` (blank JSONL lines give none)."""
    if fmt == "jsonl":
        return _read_jsonl_shard(path, shard, text_field=text_field, id_field=id_field)
    return _read_parquet_shard(path, shard, text_field=text_field, id_field=id_field)


def _read_jsonl_shard(path: Path, shard: Shard, *, text_field: str, id_field: str) -> List[Record]:
    records = []
    with path.open("rb") as fh:
        for row, (_, raw) in enumerate(_lines(fh, shard.byte_start, shard.byte_end), start=shard.first_row):
            if len(raw) > MAX_LINE_BYTES:
                records.append(Record(row, None, None, f"line {row + 1}: longer than {MAX_LINE_BYTES:,} bytes"))
                continue
            try:
                value = decode_json_line(raw, first_line=row == 0)
            except JSONLineError as err:
                where = f" (field {err.field!r})" if err.field else ""
                records.append(Record(row, None, None, f"line {row + 1}: {err.reason}{where}"))
                continue
            if value is SKIP:
                continue
            if not isinstance(value, dict):
                records.append(Record(row, None, None, f"line {row + 1}: not a JSON object: {show_value(value)}"))
                continue
            records.append(make_record(row, value.get(id_field), value.get(text_field, _MISSING),
                                       text_field=text_field, id_field=id_field))
    return records


def _read_parquet_shard(path: Path, shard: Shard, *, text_field: str, id_field: str) -> List[Record]:
    pq = parquet_module("input")

    pf = pq.ParquetFile(path)
    columns = [text_field] + ([id_field] if id_field in pf.schema_arrow.names else [])
    # read only the row groups that overlap the shard, then cut the shard out of them
    wanted: List[int] = []
    skip = first = 0
    end = shard.first_row + shard.n_rows
    for group in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        if first < end and first + n > shard.first_row:
            if not wanted:
                skip = first
            wanted.append(group)
        first += n
    table = pf.read_row_groups(wanted, columns=columns).slice(shard.first_row - skip, shard.n_rows)
    texts = table.column(text_field).to_pylist()
    ids = table.column(id_field).to_pylist() if id_field in table.column_names else [None] * len(texts)
    return [make_record(shard.first_row + i, id_, text, text_field=text_field, id_field=id_field)
            for i, (id_, text) in enumerate(zip(ids, texts))]


_MISSING: Any = object()


def make_record(row: int, raw_id: Any, text: Any, *, text_field: str, id_field: str) -> Record:
    """A Record with the id as a string (integers written in decimal), or the reason the
    document cannot be annotated."""
    if raw_id is None:
        doc_id = None
    elif isinstance(raw_id, str):
        doc_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        doc_id = str(raw_id)
    else:
        return Record(row, None, None, f"row {row}: {id_field!r} is {show_value(raw_id)}, not a string or integer")
    if text is _MISSING:
        return Record(row, doc_id, None, f"row {row}: no {text_field!r} field")
    if not isinstance(text, str):
        return Record(row, doc_id, None, f"row {row}: {text_field!r} is {show_value(text)}, not a string")
    return Record(row, doc_id, text)


__all__ = ["FORMATS", "InputPlan", "Record", "Shard", "input_format", "make_record", "plan_input", "read_shard"]
