"""The one launch: hydra surface, input checks, stage 1 on verl's Ray actor workers (a kill and a resume in each
stage: tests/study/test_study_on_cpu.py)."""

import json
import os

import pytest
from launch import launch, stage1_args

from cadft_verl.check import rollout_problem


def test_cfg_job_prints_the_composed_config_without_starting_anything(tmp_path):
    for module in ("verl.trainer.main", "cadft_verl.main"):
        proc = launch(["--cfg", "job", "recipe=cadft_then_grpo", "cadft.beta=2.0"], module=module, timeout=120)
        assert "stages:\n- cadft\n- rl" in proc.stdout
        assert "beta: 2.0" in proc.stdout and "adv_estimator: grpo" in proc.stdout
        assert "ppo_mini_batch_size" in proc.stdout  # verl's own keys are all there


def test_unknown_recipe_lists_the_available_ones():
    proc = launch(["recipe=cadft_then_ppx"], timeout=120, check=False)
    assert proc.returncode != 0
    for name in ("cadft_then_grpo", "cadft_then_ppo", "dft_then_grpo", "sft_then_grpo", "cadft", "grpo"):
        assert name in proc.stderr


def test_missing_model_or_data_is_named_before_any_worker_starts(tmp_path, default_inputs):
    args = stage1_args(default_inputs, tmp_path / "run")
    proc = launch(["recipe=cadft", *args, f"actor_rollout_ref.model.path={tmp_path}/missing"], check=False)
    assert proc.returncode != 0 and "actor_rollout_ref.model.path: no model at" in proc.stderr
    proc = launch(["recipe=cadft", *args, f"cadft.data.train_files={tmp_path}/nope.parquet"], check=False)
    assert proc.returncode != 0 and "cadft.data.train_files: no file at" in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr


def test_stage1_trains_on_actor_workers_and_hands_over_an_hf_model(tmp_path, default_inputs):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    val = f"cadft.data.val_files={default_inputs['data']}/sft/val.parquet"
    proc = launch(["recipe=cadft", *stage1_args(default_inputs, run, extra=[val, "cadft.trainer.test_freq=2"])])
    summary = json.loads((run / "summary.json").read_text())
    stage1 = summary["results"]["stage1"]
    assert stage1["steps"] == 3 and stage1["loss"] == "cadft"
    assert f"outputs in {run}" in proc.stdout
    AutoModelForCausalLM.from_pretrained(stage1["hf_model"])
    rows = [json.loads(line)["data"] for line in (run / "metrics" / "cadft-verl" / "cadft_stage1.jsonl").open()]
    assert len(rows) == 3
    assert {"stage1/train/loss", "stage1/cadft/nll", "stage1/cadft/w_mean", "stage1/cadft/ess"} <= set(rows[0])
    assert 0 < rows[0]["stage1/cadft/w_min"] < 1.0
    # validation on cadft.data.val_files at test_freq and at the end: the plain token-mean NLL, falling
    assert [i for i, r in enumerate(rows, 1) if "stage1/val/loss" in r] == [2, 3]
    assert rows[2]["stage1/val/loss"] < rows[1]["stage1/val/loss"] + 0.05 and rows[2]["stage1/val/tokens"] > 0
    # the default statistics are the current global batch's (4 micro-batches per rank: a no-grad pre-pass)
    for r in rows:
        assert r["stage1/cadft/stats_loc_used"] == pytest.approx(r["stage1/cadft/c_loc"], abs=1e-5)
        assert abs(r["stage1/cadft/z_mean"]) < 1e-4 and r["stage1/perf/prepass_time_s"] > 0

    # stage 2 never starts from a broken hand-over: no silent fallback to the base model
    for weights in os.listdir(stage1["hf_model"]):
        if weights.endswith(".safetensors"):
            os.remove(os.path.join(stage1["hf_model"], weights))
    rl = [f"data.train_files={default_inputs['data']}/rl/train.parquet",
          f"data.val_files={default_inputs['data']}/rl/val.parquet"]
    proc = launch(["recipe=cadft_then_grpo", *stage1_args(default_inputs, run), *rl], check=False)
    # without a rollout engine (the GPU-pins test env has no vLLM) the launch stops earlier, before any worker
    expected = ("this install cannot run the launch" if rollout_problem("vllm")
                else "stage 1 checkpoint corrupt: no weight files in")
    assert proc.returncode != 0 and expected in proc.stderr
    assert not (run / "stage2_rl").exists()


def test_cadft_with_sequence_parallelism_is_refused_at_start_naming_the_option(tmp_path, default_inputs):
    args = ["recipe=cadft", *stage1_args(default_inputs, tmp_path / "run"),
            "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2"]
    proc = launch(args, check=False)
    assert proc.returncode != 0
    assert "actor_rollout_ref.actor.ulysses_sequence_parallel_size=2: the cadft loss does not support" in proc.stderr
    assert "stage 1 (cadft) [" not in proc.stdout + proc.stderr  # no training step started (no progress line)


def test_stage1_reuses_the_prepass_forward_under_checkpointing_with_identical_training(tmp_path, default_inputs):
    """cadft.prepass_reuse_forward (trainer/layer_reuse.py) on the Ray actors: with gradient checkpointing and 4
    micro-batches per rank, every decoder-layer forward of the training step comes from the pre-pass, and the
    training is the same as with checkpointing's own forward (losses and gradient norms, step by step)."""
    gc = "actor_rollout_ref.model.enable_gradient_checkpointing=true"
    rows = {}
    for reuse in (True, False):
        run = tmp_path / f"reuse_{reuse}"
        launch(["recipe=cadft", *stage1_args(default_inputs, run, extra=[gc, f"cadft.prepass_reuse_forward={reuse}"])])
        rows[reuse] = [json.loads(line)["data"]
                       for line in (run / "metrics" / "cadft-verl" / "cadft_stage1.jsonl").open()]
    assert [r["stage1/perf/prepass_reused"] for r in rows[True]] == [1.0, 1.0, 1.0]
    assert all("stage1/perf/prepass_reused" not in r for r in rows[False])
    for with_reuse, without in zip(rows[True], rows[False]):
        for key in ("stage1/train/loss", "stage1/train/grad_norm", "stage1/cadft/w_mean", "stage1/cadft/c_loc"):
            assert with_reuse[key] == pytest.approx(without[key], rel=1e-5, abs=1e-7), key
