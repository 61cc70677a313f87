"""thinc glue for the pure-torch classifier: ``PyTorchWrapper_v3`` with converters
that move the numpy batch onto the model's device, pass the MoE's auxiliary losses
into the same backward pass, and (de)serialise weights as safetensors.

The wrapped module returns a :class:`~.torch.classifier.ClassifierOutput`; thinc
sees only the scores. The auxiliary loss values and, when asked for, the routing
are left in the layer's ``attrs`` ("aux_values", "routing") for the component.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from thinc.api import ArgsKwargs, Model, PyTorchShim, PyTorchWrapper_v3, torch2xp, xp2torch
from torch import nn

from ..errors import Errors
from .weights import (Explain, WeightsFileError, check_finite, check_header, expected_state, parse_header,
                      read_file_header)


def _one_thread_after_fork() -> None:
    # OpenMP's thread pool does not survive fork(): a forked child (spaCy's
    # nlp.pipe(n_process=2) forks) hangs in its first parallel torch op. One
    # intra-op thread per worker process avoids it, as torch's DataLoader workers do.
    torch.set_num_threads(1)


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


def make_shim(module: nn.Module) -> PyTorchShim:
    """A shim on thinc's current device that serialises with safetensors."""
    return PyTorchShim(module, serialize_model=state_to_bytes, deserialize_model=_deserialize)


def TorchClassifier() -> Model[Dict[str, Any], Any]:
    """The wrapper layer. It starts around an empty placeholder module; the outer
    model's ``init`` installs the real one with :func:`set_torch_module` once the
    label count and the knowledge id space are known."""
    model = PyTorchWrapper_v3(
        nn.Module(),
        convert_inputs=_convert_inputs,
        convert_outputs=_convert_outputs,
        serialize_model=state_to_bytes,
        deserialize_model=_deserialize,
    )
    model.attrs.update({"aux_values": np.zeros(2, dtype="f"), "aux_weights": (0.01, 0.001),
                        "store_routing": False, "routing": None})
    return model


def set_torch_module(layer: Model, module: nn.Module) -> None:
    layer.shims[0] = make_shim(module)


def get_torch_module(layer: Model) -> nn.Module:
    return layer.shims[0]._model


def to_torch(value: Any, device: torch.device) -> Any:
    """numpy arrays (also inside dicts) -> tensors on ``device``; other values as they are."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value)).to(device)
    if isinstance(value, dict):
        return {k: to_torch(v, device) for k, v in value.items()}
    return value


def _convert_inputs(model: Model, X: Dict[str, Any], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    device = model.shims[0].device
    return ArgsKwargs(args=(), kwargs=to_torch(X, device)), lambda d_inputs: None


def _convert_outputs(model: Model, X_Ytorch: Tuple[Any, Any], is_train: bool) -> Tuple[Any, Callable]:
    _, out = X_Ytorch
    model.attrs["aux_values"] = out.aux.detach().float().cpu().numpy()
    if model.attrs["store_routing"]:
        model.attrs["routing"] = (
            out.expert_indices.detach().cpu().numpy(),
            out.expert_weights.detach().float().cpu().numpy(),
        )
    scores = torch2xp(out.scores.detach() if not is_train else out.scores)

    def backprop(d_scores: Any) -> ArgsKwargs:
        d_torch = xp2torch(d_scores, device=out.scores.device)
        tensors, grads = [out.scores], [d_torch]
        if out.aux.requires_grad:
            w_balance, w_z = model.attrs["aux_weights"]
            tensors.append(out.aux)
            grads.append(torch.tensor([w_balance, w_z], dtype=out.aux.dtype, device=out.aux.device))
        return ArgsKwargs(args=(tuple(tensors),), kwargs={"grad_tensors": tuple(grads)})

    return scores, backprop


__all__ = ["TorchClassifier", "get_torch_module", "set_torch_module", "state_from_bytes", "state_from_file",
           "state_to_bytes", "to_torch"]
