"""String tables of a format-2 KB folder, read in place: one UTF-8 blob (``strings.bin``)
and an int64 array of offsets into it (``strings.offsets.npy``), both memory-mapped.

A `StringTable` is a read-only sequence of str over rows ``first..stop`` of those offsets:
row i is ``blob[offsets[first + i]:offsets[first + i + 1]]``, decoded when it is asked
for. Loading a KB therefore reads no string; a lookup decodes the few it returns. Text is
encoded with ``surrogatepass`` (an IRI read from RDF may hold a lone surrogate), so every
str a KB held round-trips.
"""
from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from ..errors import Errors, KBFormatError


def encode_tables(tables: dict[str, Sequence[str]], names: Sequence[str]) -> tuple[bytes, np.ndarray, dict[str, list[int]]]:
    """The tables `names` of `tables` as (blob, offsets int64 (n_strings + 1,), rows per
    table as [first, stop]), in the order of `names`."""
    pieces: list[bytes] = []
    rows: dict[str, list[int]] = {}
    lengths: list[int] = []
    for name in names:
        first = len(lengths)
        for text in tables[name]:
            if not isinstance(text, str):
                raise ValueError(f"table {name!r} holds a {type(text).__name__}, not a string")
            piece = text.encode("utf8", "surrogatepass")
            pieces.append(piece)
            lengths.append(len(piece))
        rows[name] = [first, len(lengths)]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return b"".join(pieces), offsets, rows


class StringTable(Sequence[str]):
    """Rows ``first..stop`` of a memory-mapped string blob, decoded per access.

    blob (bytes | mmap.mmap): the UTF-8 strings, concatenated.
    offsets (np.ndarray): int64 (n_strings + 1,) start of each string in `blob`.
    first, stop (int): the rows of this table.
    name (str): the table's name, and where (str): the KB folder, for error messages.
    """

    def __init__(self, blob: Any, offsets: np.ndarray, first: int, stop: int, *, name: str, where: str) -> None:
        if not 0 <= first <= stop < offsets.shape[0]:
            raise ValueError(f"table {name!r} rows {first}..{stop} outside the {offsets.shape[0] - 1} strings")
        self._blob = blob
        self._offsets = offsets[first : stop + 1]
        self._n = stop - first
        self.name, self.where = name, where
        self._checked = False

    def __len__(self) -> int:
        return self._n

    def _check_offsets(self) -> None:
        """On first access: offsets ascending and inside the blob (O(rows), once)."""
        off = self._offsets
        if self._n and (off[0] < 0 or off[-1] > len(self._blob) or np.any(off[1:] < off[:-1])):
            raise KBFormatError(Errors.E009.format(
                path=self.where, reason=f"strings.offsets.npy: the offsets of table {self.name!r} are not "
                                        f"ascending inside strings.bin"))
        self._checked = True

    def _decode(self, i: int) -> str:
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        try:
            return str(self._blob[start:end], "utf8", "surrogatepass")
        except UnicodeDecodeError as err:
            raise KBFormatError(Errors.E009.format(
                path=self.where, reason=f"strings.bin: row {i} of table {self.name!r} is not UTF-8 ({err})")) from None

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if not self._checked:
            self._check_offsets()
        if isinstance(index, slice):
            return [self._decode(i) for i in range(*index.indices(self._n))]
        i = operator.index(index)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"{self.name} index {index} out of range ({self._n} rows)")
        return self._decode(i)

    def __iter__(self) -> Iterator[str]:
        if not self._checked:
            self._check_offsets()
        # One read of the table's bytes and plain-int offsets: ~20x faster than a decode
        # per row through numpy scalars (a linker lists all alias surfaces at load).
        chunk = 1 << 16
        for first in range(0, self._n, chunk):
            offsets = self._offsets[first : min(first + chunk, self._n) + 1]
            base = int(offsets[0])
            raw = bytes(self._blob[base : int(offsets[-1])])
            ends = (np.asarray(offsets, dtype=np.int64) - base).tolist()
            for j, (start, end) in enumerate(zip(ends[:-1], ends[1:])):
                try:
                    yield str(raw[start:end], "utf8", "surrogatepass")
                except UnicodeDecodeError:
                    self._decode(first + j)  # raises the coded error naming the row
                    raise

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequences are unhashable

    def __deepcopy__(self, memo: dict[int, Any]) -> StringTable:
        # Read-only, so a deep copy is the table itself; copying would also fail on the map
        # (spaCy deep-copies a model whose linker holds the KB's alias surfaces).
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # For pickling (multiprocessing): the table's own bytes and offsets, never the map.
        offsets = np.asarray(self._offsets, dtype=np.int64)
        return (_table_from_parts, (self.raw_bytes(), offsets - offsets[0], self.name, self.where))

    def __repr__(self) -> str:
        return f"<StringTable {self.name} rows={self._n}>"

    def raw_bytes(self) -> bytes:
        """The table's UTF-8 bytes as stored (all rows concatenated)."""
        if not self._checked:
            self._check_offsets()
        if not self._n:
            return b""
        return bytes(self._blob[int(self._offsets[0]) : int(self._offsets[-1])])

    def row_lengths(self) -> np.ndarray:
        """int64 (rows,) byte length of each row."""
        return np.diff(np.asarray(self._offsets, dtype=np.int64))


class BlankStrings(Sequence[str]):
    """`n` empty strings, stored as nothing: a table that a KB folder written before the
    table existed does not hold (the descriptions of an older KB)."""

    def __init__(self, n: int, *, name: str = "") -> None:
        self._n = int(n)
        self.name = name

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [""] * len(range(*index.indices(self._n)))
        i = operator.index(index)
        if not -self._n <= i < self._n:
            raise IndexError(f"{self.name or 'table'} index {index} out of range ({self._n} rows)")
        return ""

    def __iter__(self) -> Iterator[str]:
        return itertools.repeat("", self._n)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(text == "" for text in other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<BlankStrings {self.name} rows={self._n}>"


def _table_from_parts(blob: bytes, offsets: np.ndarray, name: str, where: str) -> StringTable:
    """A pickled `StringTable` (`StringTable.__reduce__`)."""
    return StringTable(blob, offsets, 0, offsets.shape[0] - 1, name=name, where=where)


__all__ = ["BlankStrings", "StringTable", "encode_tables"]
