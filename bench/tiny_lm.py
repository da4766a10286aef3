"""Shared by the plain-torch benches: one chat-formatted demonstration as token ids + response mask, and the
per-token log-probs of a causal LM on it."""

from __future__ import annotations

import torch


def encode(tok, q, a, max_len=256):
    """(ids, mask): the ChatML prompt for question ``q`` then answer ``a``; mask 1 on the answer's tokens."""
    prompt = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True)
    if hasattr(prompt, "keys"):
        prompt = prompt["input_ids"]
    resp = tok(a + "<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = (list(prompt) + resp)[:max_len]
    mask = ([0] * len(prompt) + [1] * len(resp))[:max_len]
    return torch.tensor(ids), torch.tensor(mask)


def token_logprobs(model, ids):
    """log p of each next token of ``ids`` (length len(ids) - 1)."""
    logits = model(ids.unsqueeze(0)).logits[0, :-1].float()
    return torch.log_softmax(logits, -1).gather(-1, ids[1:].unsqueeze(-1)).squeeze(-1)
