"""On-disk layout of a compiled KB, consistent reads, and the atomic, locked replace of
an output directory (a KB, or a distilled pipeline).

A KB directory of format 2 (what `kb import` and `KnowledgeBase.to_disk` write) holds:

- ``meta.json``            format marker and version, sources (with sha256), options,
                           counts, the rows of each string table, and ``content_sha256``
- ``strings.bin``          every string table (IRIs, labels, aliases, type and predicate
                           IRIs, descriptions) as UTF-8, concatenated
- ``strings.offsets.npy``  int64 offsets of each string in strings.bin
- ``<array>.npy``          one uncompressed numpy file per numeric array (CSR index
                           arrays, priors, graph features)

All but meta.json are memory-mapped when read: loading a KB reads meta.json and the
.npy headers, whatever the KB's size, and the pages of a table are read when a lookup
touches them (kb/strings.py decodes one string per access). ``content_sha256`` is the
sha256 of the data files as written (name and bytes, in `KB_FILES_V2` order): a pipeline
that refers to a KB by path checks it (pipeline/serialize.py).

Format 1 (still read; `to_disk(format_version=1)` writes it): ``meta.json``,
``tables.msgpack`` (string tables) and ``arrays.npz`` (numeric arrays), loaded whole.

Tables added since a format was first written (`OPTIONAL_TABLES`: the entity
descriptions) may be missing from a folder, of either format, or from bytes that an
older version wrote; the KB then has them blank, one empty string per row.

Either may also hold derived files: ``alias_index.npz`` (kb/alias_index.py), the aliases
tokenized for one tokenizer; `kb import` writes the one for spaCy's blank English
tokenizer, and text-side code writes another with `write_extra_arrays` when missing or
stale. A format-2 folder also holds ``entity_arrays.npz`` (kb/views.py), the per-entity
arrays the linker and featurizer read, derived from the KB's arrays once by `kb import`
and `to_disk` (`write_aligned_arrays`) instead of at every load. Derived files are .npz
archives of uncompressed members and are read in place: `map_npz` maps each member's
array from the file, copying nothing (np.load would read every member into memory).

Nothing here is pickled: numpy files are read with ``allow_pickle=False`` semantics (an
object dtype is refused), tables with msgpack or as UTF-8. ``to_bytes`` packs the parts
into one msgpack blob.

Replacing a directory is atomic for readers and safe under SIGKILL at any point
(``replace.py``, whose names this module re-exports for the KB's writers).
`read_parts` opens the directory once and opens every file relative to that handle
before reading any, starting again when the directory was swapped under it, so a reader
sees exactly one KB. Memory maps are made from those same file handles: the pages of a
KB that an import has since replaced stay readable (the files are unlinked, not
changed), so a loaded KB never mixes two imports. Files of a KB folder are never
rewritten in place (`to_disk` writes each beside and renames it over), which is what
keeps a mapped KB valid.

Only what an import wrote may be replaced: an empty directory or a KB whose meta.json
carries ``"format": KB_FORMAT`` and that holds nothing but KB files. Never a symlink,
never a directory that is, contains or lies inside an input (`check_output_target`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import struct
import tempfile
import time
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from ..errors import Errors, KBFormatError
from . import replace
from .npz_map import _map, _write_aligned_npz, map_npy, map_npz  # noqa: F401  (storage.map_npz)
# the atomic replacement of a directory, used by every writer of a KB folder
from .replace import BusyError, Refusal, exchange, import_lock, output_path, replace_dir_atomically  # noqa: F401
from .replace import _stale_name, _umask

FORMAT_VERSION = 2  # what `to_disk` and `kb import` write
READ_VERSIONS = (1, 2)
META_FILE = "meta.json"
# format 1
TABLES_FILE = "tables.msgpack"
ARRAYS_FILE = "arrays.npz"
KB_FILES_V1 = (META_FILE, TABLES_FILE, ARRAYS_FILE)
# format 2: the numeric arrays of a KB (ARRAY_DTYPES below), one .npy file each
STRINGS_FILE = "strings.bin"
OFFSETS_FILE = "strings.offsets.npy"
TABLE_NAMES = ("entities", "labels", "types", "type_labels", "predicates", "aliases", "alias_surfaces",
               "feature_names", "descriptions")
# Arrays every KB holds (name -> dtype); KnowledgeBase.__init__ checks presence and dtypes.
ARRAY_DTYPES: dict[str, type] = {
    "alias_indptr": np.int64,        # (n_aliases + 1,)
    "alias_entities": np.int32,      # (n_alias_links,)   candidate entity ids, prior desc
    "alias_priors": np.float32,      # (n_alias_links,)
    "type_indptr": np.int64,         # (n_entities + 1,)
    "type_ids": np.int32,            # (n_type_links,)    closure over rdfs:subClassOf
    "type_direct": np.bool_,         # (n_type_links,)    asserted, not inferred
    "relation_indptr": np.int64,     # (n_entities + 1,)
    "relation_predicates": np.int32, # (n_relations,)     outgoing edges, sorted
    "relation_objects": np.int32,    # (n_relations,)
    "graph_features": np.float32,    # (n_entities, n_features) raw values
}
ARRAY_NAMES = tuple(ARRAY_DTYPES)
# Tables older KB folders lack: read as blank (kb/strings.py `BlankStrings`), no error.
OPTIONAL_TABLES = ("descriptions",)
KB_FILES_V2 = (META_FILE, STRINGS_FILE, OFFSETS_FILE, *(f"{name}.npy" for name in ARRAY_NAMES))
KB_FILES = KB_FILES_V2  # the files of the format written now
FILES_BY_VERSION = {1: KB_FILES_V1, 2: KB_FILES_V2}
# Derived files a KB folder may also hold (caches rebuilt when missing or stale, written
# with `write_extra_arrays`), and the prefix of their temporary files.
ALIAS_INDEX_FILE = "alias_index.npz"
ENTITY_ARRAYS_FILE = "entity_arrays.npz"
KB_EXTRA_FILES = (ALIAS_INDEX_FILE, ENTITY_ARRAYS_FILE)
_ALL_FILES = tuple(dict.fromkeys((*KB_FILES_V1, *KB_FILES_V2, *KB_EXTRA_FILES)))
_EXTRA_TMP = re.compile(r"\.(" + "|".join(re.escape(n) for n in _ALL_FILES) + r")\.tmp-[A-Za-z0-9_]{8}")
# The marker `import_rdf` writes into meta.json: what makes a directory replaceable.
KB_FORMAT = "spacy-sparse-expert.kb"
READ_ATTEMPTS = 50

Tables = dict[str, Any]  # name -> list of str (format 1, bytes) or StringTable (format 2)
Arrays = dict[str, np.ndarray]


def array_file(name: str) -> str:
    """The file of array `name` in a format-2 KB folder."""
    return f"{name}.npy"


def data_file(name: str, version: int) -> str:
    """The file that holds array `name` in a KB folder of format `version` (for messages)."""
    return ARRAYS_FILE if version == 1 else array_file(name)


# --- writing ---------------------------------------------------------------------------


def write_parts(path: Path, meta: Mapping[str, Any], tables: Mapping[str, Sequence[str]], arrays: Arrays, *,
                version: int = FORMAT_VERSION) -> dict[str, Any]:
    """Write a KB into the existing directory `path` in format `version` (1 or 2).

    Every file is written beside its name and renamed over it, so a KB mapped from this
    folder keeps its pages, and meta.json comes last (it says which files are the KB).
    The files of the other format, if any, are removed afterwards.
    RETURNS (dict): the meta.json written (with format version, table rows and
    ``content_sha256`` for format 2).
    """
    if version not in FILES_BY_VERSION:
        raise ValueError(f"unknown KB format version {version!r}; known: {sorted(FILES_BY_VERSION)}")
    meta = {key: value for key, value in meta.items() if key not in ("tables", "content_sha256")}
    meta["format_version"] = version
    if version == 1:
        _write_atomically(path / TABLES_FILE, lambda fh: fh.write(msgpack.packb(
            {name: list(value) for name, value in tables.items()}, use_bin_type=True)))
        _write_atomically(path / ARRAYS_FILE, lambda fh: np.savez(fh, **arrays))
    else:
        from .strings import encode_tables

        blob, offsets, rows = encode_tables(dict(tables), TABLE_NAMES)
        content = hashlib.sha256()
        _write_atomically(path / STRINGS_FILE, lambda fh: fh.write(blob), content, STRINGS_FILE)
        _write_atomically(path / OFFSETS_FILE, lambda fh: np.lib.format.write_array(fh, offsets), content,
                          OFFSETS_FILE)
        for name in ARRAY_NAMES:
            array = np.ascontiguousarray(arrays[name])
            _write_atomically(path / array_file(name), lambda fh: np.lib.format.write_array(fh, array), content,
                              array_file(name))
        meta["tables"] = rows
        meta["content_sha256"] = content.hexdigest()
    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    _write_atomically(path / META_FILE, lambda fh: fh.write(text.encode("utf8")))
    for name in FILES_BY_VERSION[3 - version]:
        if name != META_FILE:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path / name)
    return meta


class _Hashing:
    """A binary file that also feeds what is written to a sha256 (numpy writes to it in
    chunks, since it is not a real file)."""

    def __init__(self, fh: Any, digest: Any) -> None:
        self.fh, self.digest = fh, digest

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.fh.write(data)


def _write_atomically(target: Path, write: Callable[[Any], Any], content: Any = None, name: str = "") -> None:
    """Write `target` through a temporary file beside it and one rename. `content` (a
    sha256), when given, is fed the name and a digest of the bytes written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if content is None:
                write(fh)
            else:
                digest = hashlib.sha256()
                write(_Hashing(fh, digest))
                content.update(name.encode("utf8") + b"\0" + digest.digest())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a KB file is a normal file
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# What reading damaged files raises: json, msgpack, numpy and zipfile (which reports an
# unknown compression method as NotImplementedError and an "encrypted" flag as RuntimeError).
_DAMAGED = (ValueError, TypeError, KeyError, OSError, EOFError, MemoryError, OverflowError, RuntimeError,
            NotImplementedError, struct.error, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile,
            msgpack.UnpackException, SyntaxError, tokenize.TokenError)


