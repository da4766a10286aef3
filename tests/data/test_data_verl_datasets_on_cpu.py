"""verl's own MultiTurnSFTDataset and RLHFDataset load the converted files."""

from __future__ import annotations

import pandas as pd
import torch
from data_test_utils import write_jsonl
from omegaconf import OmegaConf

from cadft_verl.data.convert import ConvertConfig, convert
from cadft_verl.demo.tiny_model import build_tokenizer


def _sample(tmp_path):
    """GSM8K-format rows (synthetic, so this runs without the benchmark folder) -> 16 train + 4 val."""
    rows = [
        {
            "question": f"Tom has {i} apples and buys {i + 3} more. How many apples does he have?",
            "answer": f"He buys {i + 3} apples.\nSo he has {i}+{i + 3}=<<{i}+{i + 3}={2 * i + 3}>>{2 * i + 3}."
            f"\n#### {2 * i + 3}",
        }
        for i in range(20)
    ]
    convert(
        ConvertConfig(
            out=str(tmp_path / "s"),
            source="gsm8k",
            input=write_jsonl(tmp_path / "g.jsonl", rows),
            val_size=4,
            decontaminate=False,
            progress=False,
            quiet=True,
        )
    )
    return tmp_path / "s"


def test_multiturn_sft_dataset_loads_and_masks_the_response(tmp_path):
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    out = _sample(tmp_path)
    df = pd.read_parquet(out / "sft/train.parquet")
    tok = build_tokenizer([m["content"] for msgs in df.messages for m in msgs])
    cfg = OmegaConf.create({"max_length": 1024, "truncation": "error", "messages_key": "messages"})
    ds = MultiTurnSFTDataset(str(out / "sft/train.parquet"), tok, cfg)
    assert len(ds) == 16
    for i in range(3):
        item = ds[i]
        ids, mask, attn = item["input_ids"], item["loss_mask"], item["attention_mask"]
        assert ids.shape == mask.shape == attn.shape == (1024,)
        n = int(attn.sum())
        assert 0 < int(mask.sum()) < n and mask[n:].sum() == 0
        # the loss mask covers exactly the assistant response (+ its end-of-turn token)
        response = df.messages[i][-1]["content"]
        trained = tok.decode(ids[mask.bool()])
        assert trained.startswith(response) and trained[len(response) :].strip() in ("<|im_end|>", "<|im_end|>\n")
        assert "Please reason step by step" in tok.decode(ids[:n][~mask[:n].bool()])


def test_rlhf_dataset_loads_prompts_and_ground_truth(tmp_path):
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    out = _sample(tmp_path)
    df = pd.read_parquet(out / "rl/val.parquet")
    tok = build_tokenizer([m["content"] for msgs in df.prompt for m in msgs])
    cfg = OmegaConf.create(
        {
            "max_prompt_length": 4096,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    ds = RLHFDataset(str(out / "rl/val.parquet"), tok, cfg)
    assert len(ds) == 4
    batch = collate_fn([ds[i] for i in range(len(ds))])
    assert isinstance(batch["dummy_tensor"], torch.Tensor)
    assert list(batch["index"]) == list(df.extra_info.map(lambda e: e["index"]))
    for raw, rm in zip(batch["raw_prompt"], batch["reward_model"]):
        assert [m["role"] for m in raw] == ["system", "user"]
        assert raw[1]["content"].endswith("put your final answer within \\boxed{}.")
        assert rm["style"] == "rule" and rm["ground_truth"].lstrip("-").isdigit()
    assert set(batch["data_source"]) == {"cadft/gsm8k"}
