"""On-disk layout of a compiled KB and the atomic, locked replace of a KB directory.

A KB directory holds three files:

- ``meta.json``       format version, sources (with sha256), options, counts, timing
- ``tables.msgpack``  string tables (IRIs, labels, aliases, type and predicate IRIs)
- ``arrays.npz``      numeric arrays (CSR index arrays, priors, graph features); read
                      with ``allow_pickle=False``, so a tampered file cannot run code

Nothing here is pickled. ``to_bytes`` packs the same three parts into one msgpack blob.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from ..errors import Errors, KBFormatError, KBImportError

FORMAT_VERSION = 1
META_FILE = "meta.json"
TABLES_FILE = "tables.msgpack"
ARRAYS_FILE = "arrays.npz"
KB_FILES = (META_FILE, TABLES_FILE, ARRAYS_FILE)

Tables = dict[str, list[str]]
Arrays = dict[str, np.ndarray]


# --- serialisation of the three parts ---------------------------------------------------


def write_parts(path: Path, meta: Mapping[str, Any], tables: Tables, arrays: Arrays) -> None:
    """Write the three KB files into an existing directory `path`."""
    (path / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
    (path / TABLES_FILE).write_bytes(msgpack.packb(tables, use_bin_type=True))
    with (path / ARRAYS_FILE).open("wb") as fh:
        np.savez(fh, **arrays)


def read_parts(path: Path) -> tuple[dict[str, Any], Tables, Arrays]:
    """Read and check the three KB files of directory `path`. Raises KBFormatError."""
    path = Path(path)
    if not path.is_dir():
        raise KBFormatError(Errors.E009.format(path=path, reason="no such directory"))
    missing = [name for name in KB_FILES if not (path / name).is_file()]
    if missing:
        raise KBFormatError(Errors.E009.format(path=path, reason=f"missing {', '.join(missing)}"))
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf8"))
        check_version(meta, path)
        tables = msgpack.unpackb((path / TABLES_FILE).read_bytes(), raw=False)
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except KBFormatError:
        raise
    except (ValueError, OSError, msgpack.ExtraData, msgpack.FormatError, KeyError) as err:
        raise KBFormatError(Errors.E009.format(path=path, reason=f"unreadable file ({err})")) from err
    return meta, tables, arrays


def check_version(meta: Mapping[str, Any], path: Path | str) -> None:
    found = meta.get("format_version") if isinstance(meta, Mapping) else None
    if found != FORMAT_VERSION:
        raise KBFormatError(Errors.E010.format(path=path, found=found, expected=FORMAT_VERSION))


def _array_to_msg(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}


def _array_from_msg(msg: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype(msg["dtype"])
    if dtype.hasobject:
        raise ValueError(f"object arrays are not allowed (dtype {dtype})")
    return np.frombuffer(msg["data"], dtype=dtype).reshape(msg["shape"]).copy()


def parts_to_bytes(meta: Mapping[str, Any], tables: Tables, arrays: Arrays) -> bytes:
    msg = {
        "meta": json.dumps(meta, ensure_ascii=False),
        "tables": tables,
        "arrays": {name: _array_to_msg(value) for name, value in arrays.items()},
    }
    return msgpack.packb(msg, use_bin_type=True)


def parts_from_bytes(data: bytes) -> tuple[dict[str, Any], Tables, Arrays]:
    try:
        msg = msgpack.unpackb(data, raw=False)
        meta = json.loads(msg["meta"])
        check_version(meta, "<bytes>")
        arrays = {name: _array_from_msg(value) for name, value in msg["arrays"].items()}
        return meta, msg["tables"], arrays
    except KBFormatError:
        raise
    except (ValueError, TypeError, KeyError, msgpack.ExtraData, msgpack.FormatError) as err:
        raise KBFormatError(Errors.E009.format(path="<bytes>", reason=f"not a serialised KB ({err})")) from err


# --- atomic, locked replacement of a directory -------------------------------------------


@contextlib.contextmanager
def import_lock(output: Path) -> Iterator[Path]:
    """Hold an exclusive lock for imports into `output` (a `.NAME.lock` file beside it).

    A second import into the same directory fails at once with E012 instead of waiting,
    so two jobs never interleave their renames. The lock is an `flock`, released by the
    kernel if the process dies, so a crash leaves no stale lock behind.
    """
    lock_path = output.parent / f".{output.name}.lock"
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise KBImportError(Errors.E012.format(path=output, lock=lock_path)) from err
            raise
        # The previous holder may have unlinked the file between our open and flock:
        # then we locked an orphan inode and must retry on the new file.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield lock_path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def looks_like_kb(path: Path) -> bool:
    return (path / META_FILE).is_file()


def replace_dir_atomically(output: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a fresh directory beside `output`, then swap it into place.

    If `write` fails, `output` is untouched and the temporary directory is removed. An
    existing KB at `output` is renamed aside, the new one renamed in, and only then the
    old one deleted; if the second rename fails the old one is put back.
    """
    if output.exists() and not output.is_dir():
        raise KBImportError(Errors.E014.format(path=output, reason="it is a file"))
    if output.is_dir() and any(output.iterdir()) and not looks_like_kb(output):
        raise KBImportError(Errors.E014.format(path=output, reason="it is a non-empty directory without meta.json"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; a KB is a normal directory
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
        os.rmdir(old)
        os.rename(output, old)
    try:
        os.rename(tmp, output)
    except BaseException:
        if old is not None:
            os.rename(old, output)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
