"""Checks on a safetensors weights file against the module that will receive it.

safetensors guarantees no code runs on load, but not that the tensors fit: a file
with NaN weights, int8 or bool tensors where float32 is expected, or a
``config.cfg`` edited after saving would load silently or end in a torch
size-mismatch traceback. Here the header (names, dtypes, shapes, offsets) is read
and compared with the module's state dict *before* any tensor of the file is
allocated; finiteness is checked on the loaded tensors before they are copied in.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import torch

from ..errors import Errors, SparseExpertError

# safetensors' own limit on the JSON header
MAX_HEADER_BYTES = 100_000_000

DTYPE_NAMES: Dict[torch.dtype, str] = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
              "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}

Shape = Tuple[int, ...]
Expected = Mapping[str, Tuple[torch.dtype, Shape]]


class WeightsFileError(SparseExpertError):
    """A weights file is not safetensors, or its tensors do not fit the model."""


@dataclass(frozen=True)
class TensorInfo:
    """One header entry: dtype name (safetensors' spelling), shape, byte range."""

    dtype: str
    shape: Shape
    start: int
    end: int


@dataclass
class Mismatch:
    """Where a file differs from the module: (tensor, dim) pairs whose sizes differ
    (every dim when the rank differs), and tensors missing from or extra in the file."""

    dims: Set[Tuple[str, int]]
    missing: Set[str]
    extra: Set[str]
    found: Dict[str, Shape]  # the file's shapes
    wanted: Dict[str, Shape]  # the module's shapes


# explain(mismatch) -> the model settings that account for all of it, or None
Explain = Callable[[Mismatch], Optional[str]]


def _bad_file(path: str, reason: str) -> WeightsFileError:
    return WeightsFileError(Errors.E032.format(path=path, reason=reason))


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def parse_header(prefix: bytes, data_len: int, source: str) -> Tuple[Dict[str, TensorInfo], int]:
    """The tensors of a safetensors file from its first bytes (``prefix`` holds at
    least the 8-byte length and the JSON header) and the size of the data section.
    RETURNS the entries and the offset where the data section starts."""
    if len(prefix) < 8:
        raise _bad_file(source, f"{len(prefix)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(prefix):
        raise _bad_file(source, f"the header length {n} is larger than the file or {MAX_HEADER_BYTES:,} bytes")
    try:
        raw = json.loads(prefix[8 : 8 + n].decode("utf8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _bad_file(source, f"the header is not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise _bad_file(source, "the header is not a JSON object")
    entries: Dict[str, TensorInfo] = {}
    end_max = 0
    size = data_len - 8 - n
    for name, entry in raw.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            ok = (dtype in ITEM_SIZES and all(type(d) is int and d >= 0 for d in shape)
                  and type(start) is int and type(end) is int and 0 <= start <= end <= size
                  and end - start == math.prod(shape) * ITEM_SIZES[dtype])
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise _bad_file(source, f"the header entry of tensor {name!r} is malformed: {entry!r:.200}")
        entries[name] = TensorInfo(dtype, shape, start, end)
        end_max = max(end_max, end)
    if end_max != size:
        raise _bad_file(source, f"the tensors end at byte {end_max} of a {size}-byte data section "
                                f"(the file is truncated or has bytes appended)")
    return entries, 8 + n


def read_file_header(path: Path) -> Tuple[Dict[str, TensorInfo], int]:
    """:func:`parse_header` reading only the header bytes of ``path``."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            prefix = head + (f.read(n) if n <= min(MAX_HEADER_BYTES, size) else b"")
    except OSError as err:
        raise _bad_file(str(path), f"cannot read it ({err.strerror or err})") from None
    return parse_header(prefix, size, str(path))


def expected_state(module: torch.nn.Module) -> Dict[str, Tuple[torch.dtype, Shape]]:
    return {name: (t.dtype, tuple(t.shape)) for name, t in module.state_dict().items()}


def compare(header: Mapping[str, TensorInfo], expected: Expected) -> Mismatch:
    dims: Set[Tuple[str, int]] = set()
    for name in header.keys() & expected.keys():
        found, want = header[name].shape, expected[name][1]
        if len(found) != len(want):
            dims.update((name, d) for d in range(max(len(found), len(want))))
        else:
            dims.update((name, d) for d, (a, b) in enumerate(zip(found, want)) if a != b)
    return Mismatch(dims, set(expected) - set(header), set(header) - set(expected),
                    {name: info.shape for name, info in header.items()},
                    {name: shape for name, (_, shape) in expected.items()})


def check_header(header: Mapping[str, TensorInfo], expected: Expected, source: str,
                 explain: Optional[Explain] = None) -> None:
    """Refuse a file whose tensors are not exactly the module's (names, shapes,
    dtypes). A difference that the model settings account for (``explain``) is
    reported as a settings mismatch (E119), anything else as a damaged file."""
    mismatch = compare(header, expected)
    if mismatch.dims or mismatch.missing or mismatch.extra:
        because = explain(mismatch) if explain is not None else None
        if because is not None:
            raise WeightsFileError(Errors.E119.format(path=source, reason=because))
    if mismatch.missing or mismatch.extra:
        parts = [f"{label} {', '.join(repr(n) for n in sorted(names)[:5])}{' ...' if len(names) > 5 else ''}"
                 for label, names in (("missing", mismatch.missing), ("unexpected", mismatch.extra)) if names]
        raise WeightsFileError(Errors.E118.format(path=source, reason="; ".join(parts)))
    for name in sorted({name for name, _ in mismatch.dims}):
        reason = f"has shape {header[name].shape}; the model needs {expected[name][1]}"
        raise WeightsFileError(Errors.E117.format(path=source, tensor=name, reason=reason))
    for name, (dtype, _) in sorted(expected.items()):
        want = DTYPE_NAMES.get(dtype, str(dtype))
        if header[name].dtype != want:
            reason = f"has dtype {header[name].dtype}; the model needs {want}"
            raise WeightsFileError(Errors.E117.format(path=source, tensor=name, reason=reason))


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    for name, tensor in sorted(state.items()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            n_bad = int((~torch.isfinite(tensor)).sum())
            reason = f"has {n_bad} NaN or infinite value(s) of {tensor.numel()}"
            raise WeightsFileError(Errors.E117.format(path=source, tensor=name, reason=reason))


__all__ = ["Explain", "Mismatch", "TensorInfo", "WeightsFileError", "check_finite", "check_header", "compare",
           "expected_state", "parse_header", "read_file_header"]
