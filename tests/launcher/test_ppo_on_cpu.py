"""PPO as the RL stage: ``recipe=cadft_then_ppo stages=[rl]`` from the main job's stage-1 export (the session's
``default_run``, tests/launcher/conftest.py), as a user would start PPO from a finished warm start: verl's GAE
advantages, verl's critic started from that export like the actor, asserting what it learned from (rewards, actor and
critic gradients) and a hand-over that stage 2's first validation can tell apart from the base model. The same
recipe's stage 1 is the main job's (cadft_then_grpo); its RL stage alone differs."""

import json
import os

import pandas as pd
import pytest
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
    # the first validation (before step 1, greedy, on rl/val.parquet: the arith benchmark's first problems) scores the
    # stage-1 model as the main job's eval stage measured it, not the base
    ev = default_run["summary"]["results"]["eval"]
    val = pd.read_parquet(os.path.join(default_run["data"], "rl", "val.parquet"))
    ids = {f"arith-test-{i}" for i in range(len(val))}
    acc = {}
    for label in ("base", "stage1"):
        samples = _rows(os.path.join(os.path.dirname(ev["models"][label]["metrics"]), "samples.jsonl"))
        hits = [s["correct"] for s in samples if s["benchmark"] == "arith" and s["problem_id"] in ids]
        assert len(hits) == len(ids)
        acc[label] = sum(hits) / len(hits)
    metrics = _rows(run / "metrics" / "cadft-verl" / "cadft_then_ppo_stage2.jsonl")
    first_val = [v for r in metrics if r["step"] == 0 for k, v in r["data"].items() if k.startswith("val-core/")]
    assert len(first_val) == 1 and abs(first_val[0] - acc["stage1"]) <= 0.03, (first_val, acc)  # vLLM vs HF: 1 problem
    assert abs(first_val[0] - acc["base"]) >= 0.06, (first_val, acc)  # measured 0.73 against 0.50
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
