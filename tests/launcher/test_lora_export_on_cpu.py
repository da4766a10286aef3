"""The hand-over of a LoRA stage 1 without a launch: verl's HF export of a LoRA actor (the PEFT model's keys, as
verl's FSDP checkpoint manager writes it, with its lora_train_meta.json) becomes the merged model, with the adapter
and its lora_alpha beside it; the eval's --model takes such a checkpoint, its export or its adapter folder."""

import json
import os
import shutil

import pytest
import torch

from cadft_verl.eval.model_path import ModelPathError, resolve_model
from cadft_verl.lora.config import LoraOptions
from cadft_verl.lora.export import is_peft_export, merge_lora_export


@pytest.fixture(scope="module")
def lora_checkpoint(tmp_path_factory):
    """A verl-like LoRA checkpoint folder (global_step_N) and the PEFT model it holds."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cadft_verl.demo.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("lora_ckpt")
    base_dir = build_tiny_model(str(root / "base"))
    torch.manual_seed(0)
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
                          LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False,
                                     task_type="CAUSAL_LM"))
    step = root / "global_step_3"
    hf = step / "huggingface"
    # what verl's FSDPCheckpointManager does: the plain architecture saved with the PEFT model's state dict
    AutoModelForCausalLM.from_pretrained(base_dir).save_pretrained(hf, state_dict=peft.state_dict())
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(hf)
    (step / "lora_train_meta.json").write_text(json.dumps({"r": 4, "lora_alpha": 8, "task_type": "CAUSAL_LM"}))
    return {"step": step, "base": base_dir, "peft": peft.eval()}


def _logits(model):
    with torch.no_grad():
        return model(input_ids=torch.arange(3, 33).reshape(2, 15)).logits


def _same_model(folder, peft):
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return torch.allclose(_logits(merged), _logits(peft), atol=1e-5)


def test_eval_merges_a_lora_checkpoint_and_its_export(lora_checkpoint, tmp_path):
    step = tmp_path / "global_step_3"
    shutil.copytree(lora_checkpoint["step"], step)
    assert is_peft_export(str(step / "huggingface"))
    merged = resolve_model(str(step))
    assert merged == str(step / "huggingface_merged") and _same_model(merged, lora_checkpoint["peft"])
    assert resolve_model(str(step / "huggingface")) == merged  # the export itself; cached: not merged again
    assert is_peft_export(str(step / "huggingface"))  # the checkpoint is left as it was
    config = json.loads((step / "huggingface_merged" / "lora_adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8


def test_the_hand_over_merges_in_place_with_the_adapter_beside_it(lora_checkpoint, tmp_path):
    from transformers import AutoTokenizer

    step = tmp_path / "global_step_3"
    shutil.copytree(lora_checkpoint["step"], step)
    hf = merge_lora_export(str(step), LoraOptions(lora_rank=4, lora_alpha=8), base_model=lora_checkpoint["base"])
    assert hf == str(step / "huggingface") and not is_peft_export(hf)
    assert _same_model(hf, lora_checkpoint["peft"])
    assert AutoTokenizer.from_pretrained(hf).vocab_size == AutoTokenizer.from_pretrained(lora_checkpoint["base"]).vocab_size
    meta = json.loads((step / "huggingface" / "lora_merged.json").read_text())
    assert meta["lora_rank"] == 4 and meta["lora_alpha"] == 8 and meta["base_model"] == lora_checkpoint["base"]
    adapter = json.loads((step / "lora_adapter" / "adapter_config.json").read_text())
    assert adapter["lora_alpha"] == 8 and adapter["base_model_name_or_path"] == lora_checkpoint["base"]
    from_adapter = resolve_model(str(step / "lora_adapter"))  # the adapter folder, merged into its base
    assert from_adapter == str(step / "lora_adapter" / "merged") and _same_model(from_adapter, lora_checkpoint["peft"])
    before = os.stat(step / "huggingface" / "model.safetensors").st_mtime_ns
    merge_lora_export(str(step), LoraOptions(lora_rank=4, lora_alpha=8))  # a rerun (after a kill) changes nothing
    assert os.stat(step / "huggingface" / "model.safetensors").st_mtime_ns == before


def test_a_lora_checkpoint_without_a_sound_lora_alpha_is_refused(lora_checkpoint, tmp_path):
    step = tmp_path / "global_step_3"
    shutil.copytree(lora_checkpoint["step"], step)
    (step / "lora_train_meta.json").write_text(json.dumps({"r": 4, "lora_alpha": 0}))
    with pytest.raises(ModelPathError, match=r"lora_alpha is 0 \(verl saves 0 when model.lora_alpha was not set\)"):
        resolve_model(str(step))
