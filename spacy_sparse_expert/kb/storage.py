"""On-disk layout of a compiled KB, consistent reads, and the atomic, locked replace of
an output directory (a KB, or a distilled pipeline).

A KB directory holds three files:

- ``meta.json``       format marker and version, sources (with sha256), options, counts
- ``tables.msgpack``  string tables (IRIs, labels, aliases, type and predicate IRIs)
- ``arrays.npz``      numeric arrays (CSR index arrays, priors, graph features); read
                      with ``allow_pickle=False``, so a tampered file cannot run code

It may also hold derived files, caches that text-side code rebuilds when missing or
stale: ``alias_index.npz`` (kb/alias_index.py), written by ``write_extra_arrays``.

Nothing here is pickled. ``to_bytes`` packs the same three parts into one msgpack blob.

Replacing a directory is atomic for readers and safe under SIGKILL at any point: the new
one is written to a temporary directory beside the output and swapped in with one
``renameat2(RENAME_EXCHANGE)`` (Linux; elsewhere two renames, a window that `recover`
closes on the next import and that readers wait out). Whatever a killed import left
behind is removed by the next import into the same directory, under the same lock.
`read_parts` opens the directory once and reads the three files relative to that handle,
starting again when the directory was swapped under it, so a reader sees exactly one KB.

Only what an import wrote may be replaced: an empty directory or a KB whose meta.json
carries ``"format": KB_FORMAT`` and that holds nothing but KB files. Never a symlink,
never a directory that is, contains or lies inside an input (`check_output_target`).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import stat
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
from filelock import FileLock, Timeout

from ..errors import Errors, KBFormatError, KBImportError, SparseExpertError

FORMAT_VERSION = 1
META_FILE = "meta.json"
TABLES_FILE = "tables.msgpack"
ARRAYS_FILE = "arrays.npz"
KB_FILES = (META_FILE, TABLES_FILE, ARRAYS_FILE)
# Derived files a KB folder may also hold (caches rebuilt when missing or stale, written
# with `write_extra_arrays`), and the prefix of their temporary files.
ALIAS_INDEX_FILE = "alias_index.npz"
KB_EXTRA_FILES = (ALIAS_INDEX_FILE,)
_EXTRA_TMP = re.compile(r"\.(" + "|".join(re.escape(n) for n in KB_EXTRA_FILES) + r")\.tmp-[A-Za-z0-9_]{8}")
# The marker `import_rdf` writes into meta.json: what makes a directory replaceable.
KB_FORMAT = "spacy-sparse-expert.kb"
READ_ATTEMPTS = 50

Tables = dict[str, list[str]]
Arrays = dict[str, np.ndarray]


# --- serialisation of the three parts ---------------------------------------------------


def write_parts(path: Path, meta: Mapping[str, Any], tables: Tables, arrays: Arrays) -> None:
    """Write the three KB files into an existing directory `path`."""
    (path / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
    (path / TABLES_FILE).write_bytes(msgpack.packb(tables, use_bin_type=True))
    with (path / ARRAYS_FILE).open("wb") as fh:
        np.savez(fh, **arrays)


# What reading damaged files raises: json, msgpack, numpy and zipfile (which reports an
# unknown compression method as NotImplementedError and an "encrypted" flag as RuntimeError).
_DAMAGED = (ValueError, TypeError, KeyError, OSError, EOFError, MemoryError, OverflowError, RuntimeError,
            NotImplementedError, struct.error, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile,
            msgpack.UnpackException)


class _Replaced(Exception):
    """The directory was swapped for another one while it was being read."""


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as a KB file must not block the open


def read_parts(path: Path) -> tuple[dict[str, Any], Tables, Arrays]:
    """Read and check the three KB files of directory `path`, all from the same KB even
    while imports replace it. Raises KBFormatError."""
    path = Path(path)
    for attempt in range(READ_ATTEMPTS):
        try:
            return _read_parts_once(path)
        except _Replaced:
            # A swap takes microseconds; the back-off only matters for imports in a loop.
            time.sleep(min(0.0005 * 2 ** attempt, 0.05))
    raise KBFormatError(Errors.E083.format(path=path, attempts=READ_ATTEMPTS))


def _read_parts_once(path: Path) -> tuple[dict[str, Any], Tables, Arrays]:
    try:
        dir_fd = os.open(path, os.O_RDONLY | _O_DIRECTORY)
    except FileNotFoundError:
        if _swap_in_progress(path):
            raise _Replaced from None
        raise KBFormatError(Errors.E009.format(path=path, reason="no such directory")) from None
    except NotADirectoryError:
        raise KBFormatError(Errors.E009.format(path=path, reason="no such directory")) from None
    fds: dict[str, int] = {}
    try:
        for name in KB_FILES:
            with contextlib.suppress(FileNotFoundError):
                fds[name] = os.open(name, os.O_RDONLY | _O_NONBLOCK, dir_fd=dir_fd)
        missing = [name for name in KB_FILES if name not in fds or not stat.S_ISREG(os.fstat(fds[name]).st_mode)]
        if missing:
            if _moved(dir_fd, path):
                raise _Replaced
            raise KBFormatError(Errors.E009.format(path=path, reason=f"missing {', '.join(missing)}"))
        try:
            meta = json.loads(_read_fd(fds[META_FILE]))
            check_version(meta, path)
            tables = msgpack.unpackb(_read_fd(fds[TABLES_FILE]), raw=False)
            with os.fdopen(fds[ARRAYS_FILE], "rb", closefd=False) as fh, np.load(fh, allow_pickle=False) as npz:
                _check_not_a_bomb(npz.zip)
                arrays = {name: npz[name] for name in npz.files}
        except KBFormatError:
            raise
        except _DAMAGED as err:
            if _moved(dir_fd, path):
                raise _Replaced from err
            raise KBFormatError(Errors.E009.format(path=path, reason=f"unreadable file ({err})")) from err
    finally:
        for fd in fds.values():
            os.close(fd)
        os.close(dir_fd)
    return meta, tables, arrays


def _read_fd(fd: int) -> bytes:
    with os.fdopen(fd, "rb", closefd=False) as fh:
        return fh.read()


def _moved(dir_fd: int, path: Path) -> bool:
    """Whether `path` no longer names the directory open as `dir_fd` (an import swapped it)."""
    try:
        now = os.stat(path)
    except OSError:
        return True
    opened = os.fstat(dir_fd)
    return (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino)


def _swap_in_progress(path: Path) -> bool:
    """Without RENAME_EXCHANGE the output is missing between two renames; the previous
    KB then waits beside it as `.NAME.old-*`."""
    pattern = _stale_name(path)
    try:
        return any(pattern.fullmatch(name) and ".old-" in name for name in os.listdir(path.parent))
    except OSError:
        return False


def _check_not_a_bomb(archive: zipfile.ZipFile) -> None:
    """`kb import` stores arrays uncompressed; a member that inflates a hundredfold to
    more than 64 MiB is a zip bomb planted in place of arrays.npz."""
    for info in archive.infolist():
        if info.file_size > max(100 * info.compress_size, 1 << 26):
            raise ValueError(f"{info.filename} would inflate to {info.file_size:,} bytes")


def is_kb_entry(name: str) -> bool:
    """Whether a folder entry named `name` belongs in a KB folder: its three files, a
    derived file, or a derived file's temporary (left by a write killed midway)."""
    return name in KB_FILES or name in KB_EXTRA_FILES or _EXTRA_TMP.fullmatch(name) is not None