class _Replaced(Exception):
    """The directory was swapped for another one while it was being read."""


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as a KB file must not block the open


def read_parts(path: Path) -> tuple[dict[str, Any], Tables, Arrays]:
    """Read and check the KB files of directory `path`, all from the same KB even while
    imports replace it. Format 2 tables are StringTables and its arrays memory maps.
    Raises KBFormatError."""
    meta, tables, arrays, _ = read_kb_folder(path)
    return meta, tables, arrays


def read_kb_folder(path: Path) -> tuple[dict[str, Any], Tables, Arrays, dict[str, Callable[[], Arrays | None]]]:
    """`read_parts` plus the derived files of the same folder: name -> a function that
    reads its arrays in place (None when missing; ValueError when damaged: a cache that is
    then rebuilt). The file is mapped now, from the same folder, and parsed when the
    function is called."""
    path = Path(path)
    for attempt in range(READ_ATTEMPTS):
        try:
            return _read_parts_once(path)
        except _Replaced:
            # A swap takes microseconds; the back-off only matters for imports in a loop.
            time.sleep(min(0.0005 * 2 ** attempt, 0.05))
    raise KBFormatError(Errors.E083.format(path=path, attempts=READ_ATTEMPTS))


def _read_parts_once(path: Path) -> tuple[dict[str, Any], Tables, Arrays, dict[str, Callable[[], Arrays | None]]]:
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
        # Every file is opened before any is read: all of them then belong to the KB that
        # `dir_fd` names, even if an import swaps another one in meanwhile.
        for name in _ALL_FILES:
            with contextlib.suppress(FileNotFoundError):
                fds[name] = os.open(name, os.O_RDONLY | _O_NONBLOCK, dir_fd=dir_fd)
        regular = {name for name, fd in fds.items() if stat.S_ISREG(os.fstat(fd).st_mode)}
        if META_FILE not in regular:
            _missing(dir_fd, path, [META_FILE] + [n for n in KB_FILES_V1[1:] if n not in regular])
        try:
            meta = json.loads(_read_fd(fds[META_FILE]))
            check_version(meta, path)
            version = meta["format_version"]
            missing = [name for name in FILES_BY_VERSION[version] if name not in regular]
            if missing:
                _missing(dir_fd, path, missing)
            if version == 1:
                tables = msgpack.unpackb(_read_fd(fds[TABLES_FILE]), raw=False)
                with os.fdopen(fds[ARRAYS_FILE], "rb", closefd=False) as fh, np.load(fh, allow_pickle=False) as npz:
                    _check_not_a_bomb(npz.zip)
                    arrays = {name: npz[name] for name in npz.files}
            else:
                tables, arrays = _read_v2(fds, meta, str(path))
        except KBFormatError:
            raise
        except _DAMAGED as err:
            if _moved(dir_fd, path):
                raise _Replaced from err
            raise KBFormatError(Errors.E009.format(path=path, reason=f"unreadable file ({err})")) from err
        extras = {name: _extra_reader(fds[name] if name in regular else None, name) for name in KB_EXTRA_FILES}
    finally:
        for fd in fds.values():
            os.close(fd)
        os.close(dir_fd)
    return meta, tables, arrays, extras


