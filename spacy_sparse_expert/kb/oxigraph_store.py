"""`kb import --store DIR`: the imported triples kept in an Oxigraph store as well.

The store is filled by pyoxigraph's bulk loader (``Store.bulk_extend``) from the same
single pass over the sources that compiles the KB: each batch of parsed quads goes to the
collector and then to the store, so a pipe or an endpoint is still read once and nothing
is parsed twice. The result is an ordinary Oxigraph (RocksDB) directory that pyoxigraph
(``Store.read_only(DIR).query(...)``) and ``oxigraph serve --location DIR`` query with
SPARQL; quads keep their named graphs.

Like the KB, the store is written into a temporary directory beside DIR and renamed into
place only when the whole import succeeded. DIR may be new, an empty directory, or a
store an earlier ``--store`` wrote (it holds MARKER_FILE); anything else, an Oxigraph
store of someone else's included, is refused (E280) and left as it was.
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from ..errors import Errors, KBImportError, SparseExpertError
from . import storage
from .outputs import check_output_target, existing_entries, read_small_json

STORE_FORMAT = "spacy-sparse-expert oxigraph store"
MARKER_FILE = "sparse-expert-store.json"
BATCH = 1 << 17  # quads per bulk_extend call: one call writes its own files


def looks_like_store(path: Path) -> bool:
    """A directory an earlier ``kb import --store`` wrote (its marker file says so)."""
    marker = read_small_json(path / MARKER_FILE)
    return isinstance(marker, dict) and marker.get("format") == STORE_FORMAT


def store_refusal(path: Path) -> str | None:
    """Why ``--store`` may not replace `path`; None when it may (missing, empty, or a
    store with our marker)."""
    reason, names = existing_entries(path)
    if reason is not None or not names:
        return reason
    if looks_like_store(path):
        return None
    from .rdf_sources import is_oxigraph_store

    if is_oxigraph_store(path):
        return "it is an Oxigraph store that `kb import --store` did not write"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"it holds {shown}, which is not a store `kb import --store` wrote"


def check_store_output(store: Path, *, kb_output: Path, sources: Iterable[str | Path] = ()) -> None:
    """Raise the coded error if ``--store`` may not write to `store`: a symbolic link
    (E080), a path that is, holds or lies inside a source or the KB output (E082), or an
    existing directory that is not an earlier store of ours (E280)."""
    check_output_target(store, [("KB output", kb_output), *(("source", s) for s in sources)])
    reason = store_refusal(store)
    if reason is not None:
        raise KBImportError(Errors.E280.format(path=store, reason=reason, marker=MARKER_FILE))


def _store_busy(store: Path, lock: Path) -> SparseExpertError:
    return KBImportError(Errors.E281.format(path=store, lock=lock))


def store_lock(store: Path) -> Any:
    """The lock of writes into `store` (beside it, like the KB's)."""
    return storage.import_lock(store, busy=_store_busy)


def recover_store(store: Path) -> None:
    """Clean up what an import killed while writing `store` left beside it."""
    storage.recover(store, is_own=looks_like_store)


class StoreWriter:
    """An Oxigraph store being filled in a temporary directory beside `target`.

    ``add(batch)`` bulk-loads a batch of quads; ``commit(meta, check)`` writes the marker,
    closes the store and swaps it into `target`; ``discard()`` removes it. The temporary
    name is one `storage.recover` removes after a kill.
    """

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; a store is a normal directory
        self.quads = 0
        try:
            self.store: ox.Store | None = ox.Store(str(self.tmp))
        except (OSError, RuntimeError) as err:
            self.discard()
            raise self._error(err) from err

    def _error(self, err: BaseException) -> KBImportError:
        reason = getattr(err, "strerror", None) or str(err).strip() or type(err).__name__
        return KBImportError(Errors.E282.format(path=self.target, reason=reason, parent=self.target.parent))

    def add(self, quads: Sequence[ox.Quad]) -> None:
        assert self.store is not None
        try:
            self.store.bulk_extend(quads)
        except (OSError, RuntimeError) as err:  # RocksDB: disk full, permissions
            raise self._error(err) from err
        self.quads += len(quads)

    def _close(self) -> None:
        if self.store is not None:
            try:
                self.store.flush()
            finally:
                self.store = None  # the only reference: RocksDB closes its files now
                gc.collect()

    def commit(self, meta: dict[str, Any], check: storage.Refusal) -> None:
        """Close the store, mark it as ours and rename it into `target` (atomically:
        `storage.replace_dir_atomically`, which runs `check` again first)."""
        try:
            self._close()
            marker = {"format": STORE_FORMAT, "quads_loaded": self.quads, **meta}
            (self.tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf8")
        except (OSError, RuntimeError) as err:
            self.discard()
            raise self._error(err) from err

        def move_in(empty: Path) -> None:
            os.rename(self.tmp, empty)  # replaces the empty directory made for the swap

        try:
            storage.replace_dir_atomically(self.target, move_in, check=check)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        self.store = None
        gc.collect()
        shutil.rmtree(self.tmp, ignore_errors=True)


__all__ = ["BATCH", "MARKER_FILE", "STORE_FORMAT", "StoreWriter", "check_store_output", "looks_like_store",
           "recover_store", "store_lock", "store_refusal"]