def read_extra_arrays(path: Path, name: str) -> Arrays | None:
    """The arrays of derived file `name` in KB folder `path`, or None when it is missing
    or not a regular file. Raises ValueError (or another _DAMAGED error) when damaged."""
    try:
        fd = os.open(path / name, os.O_RDONLY | _O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh, np.load(fh, allow_pickle=False) as npz:
            _check_not_a_bomb(npz.zip)
            return {key: npz[key] for key in npz.files}
    except _DAMAGED as err:
        raise ValueError(f"{path / name}: {err}") from err
    finally:
        os.close(fd)


def write_extra_arrays(path: Path, name: str, arrays: Arrays) -> None:
    """Write derived file `name` into KB folder `path` atomically: a temporary file beside
    it, then one rename, so a reader sees the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=path)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a KB file is a normal file
        os.replace(tmp, path / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
    except _DAMAGED as err:
        raise KBFormatError(Errors.E009.format(path="<bytes>", reason=f"not a serialised KB ({err})")) from err


# --- atomic, locked replacement of a directory -------------------------------------------


# An output check: raises the coded error when a path may not be replaced (kb/outputs.py).
Refusal = Callable[[Path], None]
BusyError = Callable[[Path, Path], SparseExpertError]


def _import_busy(output: Path, lock: Path) -> SparseExpertError:
    return KBImportError(Errors.E012.format(path=output, lock=lock))


def output_path(output: str | Path) -> Path:
    """`output` made absolute with `..` resolved, so its name and parent are real ones."""
    return Path(os.path.abspath(output))


@contextlib.contextmanager
def import_lock(output: Path, *, busy: BusyError = _import_busy) -> Iterator[Path]:
    """Hold an exclusive lock for writes into `output` (a `.NAME.lock` file beside it).

    A second import into the same directory fails at once with E012 (or what `busy`
    returns) instead of waiting, so two jobs never interleave their renames. The lock is
    the `filelock` package's: an `flock` on POSIX and a byte-range lock on Windows, both
    released by the system if the process dies, so a crash leaves no stale lock behind.
    """
    lock_path = output.parent / f".{output.name}.lock"
    # thread_local=False: the lock belongs to this import, whichever thread releases it
    lock = FileLock(lock_path, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout as err:
        raise busy(output, lock_path) from err
    try:
        yield lock_path
    finally:
        # Unlinked while still held, so nothing is left beside the output. A contender that
        # opened the old file finds it unlinked once it locks it and does not take that lock
        # (filelock checks st_nlink), so it reports busy. Windows cannot unlink an open
        # file: there filelock removes it on release.
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.unlink(lock_path)
        lock.release()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def looks_like_kb(path: Path) -> bool:
    return (path / META_FILE).is_file()


def _stale_name(output: Path) -> re.Pattern[str]:
    # mkdtemp's 8-character suffix: `.kb.tmp-abc` (an output's own name) never matches.
    return re.compile(rf"\.{re.escape(output.name)}\.(tmp|old)-[A-Za-z0-9_]{{8}}")


def recover(output: Path, *, is_own: Callable[[Path], bool] = looks_like_kb) -> None:
    """Clean up after an import into `output` that was killed. Call under `import_lock`.

    If `output` is missing but a directory renamed aside (`.NAME.old-*`, `is_own`) exists,
    the kill came between the two renames of the fallback swap: it is put back. Then every
    leftover temporary directory of `output` is removed (a leftover link only unlinked).
    """
    stale = [p for p in output.parent.iterdir() if _stale_name(output).fullmatch(p.name)]
    if not output.exists() and not output.is_symlink():
        aside = sorted((p for p in stale if ".old-" in p.name and not p.is_symlink() and p.is_dir() and is_own(p)),
                       key=lambda p: p.stat().st_mtime)
        if aside:
            os.rename(aside[-1], output)
            stale.remove(aside[-1])
    for path in stale:
        if path.is_symlink():  # never followed: only the link goes
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2() -> Any:
    """glibc's renameat2, or None. `ctypes.CDLL(None)` (the running process's own symbols)
    exists only on POSIX; on Windows it raises TypeError, and musl or an old glibc has no
    renameat2: all of those take the two-rename fallback."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError, AttributeError):
        return None
    return getattr(libc, "renameat2", None)


def exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2 RENAME_EXCHANGE). RETURNS False
    where the system or file system cannot, and nothing was changed."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir_atomically(output: Path, write: Callable[[Path], None], *, check: Refusal) -> None:
    """Call `write(tmp)` on a fresh directory beside `output`, then swap it into place.

    `check(output)` raises when `output` may not be replaced; it runs before anything is
    written and again right before the swap. If `write` or the second check fails,
    `output` is untouched and the temporary directory is removed. An existing `output`
    is exchanged with the new one in one atomic step and then deleted; without
    RENAME_EXCHANGE it is renamed aside, the new one renamed in (the old one is put back
    if that fails) and only then the old one deleted.
    """
    check(output)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; an output is a normal directory
        write(tmp)
        check(output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if output.exists() and exchange(tmp, output):
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous KB
        return
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
