"""The CPU default's base model: a tiny Qwen2 pretrained on clean demonstrations of part of the arithmetic task.

A random model learns nothing from RL (every reward is 0), and a model that already solves everything leaves no
room for SFT, RL or rewriting. This base is trained (plain PyTorch, about 2.5 minutes on 2 cores, cached) on clean
demonstrations of :mod:`cadft_verl.tasks.arith`: one- and two-step problems, and a few (``long_share``, 5%) with
three steps. It is trained long enough (1600 steps over 16000 rows) to compute held-out problems rather than recall
trained ones: it copies the question's numbers into a chain of equations and works them out, three-step ones
included. Like a base model pretrained on raw text, it does not always give its answer in the form the prompt asks
for: its demonstrations end in ``\\boxed{N}`` for problems about the first ``boxed_items`` (4 of 8) items, but for
the other items only one in five does (``other_boxed``), the rest end "The answer is N.". So it solves nearly every
held-out problem about the first items and scores almost none of the others: the answers it computes right but does
not box are scored wrong. That format is the lesson stage 1 starts and GRPO finishes (docs/cpu-default.md). Its
tokenizer is a byte-level BPE trained on the task's texts (:func:`cadft_verl.demo.tiny_model.build_tokenizer`).

The result is cached: a folder whose ``pretrain.json`` records the same settings is reused as it is. With no folder
given, the cache is ``$CADFT_CACHE_DIR`` (default ``~/.cache/cadft_verl``) ``/arith_base_<hash of the settings>``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass

from cadft_verl.tasks import arith
from cadft_verl.math.prompts import DEFAULT_TEMPLATE, get_template
from cadft_verl.utils.files import atomic_folder, write_json


@dataclass(frozen=True)
class PretrainConfig:
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4  # head_dim 32: the smallest vLLM's CPU backend takes
    intermediate_size: int = 256
    vocab_size: int = 512
    rows: int = 16000  # clean demonstrations (problems may come back in other words)
    max_steps: int = 3  # the part of the task the base is shown: problems with at most this many steps
    long_share: float | None = 0.05  # the share of its problems with max_steps steps (None: all counts equally)
    boxed_items: int = 4  # problems about the first this many of arith.ITEMS end in \boxed{N}
    other_boxed: float = 0.2  # the share of the other items' demonstrations that do; the rest end "The answer is N."
    steps: int = 1600  # optimizer steps: at 400-800 the base recalls trained problems, at 1600 it computes new ones
    batch_size: int = 32
    lr: float = 3e-3
    warmup: float = 0.05
    final_lr: float = 3e-4  # the cosine ends here, not at 0: the base then takes fine-tuning at this lr in stride
    seed: int = 0
    template: str = DEFAULT_TEMPLATE
    version: int = 2  # bump when the recipe changes, so old caches are not reused

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def cache_dir(cfg: PretrainConfig) -> str:
    root = os.environ.get("CADFT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "cadft_verl")
    return os.path.join(root, f"arith_base_{cfg.digest()}")


def _cached(out: str, cfg: PretrainConfig) -> bool:
    try:
        with open(os.path.join(out, "pretrain.json")) as f:
            return json.load(f)["config"] == asdict(cfg)
    except (OSError, ValueError, KeyError):
        return False


def pretrained_base(out: str | None = None, cfg: PretrainConfig | None = None, log=print) -> str:
    """The base model's folder: ``out`` (or the cache) when it already holds this config's model, else trained
    there now. Written to a temporary folder and renamed, so an interrupted run leaves nothing half-written."""
    cfg = cfg or PretrainConfig()
    out = os.path.abspath(out or cache_dir(cfg))
    if _cached(out, cfg):
        return out
    if os.path.exists(out):
        raise FileExistsError(f"{out} exists but holds no base model of these settings (pretrain.json); remove it")
    with atomic_folder(out) as tmp:
        record = train_base(tmp, cfg, log=log)
        write_json(os.path.join(tmp, "pretrain.json"), record)
    return out


def boxes_answer(row: dict, cfg: PretrainConfig) -> bool:
    """Whether this pretraining demonstration ends in ``\\boxed{N}`` (else "The answer is N."): every one about the
    first ``boxed_items`` items, a seeded ``other_boxed`` share of the others (by a hash of the row id)."""
    if row["item"] in arith.ITEMS[: cfg.boxed_items]:
        return True
    return int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 1000 < 1000 * cfg.other_boxed


def _encode(tokenizer, template, row: dict, boxed: bool = True) -> tuple[list[int], list[int]]:
    from cadft_verl.tasks.gsm8k import gsm8k_response, gsm8k_steps
    from cadft_verl.math.extract import gsm8k_final

    prompt = tokenizer.apply_chat_template(template.messages(row["question"]), tokenize=False,
                                           add_generation_prompt=True)
    final = gsm8k_final(row["answer"])
    if boxed:
        response = gsm8k_response(row["answer"], final)
    else:
        response = gsm8k_steps(row["answer"]) + f"\nThe answer is {final}."
    response += tokenizer.eos_token + "\n"
    return (tokenizer(prompt, add_special_tokens=False)["input_ids"],
            tokenizer(response, add_special_tokens=False)["input_ids"])


def train_base(out: str, cfg: PretrainConfig, log=print) -> dict:
    """Build the tokenizer and a random tiny Qwen2 and train it on the clean demonstrations, answer formats as
    :func:`boxes_answer` says (loss on the response tokens only, AdamW, one-cycle schedule). Returns the record
    written to ``pretrain.json``."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    from cadft_verl.demo.tiny_model import build_tokenizer

    t0 = time.time()
    template = get_template(cfg.template)
    rows = arith.pretrain_rows(cfg.rows, seed=cfg.seed, max_steps=cfg.max_steps, long_share=cfg.long_share)
    # the tokenizer learns the prompt as the model sees it (system turn, instruction) and every kind's words
    corpus = ["\n".join(f"{m['role']}\n{m['content']}" for m in template.messages(r["question"]))
              + "\nassistant\n" + r["answer"]
              for r in rows + arith.train_rows(400, seed=cfg.seed + 7)]
    tokenizer = build_tokenizer(corpus, vocab_size=cfg.vocab_size)
    data = [_encode(tokenizer, template, r, boxes_answer(r, cfg)) for r in rows]

    torch.manual_seed(cfg.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
        max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    warm = max(1, int(cfg.warmup * cfg.steps))

    def lr_at(step: int) -> float:
        if step < warm:
            return cfg.lr * (step + 1) / warm
        cos = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, cfg.steps - warm)))
        return cfg.final_lr + (cfg.lr - cfg.final_lr) * cos

    rng = random.Random(cfg.seed)
    pad = tokenizer.pad_token_id
    losses = []
    model.train()
    for step in range(cfg.steps):
        batch = rng.sample(data, min(cfg.batch_size, len(data)))
        length = max(len(p) + len(r) for p, r in batch)
        ids = torch.full((len(batch), length), pad)
        labels = torch.full((len(batch), length), -100)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        for i, (p, r) in enumerate(batch):
            seq = p + r
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, len(p) : len(seq)] = torch.tensor(r)
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % max(1, cfg.steps // 10) == 0:
            log(f"[cadft-verl] base model: pretraining step {step + 1}/{cfg.steps}, loss "
                f"{sum(losses[-20:]) / len(losses[-20:]):.3f} ({time.time() - t0:.0f} s)")

    os.makedirs(out, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=pad, do_sample=True).save_pretrained(out)
    return {"config": asdict(cfg), "final_loss": sum(losses[-20:]) / len(losses[-20:]),
            "seconds": round(time.time() - t0, 1), "parameters": sum(p.numel() for p in model.parameters())}
