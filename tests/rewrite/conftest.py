"""Fixtures of the rewriting tests: training data where a known part of the targets is deliberately incompatible."""

from __future__ import annotations

import os
import random
import sys

import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "launcher"))

NOISE_ROWS = 64


def _noise(rng: random.Random, tok) -> str:
    """Tokens drawn uniformly from the vocabulary: far from the data's token distribution (high NLL)."""
    special = set(tok.all_special_ids)
    ids = [i for i in range(len(tok)) if i not in special]
    return tok.decode([rng.choice(ids) for _ in range(80)])


def _warm_model(model_dir: str, texts: list[str], out: str, steps: int = 60) -> str:
    """The tiny model after a short plain-torch LM warm-up on the clean texts, so that it knows the data's
    distribution (a random model gives every target about the same NLL, log(vocab))."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    enc = [tok(t, add_special_tokens=False).input_ids[:192] for t in texts]
    rng = random.Random(0)
    model.train()
    for _ in range(steps):
        batch = rng.sample(enc, 16)
        width = max(len(x) for x in batch)
        ids = torch.full((16, width), tok.pad_token_id)
        labels = torch.full((16, width), -100)
        for r, x in enumerate(batch):
            ids[r, : len(x)] = torch.tensor(x)
            labels[r, : len(x)] = torch.tensor(x)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    for name in ("generation_config.json",):
        src = os.path.join(model_dir, name)
        if os.path.exists(src):
            import shutil

            shutil.copy(src, os.path.join(out, name))
    return out


@pytest.fixture(scope="session")
def noisy_inputs(default_inputs, tmp_path_factory):
    """The CPU default's GSM8K sample with NOISE_ROWS assistant targets replaced by noise (incompatible)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_inputs["model"])
    src = os.path.join(default_inputs["data"], "sft", "train.parquet")
    rows = pq.read_table(src).to_pylist()
    rng = random.Random(0)
    noisy = sorted(rng.sample(range(len(rows)), NOISE_ROWS))
    for i in noisy:
        rows[i]["messages"][-1]["content"] = _noise(rng, tok)
    folder = tmp_path_factory.mktemp("noisy")
    clean = [m["content"] for i, r in enumerate(rows) if i not in set(noisy) for m in r["messages"]]
    model = _warm_model(default_inputs["model"], clean, str(folder / "model"))
    out = folder / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), out)
    return {"model": model, "data_file": str(out), "noisy": set(noisy), "rows": len(rows)}
