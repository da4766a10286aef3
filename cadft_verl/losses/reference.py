"""Dense, single-process reference form of the three losses (the engine loss must equal it)."""

from __future__ import annotations

import torch

from .registry import get_loss_spec
from .weights import compatibility_weights


def reference_loss(
    log_probs: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    beta: float = 1.0,
    eps: float = 1e-6,
    zscore: str = "standard",
    renormalize: bool = False,
) -> torch.Tensor:
    """Token-mean loss over a padded batch.

    log_probs: ``[B, T]`` log p_t of the target tokens (any value where ``mask`` is 0).
    mask: ``[B, T]`` 1 on response tokens.
    mode: ``sft`` | ``dft`` | ``cadft``.
    """
    spec = get_loss_spec(mode)
    mask = mask.to(log_probs.dtype)
    n_tokens = mask.sum()
    if n_tokens <= 0:
        raise ValueError("reference_loss: the batch has no response tokens")
    lp = torch.where(mask > 0, log_probs, torch.zeros_like(log_probs))
    per_token = -lp * mask
    if spec.token_weighted:
        per_token = per_token * torch.exp(lp).detach()
    if spec.sample_weighted:
        counts = mask.sum(-1)
        valid = counts > 0
        c = (-lp * mask).sum(-1).detach() / counts.clamp(min=1)
        w = compatibility_weights(c, beta=beta, eps=eps, valid=valid, zscore=zscore)
        if renormalize:
            w = w * valid.sum() / w[valid].sum()
        per_token = per_token * w.unsqueeze(-1)
    return per_token.sum() / n_tokens
