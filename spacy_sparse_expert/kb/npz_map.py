"""Reading numpy's .npy and .npz files in place (memory-mapped, no copy) and writing
.npz files whose arrays start 64-byte aligned, for the arrays of a KB folder
(``storage.py``)."""
from __future__ import annotations

import io
import mmap
import os
import struct
import tokenize
import zipfile
from typing import Any, Callable

import numpy as np


Arrays = dict[str, np.ndarray]


def _map(fd: int) -> Any:
    """A read-only memory map of the whole file `fd` (b"" for an empty file, which
    cannot be mapped)."""
    if os.fstat(fd).st_size == 0:
        return b""
    return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)


def map_npy(fd: int, name: str) -> np.ndarray:
    """The array in .npy file `fd`, memory-mapped read-only (numpy's loader maps only a
    file it opens by path; this maps the file already open, so it is the file that was opened).
    Object dtypes are refused (nothing is unpickled); the file size must be exactly what
    the header says. Raises ValueError."""
    with os.fdopen(fd, "rb", closefd=False) as fh:
        fh.seek(0)
        header = _npy_header(fh, name)
    return _npy_array(lambda: _map(fd), 0, os.fstat(fd).st_size, header, name)


def _npy_header(fh: Any, name: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, Fortran order, dtype, offset of the data) of the .npy file starting at the
    position of `fh`, the offset counted from there. Raises ValueError."""
    begin = fh.tell()
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f".npy version {version} is not read")
    except (ValueError, TypeError, KeyError, SyntaxError, tokenize.TokenError, RecursionError) as err:
        # numpy parses the header dict with `ast.literal_eval`: damage surfaces as any of these
        raise ValueError(f"{name}: not a .npy header ({err})") from None
    return shape, fortran, dtype, fh.tell() - begin


def _npy_array(buffer: Callable[[], Any], start: int, end: int, header: tuple[tuple[int, ...], bool, np.dtype, int],
               name: str) -> np.ndarray:
    """The array of the .npy held in bytes start..end of `buffer()` (called only when the
    array is not empty), a read-only view. Object dtypes are refused; the size must be
    exactly what the header says. Raises ValueError."""
    shape, fortran, dtype, offset = header
    if dtype.hasobject:
        raise ValueError(f"{name}: object arrays are not allowed (dtype {dtype})")
    count = 1
    for dim in shape:
        count *= int(dim)
    if offset + count * dtype.itemsize != end - start:
        raise ValueError(f"{name}: {end - start:,} bytes, but its header says {shape} {dtype} "
                         f"({offset + count * dtype.itemsize:,} bytes)")
    if count == 0:
        return np.zeros(shape, dtype=dtype)
    array = np.frombuffer(buffer(), dtype=dtype, count=count, offset=start + offset)
    return array.reshape(shape, order="F" if fortran else "C")


# The fixed part of a zip member's local header: signature, 22 bytes of versions, flags,
# times, CRC and sizes (the central directory's are used), name length, extra field length.
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_NPY_HEADER_MAX = (1 << 16) + 16  # a version 1.0 .npy header (what numpy writes for any array here)


def map_npz(buffer: Any, name: str) -> Arrays:
    """The arrays of the .npz archive in `buffer` (a read-only memory map), each a view of
    its bytes there: nothing is copied or decompressed, so the pages of an array are read
    when it is used. Every member must be a stored (uncompressed) .npy, as np.savez and
    `write_aligned_arrays` write them. Raises ValueError naming `name` (zipfile's errors
    pass through: the callers count them as damage too)."""
    arrays: Arrays = {}
    # zipfile reads the central directory through the map's file methods (seek, tell, read)
    with zipfile.ZipFile(buffer) as archive:
        for info in archive.infolist():
            member = f"{name}: member {info.filename!r}"
            key = info.filename[:-4]
            if not info.filename.endswith(".npy") or key in arrays:
                raise ValueError(f"{member} is not an array of its own")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise ValueError(f"{member} is compressed (derived files store their arrays uncompressed)")
            local = bytes(buffer[info.header_offset : info.header_offset + _LOCAL_HEADER.size])
            if len(local) != _LOCAL_HEADER.size:
                raise ValueError(f"{member} starts past the end of the file")
            signature, name_length, extra_length = _LOCAL_HEADER.unpack(local)
            if signature != b"PK\x03\x04":
                raise ValueError(f"{member} has no local header")
            start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
            end = start + info.file_size
            if end > len(buffer):
                raise ValueError(f"{member} ends past the end of the file ({len(buffer):,} bytes)")
            header = _npy_header(io.BytesIO(buffer[start : min(end, start + _NPY_HEADER_MAX)]), member)
            arrays[key] = _npy_array(lambda: buffer, start, end, header, member)
    return arrays


_ALIGN = 64
_PAD_FIELD = 0xD935  # the extra field id zipalign uses for padding; zip readers skip unknown ids


def _write_aligned_npz(fh: Any, arrays: Arrays) -> None:
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            array = np.asarray(value)
            if not array.flags.c_contiguous:
                array = array.copy(order="C")
            if array.dtype.hasobject:
                raise ValueError(f"array {key!r}: object arrays are not stored (dtype {array.dtype})")
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, np.lib.format.header_data_from_array_1_0(array))
            header = head.getvalue()  # padded by numpy to a multiple of 64 bytes
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))  # same bytes for the same arrays
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = len(header) + array.nbytes
            zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own rule for a member of known size
            # the member's data starts after the local header: 30 bytes, the name, the
            # extra field (this padding, then zip64 sizes when zip64)
            data_at = fh.tell() + _LOCAL_HEADER.size + len(info.filename.encode("ascii")) + 4 + (20 if zip64 else 0)
            pad = -data_at % _ALIGN
            info.extra = struct.pack("<HH", _PAD_FIELD, pad) + bytes(pad)
            with archive.open(info, "w", force_zip64=zip64) as member:
                member.write(header)
                member.write(array.reshape(-1).view(np.uint8).data)