def _missing(dir_fd: int, path: Path, names: list[str]) -> None:
    if _moved(dir_fd, path):
        raise _Replaced
    raise KBFormatError(Errors.E009.format(path=path, reason=f"missing {', '.join(names)}"))


def _read_v2(fds: dict[str, int], meta: dict[str, Any], where: str) -> tuple[Tables, Arrays]:
    """The string tables and arrays of a format-2 folder, mapped from the open files."""
    from .strings import StringTable

    offsets = map_npy(fds[OFFSETS_FILE], OFFSETS_FILE)
    if offsets.dtype != np.dtype(np.int64) or offsets.ndim != 1 or offsets.shape[0] < 1:
        raise ValueError(f"{OFFSETS_FILE} is not a 1-d int64 array")
    blob = _map(fds[STRINGS_FILE])
    if int(offsets[0]) != 0 or int(offsets[-1]) != len(blob):
        raise ValueError(f"{OFFSETS_FILE} does not span {STRINGS_FILE} ({len(blob):,} bytes)")
    rows = meta.get("tables")
    if not isinstance(rows, dict):
        raise ValueError("meta.json has no 'tables' rows (a format 2 KB lists them)")
    tables: Tables = {}
    for name in TABLE_NAMES:
        span = rows.get(name)
        if span is None and name in OPTIONAL_TABLES:
            continue
        if not (isinstance(span, list) and len(span) == 2 and all(type(x) is int for x in span)):
            raise ValueError(f"meta.json 'tables' has no rows [first, stop] for {name!r}")
        tables[name] = StringTable(blob, offsets, span[0], span[1], name=name, where=where)
    arrays = {name: map_npy(fds[array_file(name)], array_file(name)) for name in ARRAY_NAMES}
    return tables, arrays


