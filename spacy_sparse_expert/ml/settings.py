"""Model settings checked before anything is allocated.

A config is a text file anyone can edit: ``width = 1e9`` would ask torch for
terabytes, ``d_ff = 0`` divides by zero in the weight init, a negative size
overflows, and ``ngram_size = 10000000`` makes a three-token doc take a second.
Every builder setting therefore has a type and a documented range (``LIMITS``),
checked first, and the whole model's parameter count is measured on torch's
``meta`` device (shapes only, no memory) before the real module is built.
"""
from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any, Callable, Collection, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import Errors, SparseExpertError

# The sane maxima are generous for a document classifier (the shipped configs use
# width 64-256, 4-16 experts) and small enough that no single setting can ask for
# more memory than the parameter budget below then refuses with a clear message.
LIMITS: Dict[str, Tuple[int, int]] = {
    "width": (1, 65536),
    "d_hidden": (1, 262144),
    "rows": (1, 1 << 24),
    "n_hashes": (1, 4),  # thinc's ops.hash gives 4 values per key
    "window_size": (0, 32),
    "depth": (0, 32),
    "n_attrs": (1, 16),
    "n_experts": (1, 4096),
    "d_ff": (1, 262144),
    "n_moe_layers": (0, 64),
    "d_knowledge": (1, 4096),
    "bow_rows": (0, 1 << 24),
    "ngram_size": (1, 8),
    "nO": (1, 100000),
    "max_length": (2, 8192),
}
# thinc checks a builder's arguments against its annotations before the builder
# runs, with an uncoded message and without ranges. The builders' settings are
# annotated with these aliases instead, so every bad value reaches the builder's own
# checks and gets SSE-E115 with the allowed range; the docstrings give the types.
IntSetting = Any
FloatSetting = Any
BoolSetting = Any
Setting = Any

MAX_CAPACITY_FACTOR = 64.0
MAX_BOW_SCALE = 1e4
# label_prior is a logit added before training; beyond ~10 it decides alone
MAX_LABEL_PRIOR = 100.0
MAX_PARAMETERS_ENV = "SPARSE_EXPERT_MAX_PARAMETERS"
# 2**28 float32 parameters = 1 GiB of weights (3 GiB with Adam's two moments).
DEFAULT_MAX_PARAMETERS = 1 << 28


class ModelSettingError(SparseExpertError):
    """A model setting from a config has the wrong type, is out of range, or the
    settings together do not fit (k > n_experts, over the parameter budget)."""


def _fail(where: str, key: str, value: Any, reason: str, allowed: str) -> ModelSettingError:
    return ModelSettingError(Errors.E115.format(key=key, value=value, where=where, reason=reason, allowed=allowed))


def _type_name(value: Any) -> str:
    return type(value).__name__


def check_int(where: str, key: str, value: Any, lo: Optional[int] = None, hi: Optional[int] = None,
              note: str = "") -> int:
    """``value`` as an int in [lo, hi] (``LIMITS[key]`` by default); bools and floats
    are refused, even 64.0: a float there is almost always a typo such as 1e9."""
    if lo is None or hi is None:
        lo, hi = LIMITS[key]
    allowed = f"a whole number in [{lo}, {hi}]{note}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        reason = f"it is a {_type_name(value)}, not a whole number"
        if isinstance(value, float):
            reason += " (write it without a decimal point or exponent)"
        raise _fail(where, key, value, reason, allowed)
    if not lo <= int(value) <= hi:
        raise _fail(where, key, value, "out of range", allowed)
    return int(value)


def check_float(where: str, key: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
                hi_open: bool = False, allow_none: bool = False) -> Optional[float]:
    """``value`` as a finite float in the interval; ints are fine (``dropout = 0``)."""
    allowed = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if allow_none:
        allowed += ", or null"
        if value is None:
            return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise _fail(where, key, value, f"it is a {_type_name(value)}, not a number", allowed)
    number = float(value)
    if not math.isfinite(number):
        raise _fail(where, key, value, "it is not finite", allowed)
    below = number <= lo if lo_open else number < lo
    above = number >= hi if hi_open else number > hi
    if below or above:
        raise _fail(where, key, value, "out of range", allowed)
    return number


def check_bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(where, key, value, f"it is a {_type_name(value)}", "true or false")
    return value


def check_choice(where: str, key: str, value: Any, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, key, value, "unknown value", f"one of {sorted(choices)}")
    return value


def check_list(where: str, key: str, value: Any, n_lo: int, n_hi: int) -> list:
    """A list (or tuple) of n_lo..n_hi items; a string is not a list of its characters."""
    allowed = f"a list of {n_lo} to {n_hi} items"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(where, key, value, f"it is a {_type_name(value)}, not a list", allowed)
    if not n_lo <= len(value) <= n_hi:
        raise _fail(where, key, value, f"it has {len(value)} items", allowed)
    return list(value)


def max_parameters() -> int:
    """The parameter budget: ``$SPARSE_EXPERT_MAX_PARAMETERS`` or 2**28."""
    raw = os.environ.get(MAX_PARAMETERS_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_PARAMETERS
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 1:
        raise _fail("the environment", MAX_PARAMETERS_ENV, raw, "not a positive whole number",
                    "a whole number >= 1, or unset for the default 2**28")
    return value


class _SkipInPlaceOnMeta(TorchFunctionMode):
    """In-place ops on meta tensors (the weight initialisers) do nothing: ``normal_``
    has no meta kernel and its Python fallback imports torch._dynamo, which costs
    seconds the first time, on every pipeline load."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        # nn.init.normal_(tensor=...) passes the tensor by keyword
        target = args[0] if args else kwargs.get("tensor")
        if name.endswith("_") and not name.endswith("__") and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def meta_shapes(build: Callable[[], nn.Module]) -> Dict[str, Tuple[torch.dtype, Tuple[int, ...]]]:
    """The state dict's dtypes and shapes of ``build()`` built on the meta device:
    exact, allocates nothing, takes milliseconds even for terabyte-sized settings."""
    with torch.device("meta"), _SkipInPlaceOnMeta():
        module = build()
    return {name: (t.dtype, tuple(t.shape)) for name, t in module.state_dict().items()}


def check_budget(where: str, shapes: Dict[str, Tuple[torch.dtype, Tuple[int, ...]]], fix: str) -> int:
    """Refuse a model over :func:`max_parameters`; RETURNS its parameter count."""
    sizes = {name: math.prod(shape) for name, (_, shape) in shapes.items()}
    total, limit = sum(sizes.values()), max_parameters()
    if total > limit:
        largest = ", ".join(f"{name} {tuple(shapes[name][1])}" for name in sorted(sizes, key=sizes.get)[::-1][:3])
        reason = (f"the model would have {total:,} parameters ({total * 4 / 2**30:.1f} GiB as float32), over the "
                  f"limit of {limit:,}; the largest tensors: {largest}")
        raise ModelSettingError(Errors.E116.format(where=where, reason=reason, fix=(
            f"{fix}, or raise the limit with the environment variable {MAX_PARAMETERS_ENV}")))
    return total


__all__ = ["BoolSetting", "DEFAULT_MAX_PARAMETERS", "FloatSetting", "IntSetting", "LIMITS", "MAX_LABEL_PRIOR",
           "MAX_PARAMETERS_ENV", "ModelSettingError", "Setting", "check_bool", "check_budget", "check_choice",
           "check_float", "check_int", "check_list", "max_parameters", "meta_shapes"]
