"""What an import or a distillation may write to, and what it may replace.

An output is refused (and left byte-identical) when it is a symbolic link, when it is,
contains or lies inside one of the command's inputs, or when it exists and is neither
empty nor provably a directory this package wrote: for `kb import`, nothing but the KB
files with the KB_FORMAT marker in meta.json; distillation outputs carry their own
manifest (`distill/pipelines.py`). The checks run before any work and again under the
lock right before the swap (`storage.replace_dir_atomically`).
"""
from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import Errors, KBImportError, SparseExpertError
from .storage import KB_FORMAT, META_FILE, is_kb_entry

_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as meta.json must not block the open
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def check_output_target(output: Path, inputs: Iterable[tuple[str, str | Path | None]],
                        error: type[SparseExpertError] = KBImportError) -> None:
    """Refuse an `output` that is a symlink (E080) or that is, contains or lies inside one
    of `inputs`, given as (role, path) (E082). Paths are compared after resolving links."""
    if output.is_symlink():
        raise error(Errors.E080.format(path=output, target=os.readlink(output)))
    real = Path(os.path.realpath(output))
    for role, source in inputs:
        if source is None:
            continue
        src = Path(os.path.realpath(source))
        relation = "is" if src == real else "contains" if real in src.parents else \
            "lies inside" if src in real.parents else None
        if relation is not None:
            raise error(Errors.E082.format(path=output, relation=relation, role=role, source=source))


def existing_entries(path: Path) -> tuple[str | None, list[str]]:
    """What stands at a would-be output: (None, []) when nothing or an empty directory
    does, ("it is not a directory", []) for anything but a directory (links are not
    followed), else (None, its sorted entry names)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, []
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory", []
    return None, sorted(os.listdir(path))


def kb_refusal(path: Path) -> str | None:
    """Why an import may not replace `path`; None when it may (missing, an empty
    directory, or nothing but the files of a KB whose meta.json has the KB_FORMAT marker)."""
    reason, names = existing_entries(path)
    if reason is not None or not names:
        return reason
    foreign = [name for name in names if not is_kb_entry(name)]  # a derived alias index may sit beside
    if foreign:
        return f"it holds {_some(foreign)}, which a KB does not have"
    odd = [name for name in names if not stat.S_ISREG(os.lstat(path / name).st_mode)]
    if odd:
        return f"its {_some(odd)} is not a regular file"
    meta = read_small_json(path / META_FILE) if META_FILE in names else None
    if not isinstance(meta, dict) or meta.get("format") != KB_FORMAT:
        return ("its meta.json does not carry the KB format marker (a spaCy pipeline, another "
                "program's folder, or a KB written by an older version)")
    return None


def check_kb_output(output: Path, sources: Iterable[str | Path] = ()) -> None:
    """Raise the coded error (E080, E082, E081) if an import may not write to `output`."""
    check_output_target(output, (("source", s) for s in sources))
    reason = kb_refusal(output)
    if reason is not None:
        raise KBImportError(Errors.E081.format(path=output, reason=reason, marker=KB_FORMAT))


def read_small_json(path: Path, limit: int = 16 << 20) -> Any:
    """The JSON value of the regular file `path`, or None when it is missing, not a
    regular file, larger than `limit` bytes or not JSON."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return json.loads(fh.read())
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def _some(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


__all__ = ["check_kb_output", "check_output_target", "existing_entries", "kb_refusal", "read_small_json"]
