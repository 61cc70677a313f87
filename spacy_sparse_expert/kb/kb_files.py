"""Reading and writing a KnowledgeBase: its folder (kb/storage.py does the files), its
bytes, and a KB built from parts read from either, every number checked on the way in
(E110 names the file and field; anything else that does not fit is E009). The
`KnowledgeBase` methods to_disk, from_disk, to_bytes and from_bytes call these.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Errors, KBFormatError
from . import kb_numbers, storage, views
from .alias_index import PREFIX as ALIAS_INDEX_PREFIX
from .alias_index import index_from_arrays, index_to_arrays, write_alias_index

if TYPE_CHECKING:  # pragma: no cover
    from .knowledge_base import KnowledgeBase


def parts(kb: KnowledgeBase) -> tuple[dict[str, Any], storage.Tables, storage.Arrays]:
    """The KB's meta, tables (as lists) and arrays."""
    tables = {name: list(getattr(kb, name)) for name in storage.TABLE_NAMES}
    return kb.meta, tables, dict(kb._arrays)


def write_kb(kb: KnowledgeBase, path: Path, format_version: int) -> None:
    """`KnowledgeBase.to_disk`."""
    path.mkdir(parents=True, exist_ok=True)
    tables = {name: getattr(kb, name) for name in storage.TABLE_NAMES}
    kb.meta = storage.write_parts(path, kb.meta, tables, dict(kb._arrays), version=format_version)
    if format_version >= 2:
        storage.write_aligned_arrays(path, storage.ENTITY_ARRAYS_FILE,
                                     views.stored_arrays(kb.entity_arrays, kb.meta["content_sha256"]))
    else:  # a format-1 folder has no content digest to key them with
        storage.remove_extra(path, storage.ENTITY_ARRAYS_FILE)
    if kb.alias_index is not None:
        write_alias_index(path, kb.alias_index)


def read_kb(cls: type[KnowledgeBase], path: Path) -> KnowledgeBase:
    """`KnowledgeBase.from_disk`."""
    meta, tables, arrays, extras = storage.read_kb_folder(path)
    kb = from_parts(cls, meta, tables, arrays, path, lazy_checks=meta["format_version"] >= 2)
    kb.path = path
    kb._alias_index_reader = extras[storage.ALIAS_INDEX_FILE]
    kb._entity_arrays_reader = extras[storage.ENTITY_ARRAYS_FILE]
    return kb


def kb_to_bytes(kb: KnowledgeBase) -> bytes:
    """`KnowledgeBase.to_bytes`."""
    meta, tables, arrays = parts(kb)
    if kb.alias_index is not None:  # so that a copy made from bytes does not tokenize again
        arrays.update(index_to_arrays(kb.alias_index, ALIAS_INDEX_PREFIX))
    return storage.parts_to_bytes(meta, tables, arrays)


def kb_from_bytes(cls: type[KnowledgeBase], data: bytes) -> KnowledgeBase:
    """`KnowledgeBase.from_bytes`."""
    meta, tables, arrays = storage.parts_from_bytes(data)
    index = index_from_arrays(arrays, ALIAS_INDEX_PREFIX)
    kb = from_parts(cls, meta, tables, arrays, "<bytes>")
    kb.alias_index = index
    return kb


def from_parts(cls: type[KnowledgeBase], meta: dict[str, Any], tables: storage.Tables, arrays: storage.Arrays,
               where: Path | str, *, lazy_checks: bool = False) -> KnowledgeBase:
    """Build a KB from parts read from a file: numbers that do not fit raise E110
    (file, field, value); anything else that does not fit, E009."""
    version = meta.get("format_version", 1) if isinstance(meta, dict) else 1
    try:
        # Before __init__, which casts: a float64 1e39 would become a float32 inf.
        for name, dtype in storage.ARRAY_DTYPES.items():
            kb_numbers.check_dtypes({name: arrays[name]} if name in arrays else {}, {name: dtype},
                                    file=storage.data_file(name, version))
        kb = cls(tables=tables, arrays=arrays, meta=meta, lazy_checks=lazy_checks, where=where)
        kb_numbers.check_meta_counts(kb.meta, kb._sizes(), file=storage.META_FILE)
        return kb
    except kb_numbers.BadNumber as err:
        # from_bytes packs the parts under "meta"/"arrays" keys, not files
        file = err.file if isinstance(where, Path) else err.file.split(".")[0]
        raise KBFormatError(Errors.E110.format(path=where, file=file, field=repr(err.field),
                                               reason=err.reason)) from err
    except (ValueError, TypeError) as err:
        raise KBFormatError(Errors.E009.format(path=where, reason=str(err))) from err
