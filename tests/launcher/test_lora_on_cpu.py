"""The one launch with a LoRA warm start (cadft.model.lora_rank=8) on the embedded CPU default, one of its Ray actor
workers killed in stage 1 (SIGKILL, as the OOM killer would: the launch's watchdog stops it, naming the worker) and
rerun: stage 1 trains only the adapter (its rewrite round generating through verl's vLLM rollout with the adapter
merged into the weights), resumes from its checkpoint with the same adapter, and hands over a merged model that
transformers loads and stage 2 (verl's GRPO on vLLM) starts from; the eval stage writes the report. Bad LoRA input:
tests/launcher/test_lora_inputs_on_cpu.py; the merge itself: tests/launcher/test_lora_export_on_cpu.py."""

import json
import os

import pandas as pd
import pytest
import torch
from launch import ONE_RANK, launch, launch_and_kill_a_worker_when

from cadft_verl.demo.cpu_default import launch_overrides

STEPS, SAVE = 6, 3


def _rows(path):
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def _args(inputs, run):
    over = [a for a in launch_overrides(inputs["data"], inputs["model"], str(run), stage1_steps=STEPS, rl_steps=1)
            if not a.startswith(("eval.limit", "eval.optional_benchmarks", "cadft.optim.lr"))]
    return ["recipe=cadft_then_grpo", *over,
            "cadft.model.lora_rank=8", "cadft.model.lora_alpha=16", "cadft.optim.lr=2e-3",
            f"cadft.trainer.save_freq={SAVE}",
            # stage 2 trains a fresh adapter of its own (verl's actor LoRA; its rollout gets it merged)
            "actor_rollout_ref.model.lora_rank=8", "actor_rollout_ref.model.lora_alpha=16",
            "actor_rollout_ref.model.lora.merge=true",
            # one rewrite round, after the checkpoint's step (in the killed launch)
            f"cadft.rewrite.start={SAVE}", "cadft.rewrite.every=100",
            # eval: the held-out problems of rl/val.parquet (the benchmark's first 48), so that stage 2's validation
            # before its first step and the eval stage score the stage-1 model on the same problems
            "eval.limit=48", "eval.optional_benchmarks=[]",
            "eval.readiness_k=2",  # RL readiness at a small cost (tested in tests/eval)
            *ONE_RANK]


