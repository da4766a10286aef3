"""``python -m cadft_verl check`` and the launch's pre-flight: what this install can run, said before any worker
starts, naming the package and the fix."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from importlib import metadata

import pytest
from hydra import compose, initialize_config_module

from cadft_verl import check

VLLM = check.rollout_problem("vllm") is None


def _compose(*overrides):
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        return compose("main", overrides=list(overrides))


def test_check_command_prints_versions_device_engines_and_recipes():
    proc = subprocess.run([sys.executable, "-m", "cadft_verl", "check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for dist in ("verl", "torch", "transformers"):
        assert f"  {dist:<14} {metadata.version(dist)}" in out
    assert "verl: OK (supported: verl" in out and "device: cpu only" in out
    assert "flash-attention (flash_attn): no (" in out  # not installed on CPU
    assert ("rollout engine (vllm): ok, imports" in out) == VLLM
    for recipe in ("cadft", "cadft_then_grpo", "cadft_then_ppo", "dft_then_grpo", "sft_then_grpo", "grpo"):
        assert f"\n  {recipe} " in out
    assert "gpu: not usable" in out and "needs CUDA GPUs" in out  # no GPU here
    grpo = next(line for line in out.splitlines() if line.startswith("  grpo "))
    assert ("cpu: usable" in grpo) == VLLM


def test_a_verl_outside_the_supported_range_is_named_with_the_fix(monkeypatch):
    real = check.version
    monkeypatch.setattr(check, "version", lambda dist: "0.8.0" if dist == "verl" else real(dist))
    problem = check.verl_problem()
    assert "verl 0.8.0 is outside the supported range verl" in problem and "pip install 'verl" in problem
    monkeypatch.setattr(check, "imports", lambda module: "ok")  # the report's engine imports are not under test here
    out = io.StringIO()
    assert check.report(out) == 1 and "verl: PROBLEM" in out.getvalue()
    with pytest.raises(check.InstallError, match="verl 0.8.0 is outside the supported range"):
        check.preflight(_compose("recipe=cadft", "profile=cpu"))


def test_stage2_without_its_rollout_engine_is_named_with_the_fix():
    cfg = _compose("recipe=grpo", "profile=cpu", "actor_rollout_ref.rollout.name=sglang")
    with pytest.raises(check.InstallError) as err:
        check.preflight(cfg)
    msg = str(err.value)
    assert "stage 2 (rl)" in msg and "'sglang'" in msg and "requirements/gpu.txt" in msg and "scripts/setup.sh" in msg
    # stage 1 alone, weighting-only: nothing to generate with, nothing missing
    assert check.launch_problems(_compose("recipe=cadft", "profile=cpu", "cadft.rewrite.enabled=false")) == []


def test_the_launch_stops_before_ray_starts_when_the_rollout_engine_is_missing(tmp_path):
    from cadft_verl.demo.tiny_model import build_tiny_model

    build_tiny_model(str(tmp_path / "model"))  # a model the launch could start from: only the engine is missing
    for name in ("train.parquet", "val.parquet"):
        (tmp_path / name).touch()
    args = ["recipe=grpo", "profile=cpu", f"actor_rollout_ref.model.path={tmp_path}/model",
            f"data.train_files={tmp_path}/train.parquet", f"data.val_files={tmp_path}/val.parquet",
            f"trainer.default_local_dir={tmp_path}/run", "actor_rollout_ref.rollout.name=sglang",
            "eval.benchmarks=[arith]"]  # the generated benchmark: no benchmark folder needed
    proc = subprocess.run([sys.executable, "-m", "verl.trainer.main", *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, HYDRA_FULL_ERROR="1"))
    assert proc.returncode != 0
    assert "this install cannot run the launch" in proc.stderr and "'sglang'" in proc.stderr
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()
