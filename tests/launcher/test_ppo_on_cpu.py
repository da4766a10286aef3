"""PPO as the RL stage: recipe ``cadft_then_ppo`` on the CPU default (verl's GAE advantages, verl's critic started
from the stage-1 export like the actor), asserting what it learned from: rewards, actor and critic gradients, and a
hand-over that stage 2's first validation can tell apart from the base model."""

import json
import os

import pytest
from launch import ONE_RANK, launch

from cadft_verl.demo.cpu_default import launch_overrides

pytestmark = pytest.mark.vllm  # stage 2's rollouts need vLLM (tests/conftest.py skips it where it is missing)

RL_STEPS = 3
VAL_PROBLEMS = 48  # rl/val.parquet: the arith benchmark's first 48 problems


def _rows(path):
    return [json.loads(line) for line in open(path)]


def test_cadft_then_ppo_trains_actor_and_critic_from_the_stage1_export(tmp_path, default_inputs):
    run = tmp_path / "run"
    args = ["recipe=cadft_then_ppo",
            *launch_overrides(default_inputs["data"], default_inputs["model"], str(run), rl_steps=RL_STEPS),
            "cadft.rewrite.enabled=false",  # rewriting is the default test's (test_default_learns_on_cpu.py)
            f"eval.limit={VAL_PROBLEMS}", "eval.optional_benchmarks=[]",
            "eval.readiness_k=2",  # RL readiness at a small cost (tested in tests/eval)
            *ONE_RANK]
    proc = launch(args, timeout=1500)
    results = json.loads((run / "summary.json").read_text())["results"]
    s1, s2 = results["stage1"], results["stage2"]
    # verl's critic and actor both start from the stage-1 export
    assert s2["algorithm"] == "gae" and s2["init_model"] == s1["hf_model"] and s2["critic_model"] == s1["hf_model"]
    assert s2["steps"] == RL_STEPS
    # the first validation (before step 1) scores the stage-1 model, not the base
    acc = {}
    for label in ("base", "stage1"):
        samples = _rows(os.path.join(os.path.dirname(results["eval"]["models"][label]["metrics"]), "samples.jsonl"))
        hits = [s["correct"] for s in samples if s["benchmark"] == "arith"]
        assert len(hits) == VAL_PROBLEMS
        acc[label] = sum(hits) / len(hits)
    metrics = _rows(run / "metrics" / "cadft-verl" / "cadft_then_ppo_stage2.jsonl")
    first_val = [v for r in metrics if r["step"] == 0 for k, v in r["data"].items() if k.startswith("val-core/")]
    assert len(first_val) == 1 and abs(first_val[0] - acc["stage1"]) <= 0.03, (first_val, acc)
    assert abs(first_val[0] - acc["base"]) >= 0.1, (first_val, acc)
    # PPO learned from something at every step: non-zero actor and critic gradients (GAE's advantages come from the
    # critic's values, so a step whose answers were all wrong still has them) and a value loss; rewards in (0, 1) over
    # the steps (one step of 32 answers all wrong is possible at these sizes)
    steps = [r["data"] for r in metrics if "actor/pg_loss" in r["data"]]
    assert len(steps) == RL_STEPS
    rewards = [s["critic/score/mean"] for s in steps]
    assert all(0 <= r <= 1 for r in rewards) and 0 < sum(rewards) / len(rewards) < 1, rewards
    for s in steps:
        assert s["actor/grad_norm"] > 0 and s["critic/grad_norm"] > 0, s
        assert s["critic/vf_loss"] > 0
    assert "| stage 2: cadft+ppo |" in proc.stdout  # the report names the RL algorithm as users know it
