"""Optional int8 dynamic quantisation of a loaded pipeline's classifier, for CPU
inference (after ``spacy.load``; the weights on disk stay float32).

The dense ``nn.Linear`` layers of the encoder's window blocks and the output layer
get int8 weights with activations quantised on the fly (PyTorch's dynamic
quantisation). The experts (batched 3-D parameters, run by the MoE's own kernels),
the router (its weights are read directly) and the embedding tables stay float32.
A quantised pipeline is for prediction only: saving it raises E079 (packed int8
weights are not tensors that safetensors can hold).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import torch
from spacy.language import Language
from torch import nn

from ..errors import Errors
from ..ml.architectures import torch_module
from ..ml.wrapper import set_torch_module
from .pipelines import find_component


def quantizable_layers(module: nn.Module) -> List[str]:
    """Names of the Linear layers that :func:`quantize_pipeline` converts."""
    names = []
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear) and (name == "output" or (name.startswith("encoder.blocks.")
                                                                and name.rsplit(".", 1)[-1] in ("up", "down"))):
            names.append(name)
    return names


def quantize_pipeline(nlp: Language, name: Optional[str] = None) -> List[str]:
    """Quantise the classifier of component ``name`` (default: the first sparse-expert
    textcat) in place. RETURNS the names of the quantised layers."""
    name = name or find_component(nlp)
    if name is None:
        raise ValueError(f"no sparse_expert_textcat component in the pipeline {nlp.pipe_names}")
    layer = nlp.get_pipe(name).model.layers[0]
    module = torch_module(nlp.get_pipe(name).model)
    if next(module.parameters()).device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on CPU only; load the pipeline without a GPU")
    names = quantizable_layers(module)
    if not names:
        return []
    try:
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
    except ImportError as err:  # pragma: no cover - removed in a future torch
        raise ImportError(f"this torch ({torch.__version__}) has no dynamic quantisation: {err}") from err
    spec: Dict[str, object] = {n: default_dynamic_qconfig for n in names}
    with warnings.catch_warnings():
        # torch.ao.quantization and quantized tensors are deprecated (torchao replaces them)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.*", category=UserWarning)
        quantized = quantize_dynamic(module.eval(), qconfig_spec=spec, dtype=torch.qint8)
    set_torch_module(layer, quantized)
    pipe = nlp.get_pipe(name)

    def refuse(*args: object, **kwargs: object) -> None:
        raise ValueError(Errors.E079.format(name=name))

    # packed int8 weights are not tensors safetensors can hold: refuse clearly
    pipe.to_disk = refuse  # type: ignore[method-assign]
    pipe.to_bytes = refuse  # type: ignore[method-assign]
    return names


__all__ = ["quantizable_layers", "quantize_pipeline"]
