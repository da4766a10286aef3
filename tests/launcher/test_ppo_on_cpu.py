"""PPO as the RL stage: ``recipe=cadft_then_ppo stages=[rl]`` from the main job's stage-1 export (the session's
``default_run``, tests/launcher/conftest.py), as a user would start PPO from a finished warm start: verl's GAE
advantages, verl's critic started from that export like the actor, asserting what it learned from (rewards, actor and
critic gradients) and the hand-over as stage 2's first validation shows it (handover.py). The same
recipe's stage 1 is the main job's (cadft_then_grpo); its RL stage alone differs."""

import json

import pytest
from handover import assert_first_validation_is_the_stage1_model, eval_accuracy_on_val
from launch import ONE_RANK, launch

from cadft_verl.demo.cpu_default import launch_overrides

pytestmark = pytest.mark.vllm  # stage 2's rollouts need vLLM (tests/conftest.py skips it where it is missing)

RL_STEPS = 3


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_ppo_trains_actor_and_critic_from_the_stage1_export(tmp_path, default_run):
    run = tmp_path / "run"
    export = default_run["summary"]["results"]["stage1"]["hf_model"]
    args = ["recipe=cadft_then_ppo", "stages=[rl]",
            *launch_overrides(default_run["data"], export, str(run), rl_steps=RL_STEPS), *ONE_RANK]
    proc = launch(args, timeout=1500)
    s2 = json.loads((run / "summary.json").read_text())["results"]["stage2"]
    # verl's critic and actor both start from the stage-1 export
    assert s2["algorithm"] == "gae" and s2["init_model"] == export and s2["critic_model"] == export
    assert s2["steps"] == RL_STEPS
    # the first validation (before step 1) scores the stage-1 model as the main job's eval stage measured it
    metrics = _rows(run / "metrics" / "cadft-verl" / "cadft_then_ppo_stage2.jsonl")
    first_val = [v for r in metrics if r["step"] == 0 for k, v in r["data"].items() if k.startswith("val-core/")]
    assert len(first_val) == 1, first_val
    assert_first_validation_is_the_stage1_model(first_val[0], eval_accuracy_on_val(default_run))
    # PPO learned from something at every step: non-zero actor and critic gradients (GAE's advantages come from the
    # critic's values, so a step whose answers were all wrong still has them) and a value loss; rewards in (0, 1) over
    # the steps (one step of 8 answers all wrong is possible at these sizes)
    steps = [r["data"] for r in metrics if "actor/pg_loss" in r["data"]]
    assert len(steps) == RL_STEPS
    rewards = [s["critic/score/mean"] for s in steps]
    assert all(0 <= r <= 1 for r in rewards) and 0 < sum(rewards) / len(rewards) < 1, rewards
    for s in steps:
        assert s["actor/grad_norm"] > 0 and s["critic/grad_norm"] > 0, s
        assert s["critic/vf_loss"] > 0
    assert "stage 2 (ppo) [" in proc.stdout  # the progress names the RL algorithm as users know it, not "gae"
