"""The hand-over from stage 1 to stage 2, as stage 2's first validation shows it: the RL stage's validation before its
first step (greedy, on rl/val.parquet: the arith benchmark's first problems) must score the stage-1 model as the main
job's eval stage measured it. Shared by the GRPO (test_default_learns_on_cpu.py) and PPO (test_ppo_on_cpu.py) tests."""

from __future__ import annotations

import json
import os

import pandas as pd

#: vLLM's greedy answers against transformers': one problem of 48 may differ
SAME_MODEL = 0.03
#: how far apart the eval stage must see the base and the stage-1 model on those problems for the first validation to
#: tell them apart, and how far from the base's score that validation then must be
APART = 0.1
FROM_BASE = 0.06


def eval_accuracy_on_val(default_run) -> dict[str, float]:
    """The eval stage's greedy accuracy of the base and the stage-1 model on the problems of rl/val.parquet."""
    ev = default_run["summary"]["results"]["eval"]
    val = pd.read_parquet(os.path.join(default_run["data"], "rl", "val.parquet"))
    ids = {f"arith-test-{i}" for i in range(len(val))}  # rl/val.parquet holds the benchmark's first problems
    acc = {}
    for label in ("base", "stage1"):
        path = os.path.join(os.path.dirname(ev["models"][label]["metrics"]), "samples.jsonl")
        with open(path) as f:
            hits = [s["correct"] for s in map(json.loads, f) if s["benchmark"] == "arith" and s["problem_id"] in ids]
        assert len(hits) == len(ids), path
        acc[label] = sum(hits) / len(hits)
    return acc


def assert_first_validation_is_the_stage1_model(first_val: float, acc: dict[str, float]) -> None:
    """``first_val`` scores the stage-1 model, and, where the eval stage tells the two apart, not the base.

    The second half needs the two models to differ on those 48 problems. Whether they do depends on the machine: the
    warm start's lesson is one near-even choice per answer (box it or not, docs/cpu-default.md), so its greedy answers
    are a threshold on it. Measured: 0.73 against the base's 0.50 on the machine the default was sized on; 0.52-0.63
    against 0.52 on another, where 135-145 of stage 1's 150 greedy answers were the base's word for word and no greedy
    score can tell them apart. The hand-over's path is asserted unconditionally beside this (``init_model``)."""
    assert abs(first_val - acc["stage1"]) <= SAME_MODEL, (first_val, acc)
    if abs(acc["stage1"] - acc["base"]) >= APART:
        assert abs(first_val - acc["base"]) >= FROM_BASE, (first_val, acc)