@pytest.mark.vllm
def test_lora_warm_start_resumes_and_hands_over_a_merged_model(tmp_path, default_inputs):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    args = _args(default_inputs, run)
    history = run / "metrics" / "cadft-verl" / "cadft_then_grpo_stage1.jsonl"
    tracker = run / "stage1_cadft" / "latest_checkpointed_iteration.txt"

    def past_checkpoint():
        return tracker.exists() and tracker.read_text().strip() == str(SAVE) and \
            any(r["step"] == SAVE + 1 for r in _rows(history))

    fault = launch_and_kill_a_worker_when(args, past_checkpoint, timeout=900)
    assert fault["ok"], "stage 1 never got past its checkpoint"
    assert not (run / "stage1_cadft" / "COMPLETE.json").exists()
    # the watchdog stopped the launch within a minute (not a hang), naming the dead worker and the way on
    pid, title = fault["killed"]
    assert fault["seconds"] is not None and fault["seconds"] < 60 and fault["rc"] != 0, fault
    log = (run / "launch.log").read_text(errors="replace")
    message = [line for line in log.splitlines() if "stage 1 (cadft) stopped after step" in line]
    assert message and f"(pid {pid}) died: " in message[-1], (fault, log[-3000:])
    assert "resumes from its last checkpoint when the launch is rerun" in message[-1]
    killed = {r["step"]: r["data"] for r in _rows(history)}
    proc = launch(args, timeout=1500)
    # the resumed launch's console: the log file first, stage 1's progress from its checkpoint on, Ray's output only
    # in the log
    lines = proc.stdout.splitlines()
    assert lines[0] == f"[cadft-verl] full log (Ray, vLLM, verl): {run / 'launch.log'}"
    assert f"stage 1 resumes from {run / 'stage1_cadft' / f'global_step_{SAVE}'}" in proc.stdout
    bars = [line for line in lines if line.startswith("stage 1 (cadft) [")]
    assert [b.split("]")[1].split()[0] for b in bars] == [f"{s}/{STEPS}" for s in range(SAVE + 1, STEPS + 1)], bars
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr

    rows = {r["step"]: r["data"] for r in _rows(history)}
    assert sorted(rows) == list(range(1, STEPS + 1))
    # the rewrite round generated with the trained adapter (merged into vLLM's weights) and did not fail
    assert rows[SAVE]["stage1/rewrite/failed"] == 0 and rows[SAVE]["stage1/rewrite/generated"] > 0
    # resumed with the same adapter: the step after the checkpoint (the same samples) sees the same model as in the
    # killed launch, to float rounding (the NLL falls by ~1 nat over the first steps at this learning rate, so a
    # fresh adapter, i.e. the base model, would be far off)
    redone = SAVE + 1
    assert rows[redone]["stage1/cadft/nll"] == pytest.approx(killed[redone]["stage1/cadft/nll"], abs=1e-3)
    assert rows[redone]["stage1/cadft/w_mean"] == pytest.approx(killed[redone]["stage1/cadft/w_mean"], abs=1e-3)

    # the hand-over: a plain HF model (the base's config and tokenizer), the adapter and its lora_alpha beside it
    summary = json.loads((run / "summary.json").read_text())
    s1, s2 = summary["results"]["stage1"], summary["results"]["stage2"]
    export = s1["hf_model"]
    assert json.loads(open(os.path.join(export, "lora_merged.json")).read())["lora_alpha"] == 16
    adapter = os.path.join(os.path.dirname(export), "lora_adapter")
    config = json.loads(open(os.path.join(adapter, "adapter_config.json")).read())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    merged = AutoModelForCausalLM.from_pretrained(export, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(default_inputs["model"], dtype=torch.float32)
    # stage 1 trained only the adapter: every weight without one is the base's; those with one moved, by B A
    m, b = merged.state_dict(), base.state_dict()
    assert set(m) == set(b)
    adapted = {k for k in m if any(t in k for t in config["target_modules"]) and k.endswith(".weight")}
    assert adapted and all(torch.equal(m[k], b[k]) for k in m if k not in adapted)
    assert all(not torch.equal(m[k], b[k]) for k in adapted)
    from peft import PeftModel

    ids = torch.arange(2, 30).reshape(2, 14)
    with torch.no_grad():
        via_adapter = PeftModel.from_pretrained(base, adapter)(input_ids=ids).logits
        assert torch.allclose(merged(input_ids=ids).logits, via_adapter, atol=1e-4)
    assert not any(".lora_" in k for k in load_file(os.path.join(export, "model.safetensors")))

    # stage 2 started from the merged model: its validation before the first step scores what the eval stage
    # measured for the stage-1 model on the same problems (vLLM against transformers: one problem apart at most)
    assert s2["init_model"] == export
    ev = summary["results"]["eval"]
    val = pd.read_parquet(os.path.join(default_inputs["data"], "rl", "val.parquet"))
    ids_val = {f"arith-test-{i}" for i in range(len(val))}
    samples = _rows(os.path.join(os.path.dirname(ev["models"]["stage1"]["metrics"]), "samples.jsonl"))
    hits = [s["correct"] for s in samples if s["benchmark"] == "arith" and s["problem_id"] in ids_val]
    assert len(hits) == len(ids_val)
    stage2 = _rows(run / "metrics" / "cadft-verl" / "cadft_then_grpo_stage2.jsonl")
    before = [r["data"] for r in stage2 if r["step"] == 0]
    first_val = [v for k, v in before[0].items() if "val-core/" in k]
    assert len(first_val) == 1 and abs(first_val[0] - sum(hits) / len(hits)) <= 1 / len(hits) + 1e-9
    assert (run / "eval" / "cold_start.md").exists() and (run / "eval" / "cold_start.json").exists()

    # stage 2's own adapter: verl exports the PEFT model's keys; the launch hands over that adapter merged into plain
    # weights, and the eval stage scores that merged model
    actor = run / "stage2_rl" / "global_step_1" / "actor"
    assert s2["lora_export"] == str(actor / "huggingface") and s2["hf_model"] == str(actor / "huggingface_merged")
    rl_keys = set(load_file(os.path.join(s2["hf_model"], "model.safetensors")))
    assert rl_keys and not any(".lora_" in k or "base_model." in k for k in rl_keys)
    rl_model = AutoModelForCausalLM.from_pretrained(s2["hf_model"], dtype=torch.float32).state_dict()
    assert set(rl_model) == set(m)
    moved = {k for k in rl_model if not torch.equal(rl_model[k], m[k])}
    # only the adapted weights can move (one step of 8 prompts may hold no group with mixed rewards: then none does)
    assert moved <= adapted, moved
    assert ev["models"]["stage2"]["model"] == s2["hf_model"]
