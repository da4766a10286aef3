"""SFT / DFT / CADFT losses (METHOD.md sections 1-2).

Public surface:
- ``compatibility_weights(nll, beta=1.0, eps=1e-6)``: per-sample length-normalised NLL of the global batch -> weights.
- ``reference_loss(log_probs, mask, mode, beta=1.0, eps=1e-6)``: dense single-process form of the three losses.
- ``make_loss_fn(cfg)`` / ``EngineLoss``: the loss verl's engine calls per micro-batch.
- ``LossConfig``: the typed ``cadft:`` config block.
"""

from .config import LossConfig
from .engine_loss import STATS_KEY, EngineLoss, make_loss_fn
from .reference import reference_loss
from .registry import LossSpec, get_loss_spec, loss_names, register_loss
from .weights import batch_location_scale, compatibility_weights, weights_from_z, z_scores

__all__ = [
    "STATS_KEY",
    "EngineLoss",
    "LossConfig",
    "LossSpec",
    "batch_location_scale",
    "compatibility_weights",
    "get_loss_spec",
    "loss_names",
    "make_loss_fn",
    "reference_loss",
    "register_loss",
    "weights_from_z",
    "z_scores",
]
