"""A finished stage 1 is reused only by a launch from the same base model: its COMPLETE.json records the base, and a
launch from another base model is refused before any worker starts, naming both and the fix."""

import json

import pytest
from hydra import compose, initialize_config_module

from cadft_verl.launch.run_dir import RunDir
from cadft_verl.launch.stage import Launch
from cadft_verl.launch.stages import STAGES


def run_stage1(config, run_dir):
    """What the launch does first for stage 1: reuse a finished one (or refuse it, from another base model)."""
    return STAGES["cadft"].done(Launch(config, RunDir(run_dir)))


def _config(run, model):
    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        return compose("main", overrides=["recipe=cadft", "profile=cpu", f"actor_rollout_ref.model.path={model}",
                                          f"trainer.default_local_dir={run}"])


def test_a_finished_stage1_is_reused_only_from_its_base_model(tmp_path):
    base, other, run = tmp_path / "base", tmp_path / "other", tmp_path / "run"
    base.mkdir(), other.mkdir()
    (run / "stage1_cadft").mkdir(parents=True)
    done = {"stage": "cadft", "loss": "cadft", "steps": 4, "hf_model": str(run / "x"), "base_model": str(base)}
    (run / "stage1_cadft" / "COMPLETE.json").write_text(json.dumps(done))
    assert run_stage1(_config(run, base), str(run)) == done  # the same base: reused, nothing started
    with pytest.raises(ValueError, match=r"was trained from .*/base, not from actor_rollout_ref.model.path=.*/other"
                                         r": give this launch another trainer.default_local_dir, or delete"):
        run_stage1(_config(run, other), str(run))