def _extra_reader(fd: int | None, name: str) -> Callable[[], Arrays | None]:
    """A function that reads the derived .npz file `fd` maps now: its arrays in place
    (`map_npz`), None when the folder has none; raises ValueError when it is damaged."""
    reason = ""
    try:
        mapped = None if fd is None else _map(fd)
    except _DAMAGED as err:
        mapped, reason = b"", str(err)

    def read() -> Arrays | None:
        if mapped is None:
            return None
        if not mapped:
            raise ValueError(f"{name}: {reason or 'the file is empty'}")
        try:
            return map_npz(mapped, name)
        except ValueError:
            raise
        except _DAMAGED as err:
            raise ValueError(f"{name}: {err}") from err

    return read


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
    """Whether a folder entry named `name` belongs in a KB folder: a file of format 1 or
    2, a derived file, or the temporary of one (left by a write killed midway)."""
    return name in _ALL_FILES or _EXTRA_TMP.fullmatch(name) is not None


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
    _write_atomically(path / name, lambda fh: np.savez(fh, **arrays))


def write_aligned_arrays(path: Path, name: str, arrays: Arrays) -> None:
    """`write_extra_arrays` for arrays used in place for as long as the KB is loaded (the
    entity arrays): the same .npz, with every array's data at a multiple of 64 bytes from
    the start of the file, as in numpy's own .npy files. np.savez leaves them wherever the
    member headers end, and numpy reads an unaligned array on slower paths (a gather
    ~4x, a reduction ~5x)."""
    _write_atomically(path / name, lambda fh: _write_aligned_npz(fh, arrays))


def remove_extra(path: Path, name: str) -> None:
    """Remove derived file `name` from KB folder `path`, if there (one unlink)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path / name)


def check_version(meta: Mapping[str, Any], path: Path | str) -> None:
    found = meta.get("format_version") if isinstance(meta, Mapping) else None
    if type(found) is not int or found not in READ_VERSIONS:
        expected = " or ".join(map(str, READ_VERSIONS))
        raise KBFormatError(Errors.E010.format(path=path, found=found, expected=expected))


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
        "tables": {name: list(value) for name, value in tables.items()},
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


# --- replacing a KB directory (kb/replace.py) ---------------------------------------------

def looks_like_kb(path: Path) -> bool:
    return (path / META_FILE).is_file()


def recover(output: Path, *, is_own: Callable[[Path], bool] = looks_like_kb) -> None:
    """`replace.recover` with a KB folder as what an import renamed aside."""
    replace.recover(output, is_own=is_own)
