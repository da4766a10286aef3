"""The study command end to end on the embedded default: 2 seeds of a warm start + GRPO, a kill in stage 2 and the
resumed study, the table over seeds, a rerun that redoes nothing.

Small sizes: stage 1 is 4 CADFT steps (rewriting off, the recipe ``cadft_no_rewrite``), stage 2 3 GRPO steps with a
checkpoint after each. The kill ends the study's whole process group (the study, its launch, Ray) once stage 2 of
the first run has saved a checkpoint; the rerun resumes that run's stage 2 from it (stage 1 is not redone) and then
runs the second seed. (A kill in stage 1: tests/launcher/test_launch_stage1_on_cpu.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "launcher"))
from launch import launch, launch_and_kill_when  # noqa: E402

from cadft_verl.trainer.metrics_history import read_history, read_rows  # noqa: E402

pytestmark = pytest.mark.vllm  # stage 2's rollouts need vLLM (tests/conftest.py skips it where it is missing)

RL_STEPS = 3


def study_args(out):
    return ["--out", str(out), "--recipes", "cadft_no_rewrite", "--seeds", "0", "1", "--stage1-steps", "4",
            "--rl-steps", str(RL_STEPS), "trainer.save_freq=1", "eval.limit=40", "eval.optional_benchmarks=[]"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "st"
    first = out / "runs" / "cadft_no_rewrite" / "seed0"
    tracker = first / "stage2_rl" / "latest_checkpointed_iteration.txt"
    history = first / "metrics" / "cadft-verl" / "cadft_no_rewrite_seed0_stage2.jsonl"

    def stage2_checkpointed():
        return tracker.exists() and history.exists()

    assert launch_and_kill_when(study_args(out), stage2_checkpointed, timeout=900, module="cadft_verl.study"), \
        "stage 2 of the first run never saved a checkpoint"
    killed = {"checkpoint": int(tracker.read_text()), "complete": (first / "stage2_rl" / "COMPLETE.json").exists(),
              "lock": (out / "study.lock").exists()}
    proc = launch(study_args(out), module="cadft_verl.study", timeout=1500)
    again = launch(study_args(out), module="cadft_verl.study", timeout=300)
    return {"out": out, "first": first, "history": history, "killed": killed, "proc": proc, "again": again}


def test_a_study_killed_in_stage2_resumes_and_keeps_every_steps_metrics_once(study):
    first, killed = study["first"], study["killed"]
    assert not killed["complete"] and killed["checkpoint"] < RL_STEPS, killed
    log = (first / "console.log").read_text()
    assert f"stage 2 resumes from step {killed['checkpoint']}" in log
    assert log.count("stage 1 (cadft) [") and "stage 1 done" in log
    # stage 1 finished before the kill and was not redone: its history is each of its 4 steps once
    s1 = read_rows(str(first / "metrics" / "cadft-verl" / "cadft_no_rewrite_seed0_stage1.jsonl"))
    assert [r["step"] for r in s1] == [1, 2, 3, 4]
    # stage 2: every training step's metrics exactly once, across the kill (validation rows are merged into their
    # step: verl validates again at the step it resumes from)
    rows = read_rows(str(study["history"]))
    trained = [r["step"] for r in rows if "critic/score/mean" in r["data"]]
    assert trained == [1, 2, 3], [r["step"] for r in rows]
    assert [r["step"] for r in read_history(str(study["history"]))] == [0, 1, 2, 3]
    summary = json.loads((first / "summary.json").read_text())["results"]["stage2"]
    assert summary["steps"] == RL_STEPS and summary["history"]["steps"] == [0, 1, 2, 3]
    assert summary["init_model"] == str(first / "stage1_cadft" / "global_step_4" / "huggingface")


def test_the_study_writes_the_table_over_seeds_and_a_rerun_redoes_nothing(study):
    out, proc, again = study["out"], study["proc"], study["again"]
    plan = json.loads((out / "study.json").read_text())
    assert plan["recipes"] == ["cadft_no_rewrite"] and plan["seeds"] == [0, 1] and len(plan["runs"]) == 2
    assert not (out / "study.lock").exists() and study["killed"]["lock"]  # held while it ran, released at the end
    table = json.loads((out / "table.json").read_text())
    arm = table["arms"]["cadft_no_rewrite"]
    assert arm["seeds"] == [0, 1] and table["columns"] == ["arith", "average"] and not table["missing"]
    runs = {r["seed"]: r["scores"] for r in table["runs"]}
    for stage in ("base", "before", "after"):
        values = [runs[s][stage]["arith"] for s in (0, 1)]
        assert all(0 <= v <= 1 for v in values), (stage, values)
        stat = arm[stage]["arith"]
        assert stat["n"] == 2 and stat["mean"] == pytest.approx(sum(values) / 2)
        assert stat["se"] == pytest.approx(abs(values[0] - values[1]) / 2)  # std (n-1) / sqrt(2) of two values
    # the base model is the same in both runs: evaluated once, its result copied into the second run
    assert runs[0]["base"] == runs[1]["base"]
    second = json.loads((out / "runs" / "cadft_no_rewrite" / "seed1" / "study_run.json").read_text())
    assert second["base_eval_from"] == str(study["first"] / "eval" / "base")
    assert "base (" in (out / "runs" / "cadft_no_rewrite" / "seed1" / "console.log").read_text()
    # the two seeds trained on differently ordered data: their stage-1 histories differ
    losses = [[r["data"]["stage1/train/loss"] for r in read_rows(str(out / "runs" / "cadft_no_rewrite" / f"seed{s}" /
               "metrics" / "cadft-verl" / f"cadft_no_rewrite_seed{s}_stage1.jsonl"))] for s in (0, 1)]
    assert losses[0] != losses[1]
    md = (out / "table.md").read_text()
    assert "| cadft_no_rewrite | 2 |" in md and "RL gain" in md and (out / "table.png").stat().st_size > 5000
    # the console: one line per run and the table, the launch's own output in each run's console.log
    lines = proc.stdout.splitlines()
    assert "[study] 1/2 cadft_no_rewrite seed 0: running" in proc.stdout
    assert "[study] 2/2 cadft_no_rewrite seed 1: done in" in proc.stdout
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr and len(lines) < 60, proc.stdout
    # a rerun skips both runs and starts no launch
    assert again.stdout.count("finished earlier, skipped") == 2 and "running" not in again.stdout
    assert "[study] 2/2 runs finished, 0 failed" in again.stdout


def test_a_second_study_into_the_folder_is_refused_naming_the_difference(study):
    proc = subprocess.run([sys.executable, "-m", "cadft_verl.study", *study_args(study["out"]), "cadft.beta=2.0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "holds another study" in proc.stderr and "cadft.beta=2.0" in proc.stderr
