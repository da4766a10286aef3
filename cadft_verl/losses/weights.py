"""Sample-level compatibility weights (METHOD.md section 2).

c_i = length-normalised NLL of demonstration i (no gradient); z_i = (c_i - loc) / (scale + eps) with loc/scale the
global batch's mean and population std (or median and 1.4826 MAD with ``zscore="robust"``);
w_i = exp(-beta * max(0, z_i)). Samples without response tokens are left out of loc/scale and get weight 1 (they
contribute no tokens to the loss anyway). One valid sample or a batch of equal c gives all-ones weights.
"""

from __future__ import annotations

import torch

MAD_TO_STD = 1.4826


def batch_location_scale(c: torch.Tensor, valid: torch.Tensor | None = None, zscore: str = "standard"):
    """Location and scale of the valid entries of ``c`` as python floats; (0.0, 0.0) when fewer than two."""
    c = c.detach().double()
    if valid is not None:
        c = c[valid]
    if c.numel() == 0:
        return 0.0, 0.0
    if zscore == "standard":
        loc = c.mean()
        scale = c.std(unbiased=False) if c.numel() > 1 else torch.zeros((), dtype=c.dtype)
    elif zscore == "robust":
        loc = c.median()
        scale = MAD_TO_STD * (c - loc).abs().median()
    else:
        raise ValueError(f"unknown zscore mode {zscore!r}")
    return float(loc), float(scale)


def z_scores(c: torch.Tensor, loc: float, scale: float, eps: float = 1e-6) -> torch.Tensor:
    """z = (c - loc) / (scale + eps); all zeros when scale is 0 (degenerate batch)."""
    c = c.detach()
    if scale <= 0.0:
        return torch.zeros_like(c)
    return (c - loc) / (scale + eps)


def weights_from_z(z: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """w = exp(-beta * max(0, z)), in (0, 1]."""
    return torch.exp(-beta * torch.clamp(z, min=0.0))


def compatibility_weights(
    nll: torch.Tensor,
    beta: float = 1.0,
    eps: float = 1e-6,
    valid: torch.Tensor | None = None,
    zscore: str = "standard",
) -> torch.Tensor:
    """Per-sample length-normalised NLL of the whole global batch ``[B]`` -> CADFT sample weights ``[B]``.

    ``valid`` (bool ``[B]``) marks samples that have response tokens; the others are excluded from the batch
    statistics and get weight 1. Non-finite NLL is an error naming the sample.
    """
    if nll.dim() != 1:
        raise ValueError(f"compatibility_weights expects a 1-D tensor of per-sample NLL, got shape {tuple(nll.shape)}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    nll = nll.detach()
    if valid is None:
        valid = torch.ones_like(nll, dtype=torch.bool)
    bad = valid & ~torch.isfinite(nll)
    if bad.any():
        idx = bad.nonzero().flatten().tolist()
        raise ValueError(f"non-finite NLL for sample(s) at batch position(s) {idx}")
    loc, scale = batch_location_scale(nll, valid, zscore)
    z = z_scores(nll, loc, scale, eps)
    w = weights_from_z(z, beta)
    return torch.where(valid, w, torch.ones_like(w))
