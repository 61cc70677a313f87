"""thinc glue for the pure-torch classifier: ``PyTorchWrapper_v3`` whose converters
only convert (numpy batch -> tensors on the model's device; the module's
:class:`~.torch.classifier.ClassifierOutput` -> :class:`TorchOutput` of xp arrays,
and the gradients back), and (de)serialisation of the weights as safetensors.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from thinc.api import ArgsKwargs, Model, Optimizer, PyTorchShim, PyTorchWrapper_v3, torch2xp, xp2torch
from thinc.types import Floats1d, Floats2d, Ints2d
from torch import nn

from ..errors import Errors
from .inputs import to_torch
from .torch.classifier import ClassifierOutput
from .weights import (Explain, WeightsFileError, check_finite, check_header, expected_state, parse_header,
                      read_file_header)


def _one_thread_after_fork() -> None:
    # OpenMP's thread pool does not survive fork(): a forked child (spaCy's
    # nlp.pipe(n_process=2) forks) hangs in its first parallel torch op. One
    # intra-op thread per worker process avoids it, as torch's DataLoader workers do.
    torch.set_num_threads(1)


# POSIX only: Windows has no fork (multiprocessing spawns fresh interpreters there), so
# there is nothing to reset
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def state_to_bytes(module: nn.Module) -> bytes:
    """All parameters and buffers of ``module`` as safetensors bytes (no pickle)."""
    return st_save({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()})


def state_from_bytes(module: nn.Module, data: bytes, device: Optional[torch.device] = None,
                     source: str = "<bytes>", explain: Optional[Explain] = None) -> nn.Module:
    """Load safetensors bytes into ``module`` on ``device``. The file's tensors must be
    exactly the module's (names, shapes, dtypes; checked on the header, before any
    tensor is allocated) and finite. ``explain`` names the model settings behind a
    shape difference (see ``architectures.load_weights``)."""
    header, _ = parse_header(data, len(data), source)
    check_header(header, expected_state(module), source, explain)
    try:
        state = st_load(data)
    except Exception as err:  # safetensors raises its own types; report them uniformly
        raise WeightsFileError(Errors.E032.format(path=source, reason=err)) from None
    check_finite(state, source)
    module.load_state_dict(state)
    if device is not None:
        module.to(device)
    return module


def state_from_file(module: nn.Module, path: Path, explain: Optional[Explain] = None) -> nn.Module:
    """:func:`state_from_bytes` for a file, whose header is checked before the rest is read."""
    header, _ = read_file_header(path)
    check_header(header, expected_state(module), str(path), explain)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise WeightsFileError(Errors.E032.format(path=path, reason=err.strerror or err)) from None
    return state_from_bytes(module, data, source=str(path), explain=explain)


def _deserialize(module: nn.Module, data: bytes, device: torch.device) -> nn.Module:
    return state_from_bytes(module, data, device)


def learn_rate_scales(module: nn.Module) -> Dict[str, float]:
    """{parameter name: learning-rate factor} for the parameters under a submodule
    with an ``lr_scale`` attribute other than 1 (the innermost one wins); the others
    learn at the optimizer's rate."""
    scales: Dict[str, float] = {}
    for prefix, sub in module.named_modules():
        scale = getattr(sub, "lr_scale", 1.0)
        if scale != 1.0:
            for name, _ in sub.named_parameters(prefix=prefix):
                scales[name] = scale
    return scales


class _ScaledOptimizer:
    """The thinc optimizer, each parameter's step scaled by its ``scales`` entry."""

    def __init__(self, optimizer: Optimizer, scales: Dict[str, float]) -> None:
        self.optimizer = optimizer
        self.scales = scales

    def __call__(self, key: Tuple[int, str], weights: Any, gradient: Any, *, lr_scale: float = 1.0) -> Any:
        return self.optimizer(key, weights, gradient, lr_scale=lr_scale * self.scales.get(key[1], 1.0))


