"""``--model`` accepts a verl FSDP checkpoint (merged with verl's own model merger, cached), uses a checkpoint's HF
export as is, and names a folder without weights in a one-line error."""

import json
import os
import shutil

import pytest
import torch

from cadft_verl.eval import cli
from cadft_verl.eval.model_path import MERGED, ModelPathError, is_hf_model, resolve_model


def _weights(path):
    from transformers import AutoModelForCausalLM

    return {k: v.float() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def test_an_fsdp_checkpoint_is_merged_once_into_the_weights_it_holds(fsdp_checkpoint, small_model):
    actor = os.path.join(fsdp_checkpoint, "actor")
    merged = resolve_model(fsdp_checkpoint)
    assert merged == os.path.join(actor, MERGED) and is_hf_model(merged)
    # the same model whichever folder of the checkpoint is named, the weightless huggingface/ one included
    assert resolve_model(actor) == merged and resolve_model(os.path.join(actor, "huggingface")) == merged
    got, ref, base = _weights(merged), torch.load(os.path.join(actor, "reference.pt")), _weights(small_model)
    for key, value in ref.items():
        if key in got:  # tied embeddings are stored once
            torch.testing.assert_close(got[key], value, atol=2e-2, rtol=1e-2)  # verl's merger writes bfloat16
    assert max((got[k] - base[k]).abs().max() for k in got) > 0.05  # the checkpoint's weights, not the base's
    # cached: a second resolve does not merge again; a changed shard is merged again
    stamp = os.path.join(merged, "model.safetensors")
    before = os.stat(stamp).st_mtime_ns
    resolve_model(fsdp_checkpoint)
    assert os.stat(stamp).st_mtime_ns == before
    shard = os.path.join(actor, "model_world_size_2_rank_0.pt")
    os.utime(shard, ns=(before + 10**9, before + 10**9))
    resolve_model(fsdp_checkpoint)
    assert os.stat(stamp).st_mtime_ns != before


def test_a_checkpoint_with_an_hf_export_is_used_without_merging(fsdp_checkpoint, small_model, tmp_path):
    step = tmp_path / "global_step_1"
    shutil.copytree(fsdp_checkpoint, step, ignore=shutil.ignore_patterns(MERGED))
    export = step / "actor" / "huggingface"
    for name in os.listdir(small_model):  # what hf_model in save_contents writes: weights beside the config
        shutil.copy(os.path.join(small_model, name), export / name)
    assert resolve_model(str(step)) == str(export)
    assert not (step / "actor" / MERGED).exists()


def test_a_folder_without_weights_is_a_one_line_error_naming_it(tmp_path, small_model, capsys, two_problems):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    shutil.copy(os.path.join(small_model, "config.json"), empty / "config.json")
    with pytest.raises(ModelPathError, match="holds no model weights"):
        resolve_model(str(empty))
    rc = cli.main(["run", "--model", str(empty), "--out", str(tmp_path / "out"), "--benchmarks",
                   f"two={two_problems}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(empty) in err and "holds no model weights" in err
    assert "Traceback" not in err
    rc = cli.main(["run", "--model", str(tmp_path / "missing" / "model"), "--out", str(tmp_path / "out")])
    assert rc == 2 and "model folder not found" in capsys.readouterr().err
    assert resolve_model("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"  # a hub id passes through


def test_the_eval_cli_runs_on_a_checkpoint_folder(fsdp_checkpoint, tmp_path, two_problems):
    out = tmp_path / "out"
    rc = cli.main(["run", "--model", fsdp_checkpoint, "--out", str(out), "--benchmarks", f"two={two_problems}",
                   "--k", "1", "--greedy", "--max-new-tokens", "4", "--template", "chat", "--score-workers", "0"])
    assert rc == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]
    assert settings["label"] == "global_step_1" and settings["model_source"] == fsdp_checkpoint
    assert settings["model"] == os.path.join(fsdp_checkpoint, "actor", MERGED)
