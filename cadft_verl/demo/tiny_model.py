"""Build a tiny, local Qwen2-style causal LM and ChatML tokenizer (no model hub needed).

Used by the CPU default of the main job, by tests and by benchmarks. The tokenizer is a byte-level BPE trained
on the given texts, with a ChatML chat template, so verl's SFT/RL datasets and vLLM treat it like a real chat model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_DEFAULT_CORPUS = [
    "You are a helpful assistant.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May? 48/2 = 24 clips in May. 48+24 = 72.",
    "The answer is \\boxed{72}. #### 72",
    "0 1 2 3 4 5 6 7 8 9 + - * / = ( ) { } [ ] ^ _ \\frac \\sqrt $ . , : ; ? !",
]


def build_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it as a ChatML ``PreTrainedTokenizerFast``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    corpus = list(texts) if texts is not None else []
    corpus = corpus + _DEFAULT_CORPUS
    tok = Tokenizer(models.BPE(unk_token=None))
    # Qwen2's own normaliser and pre-tokenizer (digits one by one): AutoTokenizer loads this folder as a
    # Qwen2Tokenizer (config model_type qwen2), which rebuilds exactly these, so every loader (verl, vLLM,
    # transformers) encodes a text the same way as the tokenizer was trained
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    hf_tok.chat_template = CHATML_TEMPLATE
    return hf_tok


def build_tiny_model(
    out_dir: str,
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 128,
    seed: int = 0,
) -> str:
    """Write a randomly initialised tiny Qwen2 model plus tokenizer to ``out_dir`` and return the path.

    head_dim = hidden_size / num_heads must stay >= 32 for vLLM's CPU backend.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    os.makedirs(out_dir, exist_ok=True)
    tokenizer = build_tokenizer(texts, vocab_size=vocab_size)
    tokenizer.save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out_dir)
    GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    ).save_pretrained(out_dir)
    return out_dir


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out_dir")
    args = p.parse_args()
    print(build_tiny_model(args.out_dir))
