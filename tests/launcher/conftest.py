"""The README's main job, run once per session and shared: its tests (test_default_learns_on_cpu.py) and the stage-2
launches that start from its stage-1 export (the RL-update check there, PPO in test_ppo_on_cpu.py). CI-time budget
(docs/install.md): a stage-2 test that starts from this export spares a stage-1 launch of its own."""

import json

import pytest
from launch import MAIN_JOB_RL_STEPS, launch

from cadft_verl.demo.cpu_default import launch_overrides
from cadft_verl.utils.files import read_jsonl


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, default_inputs):
    """`recipe=cadft_then_grpo` on the CPU default (its README sizes, but MAIN_JOB_RL_STEPS GRPO steps and RL readiness
    from 4 samples a problem), then a rerun."""
    run = tmp_path_factory.mktemp("default") / "run"
    args = ["recipe=cadft_then_grpo",
            *launch_overrides(default_inputs["data"], default_inputs["model"], str(run), rl_steps=MAIN_JOB_RL_STEPS),
            "trainer.save_freq=-1",  # verl's default (no checkpoint): the launch still saves the final one
            "eval.readiness_k=4"]  # RL readiness from 4 samples a problem, not 8: 20 s less of the eval stage
    proc = launch(args, timeout=1500)
    metrics = run / "metrics" / "cadft-verl"
    out = {"run": run, "proc": proc, "summary": json.loads((run / "summary.json").read_text()),
           "data": default_inputs["data"], "stage1": run / "stage1_cadft",
           "stage1_metrics": read_jsonl(str(metrics / "cadft_then_grpo_stage1.jsonl")),
           "stage2_metrics": read_jsonl(str(metrics / "cadft_then_grpo_stage2.jsonl"))}
    first_log = (run / "launch.log").stat().st_size  # the console's log; each launch appends to it
    out["rerun"] = launch(args, timeout=600)
    with open(run / "launch.log", errors="replace") as f:
        f.seek(first_log)
        out["rerun_log"] = f.read()
    return out
