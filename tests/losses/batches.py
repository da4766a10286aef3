"""Synthetic verl batches (no_padding / nested layout) for exercising the engine loss without a model."""

from __future__ import annotations

import torch


def random_samples(n: int, seed: int = 0, min_len: int = 6, max_len: int = 20, prompt_len: int = 3, spread: float = 1.0):
    """n samples: (token log-probs [L], loss_mask [L]) with a prompt of ``prompt_len`` tokens, varied confidence."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        scale = 0.2 + spread * float(torch.rand((), generator=g)) * 3
        lp = -(torch.rand(length, generator=g) * scale)  # log p in (-scale, 0]
        mask = torch.zeros(length, dtype=torch.long)
        mask[prompt_len:] = 1
        out.append((lp, mask))
    return out


def nested_micro_batch(samples, dp_size: int = 1, batch_num_tokens: int | None = None, requires_grad=True, stats=None):
    """(model_output, data) as verl's engine passes them to the loss for one micro-batch."""
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.dataset_utils import DatasetPadMode

    lps = [lp.clone().requires_grad_(requires_grad) for lp, _ in samples]
    log_probs = torch.nested.as_nested_tensor(lps, layout=torch.jagged)
    loss_mask = torch.nested.as_nested_tensor([m for _, m in samples], layout=torch.jagged)
    if batch_num_tokens is None:
        batch_num_tokens = int(sum(int(m.sum()) for _, m in samples))
    non_tensor = {"dp_size": dp_size, "batch_num_tokens": batch_num_tokens, "pad_mode": DatasetPadMode.NO_PADDING}
    if stats is not None:
        non_tensor["cadft_stats"] = stats
    data = tu.get_tensordict(tensor_dict={"loss_mask": loss_mask}, non_tensor_dict=non_tensor)
    return {"log_probs": log_probs}, data, lps


def dense_aligned(samples):
    """Dense [B, T] log-probs and the next-token-aligned response mask (what the engine loss effectively uses)."""
    width = max(lp.numel() for lp, _ in samples)
    lp_d = torch.zeros(len(samples), width)
    mask_d = torch.zeros(len(samples), width)
    for i, (lp, m) in enumerate(samples):
        lp_d[i, : lp.numel()] = lp
        mask_d[i, : lp.numel() - 1] = m[1:].float()
    return lp_d, mask_d