class ClassifierShim(PyTorchShim):
    """thinc's ``PyTorchShim`` whose ``predict`` switches the module to eval mode by
    setting the ``training`` flags directly, under ``torch.inference_mode``, and whose
    updates honour each submodule's ``lr_scale`` (see `learn_rate_scales`).

    thinc's own ``predict`` calls ``module.eval()`` and ``module.train()`` around every
    batch: two recursive walks through ``nn.Module.__setattr__``, a fixed cost per batch
    that is a large share of the forward of a batch of headlines. The flags end as thinc
    leaves them (training), so nothing else sees a difference."""

    # (module, its learn_rate_scales): the scales are set when the module is built, so
    # they are found once per module, not at every update
    _lr_scales: Optional[Tuple[nn.Module, Dict[str, float]]] = None

    def finish_update(self, optimizer: Optimizer) -> None:
        if self._lr_scales is None or self._lr_scales[0] is not self._model:
            self._lr_scales = (self._model, learn_rate_scales(self._model))
        scales = self._lr_scales[1]
        super().finish_update(_ScaledOptimizer(optimizer, scales) if scales else optimizer)  # type: ignore[arg-type]

    def predict(self, inputs: ArgsKwargs) -> Any:
        modules = list(self._model.modules())
        for mod in modules:
            mod.__dict__["training"] = False
        try:
            autocast = (torch.autocast(device_type="cuda") if self._mixed_precision
                        else contextlib.nullcontext())
            with torch.inference_mode(), autocast:
                return self._model(*inputs.args, **inputs.kwargs)
        finally:
            for mod in modules:
                mod.__dict__["training"] = True


def make_shim(module: nn.Module) -> PyTorchShim:
    """A shim on thinc's current device that serialises with safetensors."""
    return ClassifierShim(module, serialize_model=state_to_bytes, deserialize_model=_deserialize)


class TorchOutput(NamedTuple):
    """:class:`~.torch.classifier.ClassifierOutput` as xp arrays (router logits of
    the later layers left out: nothing on the thinc side reads them). Its backprop
    takes ``(d_logits, d_aux)``, d_aux None for no aux-loss gradient."""

    logits: Floats2d
    aux_losses: Floats1d
    expert_indices: Ints2d
    expert_weights: Floats2d
    contributions: Dict[str, Floats2d]


def TorchClassifier() -> Model[Dict[str, Any], TorchOutput]:
    """The wrapper layer. It starts around an empty placeholder module; the outer
    model's ``init`` installs the real one with :func:`set_torch_module` once the
    label count and the knowledge id space are known."""
    return PyTorchWrapper_v3(
        nn.Module(),
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
        serialize_model=state_to_bytes,
        deserialize_model=_deserialize,
    )


def set_torch_module(layer: Model, module: nn.Module) -> None:
    layer.shims[0] = make_shim(module)


def get_torch_module(layer: Model) -> nn.Module:
    return layer.shims[0]._model


def _convert_inputs(model: Model, X: Dict[str, Any], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    return ArgsKwargs(args=(), kwargs=to_torch(X, device)), lambda d_inputs: None


def _convert_outputs(model: Model, X_Ytorch: Tuple[Any, ClassifierOutput],
                     is_train: bool) -> Tuple[TorchOutput, Callable]:
    _, out = X_Ytorch
    value = TorchOutput(
        torch2xp(out.logits if is_train else out.logits.detach()),
        torch2xp(out.aux_losses.detach().float()),
        torch2xp(out.expert_indices.detach()),
        torch2xp(out.expert_weights.detach().float()),
        {name: torch2xp(part.detach()) for name, part in out.contributions.items()},
    )

    def backprop(d_out: Tuple[Floats2d, Optional[Floats1d]]) -> ArgsKwargs:
        d_logits, d_aux = d_out
        tensors, grads = [out.logits], [xp2torch(d_logits, device=out.logits.device)]
        if d_aux is not None and out.aux_losses.requires_grad:
            tensors.append(out.aux_losses)
            grads.append(xp2torch(d_aux, device=out.aux_losses.device).to(out.aux_losses.dtype))
        return ArgsKwargs(args=(tuple(tensors),), kwargs={"grad_tensors": tuple(grads)})

    return value, backprop


__all__ = ["TorchClassifier", "TorchOutput", "get_torch_module", "set_torch_module", "state_from_bytes",
           "state_from_file", "state_to_bytes", "to_torch"]
