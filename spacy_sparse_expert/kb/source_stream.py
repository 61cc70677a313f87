"""Reading one RDF file exactly once, whatever it is: a regular file, a pipe, `/dev/stdin`,
`/dev/fd/N` (process substitution), a named FIFO or `-` (standard input).

A pipe can be read only once, so nothing here opens a source twice or seeks in it: the
bytes are hashed and counted while the parser reads them, compression is recognised by
looking at the first bytes through the same stream, and the formats whose safety checks
need the document twice (RDF/XML, the rdflib engine) get a spooled copy of the
decompressed bytes instead of a second open. The decompressed size is capped per source
(`max_bytes`): a small compressed file can expand without limit.
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from ..errors import Errors, KBImportError

STDIN = "-"
AUTO = "auto"  # compression recognised from the first bytes
CHUNK = 1 << 20
# 64 GiB of decompressed text per source: about 400M N-Triples lines of ~160 bytes, more
# than an in-memory KB holds on a large machine, yet a bomb stops after minutes of CPU.
DEFAULT_MAX_BYTES = 64 << 30
# Spooled copies stay in memory up to this size, then move to a temporary file.
SPOOL_IN_MEMORY = 32 << 20
MAGIC: tuple[tuple[bytes, str], ...] = ((b"\x1f\x8b", ".gz"), (b"BZh", ".bz2"), (b"\xfd7zXZ\x00", ".xz"))
DECOMPRESSORS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    ".gz": lambda fh: gzip.GzipFile(fileobj=fh, mode="rb"),
    ".bz2": lambda fh: bz2.BZ2File(fh, "rb"),
    ".xz": lambda fh: lzma.LZMAFile(fh, "rb"),
}


@dataclass
class ReadStats:
    """What reading one source saw; `sha256` is set once every byte was read."""

    bytes_read: int = 0          # as stored (compressed)
    bytes_decompressed: int = 0
    compression: str | None = None
    sha256: str | None = None


class _Tap(io.RawIOBase):
    """A raw stream over another one that counts (and optionally hashes and caps) what
    passes through. `head(n)` looks at the first bytes without consuming them, which a
    BufferedReader's `peek` cannot promise on a pipe (it returns one short read)."""

    def __init__(self, inner: Any, *, digest: Any = None, limit: int | None = None, where: str = "") -> None:
        super().__init__()
        self.inner = inner
        self.digest = digest
        self.limit = limit
        self.where = where
        self.count = 0
        self._pending = b""

    def readable(self) -> bool:
        return True

    def _read_inner(self, size: int) -> bytes:
        data = self.inner.read(size)
        if data:
            self.count += len(data)
            if self.digest is not None:
                self.digest.update(data)
            self._check()
        return data or b""

    def _check(self) -> None:
        if self.limit is not None and self.count > self.limit:
            raise KBImportError(Errors.E090.format(path=self.where, limit=self.limit))

    def head(self, n: int) -> bytes:
        while len(self._pending) < n:
            data = self._read_inner(n - len(self._pending))
            if not data:
                break
            self._pending += data
        return self._pending[:n]

    def skip_head(self, n: int) -> None:
        self._pending = self._pending[n:]

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            n = min(len(buffer), len(self._pending))
            buffer[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        n = self.inner.readinto(buffer) or 0
        if n:
            self.count += n
            if self.digest is not None:
                self.digest.update(memoryview(buffer)[:n])
            self._check()
        return n


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic number `head` starts with (gzip, bzip2, xz), or None."""
    return next((suffix for magic, suffix in MAGIC if head.startswith(magic)), None)


@contextlib.contextmanager
def open_once(location: str, compression: str | None, *, max_bytes: int = DEFAULT_MAX_BYTES,
              stats: ReadStats | None = None, strip_bom: bool = False) -> Iterator[io.BufferedReader]:
    """The decompressed bytes of a file, read in one pass.

    location (str): a path (any kind of file, pipes included) or "-" for standard input.
    compression (str | None): ".gz", ".bz2" or ".xz" from the file name, None for none,
        AUTO to recognise it from the magic number (a pipe has no name to tell).
    max_bytes (int): decompressed bytes allowed; more raises E090 while reading.
    stats (ReadStats | None): filled in; `sha256` once the caller's block ends normally.
    strip_bom (bool): drop a UTF-8 byte order mark (pyoxigraph's Turtle family reads one
        as the start of a term).
    """
    stats = stats if stats is not None else ReadStats()
    digest = hashlib.sha256()
    if location == STDIN:
        inner: Any = sys.stdin.buffer
        owned = False
    else:
        inner = open(location, "rb", buffering=0)  # noqa: SIM115 - closed below
        owned = True
    try:
        raw_tap = _Tap(inner, digest=digest, where=location)
        if compression == AUTO:
            compression = sniff_compression(raw_tap.head(6))
        stats.compression = compression
        if compression:
            raw: io.BufferedReader | None = io.BufferedReader(raw_tap, CHUNK)
            text_tap = _Tap(DECOMPRESSORS[compression](raw), limit=max_bytes, where=location)  # type: ignore[arg-type]
        else:  # one layer fewer: the stored bytes are the text
            raw, text_tap = None, raw_tap
            raw_tap.limit = max_bytes
        if strip_bom and text_tap.head(3) == b"\xef\xbb\xbf":
            text_tap.skip_head(3)
        text = io.BufferedReader(text_tap, CHUNK)
        yield text
        # A parser may stop at its last triple: the hash covers every byte all the same.
        while (raw or text).read(CHUNK):
            pass
        stats.bytes_read, stats.bytes_decompressed = raw_tap.count, text_tap.count
        stats.sha256 = digest.hexdigest()
    finally:
        if owned:
            inner.close()


def spool(stream: IO[bytes]) -> IO[bytes]:
    """A rewindable copy of the rest of `stream` (in memory while small, else a temporary
    file), for checks that must see a document before its parser does."""
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - caller closes
    try:
        shutil.copyfileobj(stream, copy, CHUNK)
    except BaseException:
        copy.close()
        raise
    copy.seek(0)
    return copy  # type: ignore[return-value]


__all__ = ["AUTO", "DEFAULT_MAX_BYTES", "STDIN", "ReadStats", "open_once", "sniff_compression", "spool"]
