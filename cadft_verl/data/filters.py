"""Max-length filtering (token counts through the chat template). Decontamination lives in
:mod:`cadft_verl.data.decontaminate`, the normalised problem text for deduplication in :mod:`cadft_verl.math.ngrams`.
"""

from __future__ import annotations

from cadft_verl.data.decontaminate import Decontaminator, benchmark_files
from cadft_verl.math.ngrams import normalize_problem

__all__ = ["Decontaminator", "benchmark_files", "chat_lengths", "load_tokenizer", "normalize_problem"]


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"cannot load tokenizer {path!r}: {type(e).__name__}: {e}") from None


def chat_lengths(tokenizer, conversations: list[list[dict]], batch_size: int = 512) -> list[int]:
    """Token count of each chat-templated conversation (prompt + response, as the SFT dataset tokenizes it)."""
    lengths: list[int] = []
    for i in range(0, len(conversations), batch_size):
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations[i : i + batch_size]]
        enc = tokenizer(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lengths.extend(len(ids) for ids in enc)
    return lengths
