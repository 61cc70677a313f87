"""The output side of the MoETextCat model: the typed value its forward returns, the
output activation as a layer of its own, and the weighted auxiliary loss with its
gradient (the one place the component's aux-loss gradient is made).

The torch classifier returns logits; like thinc's ``Softmax`` layer trained with
cross-entropy, :func:`LabelActivation` turns them into probabilities and its backward
takes the gradient w.r.t. the *logits* (``probs - truth``) and passes it through, so
the softmax Jacobian is not applied a second time.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

from thinc.api import Model, get_array_module
from thinc.types import Floats1d, Floats2d, Ints2d


class TextCatOutput(NamedTuple):
    """What the ``MoETextCat.v1`` model returns for a batch of B docs with N tokens
    (arrays of the model's ops: numpy on CPU, cupy on GPU).

    scores: (B, L) probabilities (softmax if exclusive, else sigmoid).
    aux_losses: (2,) [load-balancing loss, router z-loss], summed over the MoE layers.
    expert_indices, expert_weights: (N, k) routing of the first MoE layer.
    contributions: (B, L) per path ("experts", "rules", "ngrams", "knowledge_bag");
        they sum to the logits behind ``scores``.

    Its backprop takes ``(d_scores, d_aux)``: the gradient w.r.t. the logits and
    w.r.t. ``aux_losses`` (None for none), see :func:`aux_loss`.
    """

    scores: Floats2d
    aux_losses: Floats1d
    expert_indices: Ints2d
    expert_weights: Floats2d
    contributions: Dict[str, Floats2d]


def LabelActivation(exclusive: bool) -> Model[Floats2d, Floats2d]:
    """logits (B, L) -> softmax (exclusive) or sigmoid probabilities; the backward
    passes the gradient through unchanged (it is already w.r.t. the logits)."""
    return Model("label_activation", _activation_forward, attrs={"exclusive": bool(exclusive)})


def _activation_forward(model: Model, logits: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    xp = model.ops.xp
    if model.attrs["exclusive"]:
        scores = model.ops.softmax(logits, axis=-1)
    else:
        # exp of -|x| never overflows; same values as torch.sigmoid, without thinc's
        # clipping at +-20
        e = xp.exp(-xp.abs(logits))
        scores = xp.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(logits.dtype, copy=False)

    def backprop(d_logits: Floats2d) -> Floats2d:
        return d_logits

    return scores, backprop


def aux_loss(aux_losses: Floats1d, weights: Sequence[float]) -> Tuple[float, Optional[Floats1d]]:
    """The weighted auxiliary loss of one batch and its gradient w.r.t. ``aux_losses``.

    aux_losses: (2,) [load-balancing, z-loss] from :class:`TextCatOutput`.
    weights: (load_balancing_weight, z_loss_weight).
    RETURNS: (loss value, d_aux (2,) to hand to the model's backprop; None when both
    weights are 0, so no backward pass runs through the router for nothing).
    """
    w_balance, w_z = (float(v) for v in weights)
    values = [float(v) for v in aux_losses]
    loss = w_balance * values[0] + w_z * values[1]
    if w_balance == 0.0 and w_z == 0.0:
        return loss, None
    xp = get_array_module(aux_losses)
    return loss, xp.asarray([w_balance, w_z], dtype=aux_losses.dtype)


__all__ = ["LabelActivation", "TextCatOutput", "aux_loss"]
