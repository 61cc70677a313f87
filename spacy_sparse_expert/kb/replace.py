"""Atomic, locked replacement of an output directory: a KB (``storage.py``), an Oxigraph
store (``oxigraph_store.py``), an exported spaCy KB or a distilled pipeline.

The new directory is written to a temporary directory beside the output and swapped in
with one ``renameat2(RENAME_EXCHANGE)`` (Linux; elsewhere two renames, a window that
`recover` closes on the next write and that readers wait out). Whatever a killed write
left behind is removed by the next one into the same directory, under the same lock.
What may be replaced is decided by the caller's check (``outputs.py``).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import Errors, KBImportError, SparseExpertError

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


def _stale_name(output: Path) -> re.Pattern[str]:
    # mkdtemp's 8-character suffix: `.kb.tmp-abc` (an output's own name) never matches.
    return re.compile(rf"\.{re.escape(output.name)}\.(tmp|old)-[A-Za-z0-9_]{{8}}")


def recover(output: Path, *, is_own: Callable[[Path], bool]) -> None:
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
