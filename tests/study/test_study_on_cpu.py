"""The study command end to end on the embedded default: 2 seeds of a warm start + GRPO, killed once in each stage
and resumed, the table over seeds, a rerun that redoes nothing.

Small sizes: stage 1 is 8 CADFT steps (rewriting off: the recipe ``cadft_no_rewrite``), stage 2 3 GRPO steps, each
step checkpointed (stage 1's default, a quarter of the stage; stage 2 by ``trainer.save_freq=1``). Each fault kills
one of the launch's Ray actor workers (SIGKILL, as the OOM killer would): first once stage 1 of the first run has
logged step 2, then once its stage 2 has saved a checkpoint. The launch's watchdog must then stop it within about
60 s, naming the dead worker, and the study with it; each rerun of the same command resumes that run from its
checkpoint and the last one goes on to the second seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "launcher"))
from launch import ONE_RANK, launch, launch_and_kill_a_worker_when  # noqa: E402

from cadft_verl.integration.metrics_history import read_history, read_rows  # noqa: E402

pytestmark = pytest.mark.vllm  # stage 2's rollouts need vLLM (tests/conftest.py skips it where it is missing)

RL_STEPS = 3
# stage 1 takes well under a second a step here: enough steps that a worker can be killed while it trains
STAGE1_STEPS = 8
RUN = "cadft_no_rewrite"


def study_args(out):
    return ["--out", str(out), "--recipes", RUN, "--seeds", "0", "1", "--stage1-steps", str(STAGE1_STEPS),
            "--rl-steps", str(RL_STEPS), "trainer.save_freq=1", "eval.limit=40", "eval.optional_benchmarks=[]",
            "eval.readiness_k=2",  # RL readiness in the table, at a small cost
            *ONE_RANK]


def _lines(path):
    return [line for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _sections(console):
    """The console.log of a run, one part per launch of it (each starts with the study's ``=====`` line)."""
    parts = console.read_text().split("\n===== ")
    return [p.split("\n", 1)[1] if "\n" in p else "" for p in parts[1:]]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "st"
    first = out / "runs" / RUN / "seed0"
    metrics = first / "metrics" / "cadft-verl"
    s1_tracker = first / "stage1_cadft" / "latest_checkpointed_iteration.txt"
    s2_tracker = first / "stage2_rl" / "latest_checkpointed_iteration.txt"
    s1_history, s2_history = metrics / f"{RUN}_seed0_stage1.jsonl", metrics / f"{RUN}_seed0_stage2.jsonl"
    killed = {}

    def stage1_step2_logged():
        # a worker is killed while a later step trains (or checkpoints); the study holds its lock meanwhile
        ready = s1_tracker.exists() and 2 <= len(_lines(s1_history)) < STAGE1_STEPS
        if ready:
            killed["lock"] = (out / "study.lock").exists()
        return ready

    fault = launch_and_kill_a_worker_when(study_args(out), stage1_step2_logged, timeout=600, module="cadft_verl.study")
    assert fault["ok"], "stage 1 of the first run never logged step 2"
    killed["stage1"] = {"checkpoint": int(s1_tracker.read_text()), "lock": killed.pop("lock", False),
                        "complete": (first / "stage1_cadft" / "COMPLETE.json").exists(), **fault,
                        "console": (first / "console.log").read_text()}

    def stage2_checkpointed():
        # a checkpoint whose step's metrics row is written (a kill between the two redoes that step: tested apart)
        if not s2_tracker.exists() or not s2_tracker.read_text().strip():
            return False
        step = int(s2_tracker.read_text())
        return step < RL_STEPS and any(r["step"] == step and "training/global_step" in r["data"]
                                       for r in read_rows(str(s2_history)))

    fault = launch_and_kill_a_worker_when(study_args(out), stage2_checkpointed, timeout=900, module="cadft_verl.study")
    assert fault["ok"], "stage 2 of the first run never saved a checkpoint"
    killed["stage2"] = {"checkpoint": int(s2_tracker.read_text()),
                        "complete": (first / "stage2_rl" / "COMPLETE.json").exists(), **fault,
                        "console": (first / "console.log").read_text()}
    proc = launch(study_args(out), module="cadft_verl.study", timeout=1500)
    again = launch(study_args(out), module="cadft_verl.study", timeout=300)
    return {"out": out, "first": first, "s1_history": s1_history, "s2_history": s2_history, "killed": killed,
            "proc": proc, "again": again}


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_a_dead_worker_stops_the_launch_within_a_minute_naming_it(study, stage):
    fault = study["killed"][stage]
    pid, title = fault["killed"]
    assert fault["seconds"] is not None and fault["seconds"] < 60, fault  # not a hang
    assert fault["rc"] != 0
    label = "stage 1 (cadft)" if stage == "stage1" else "stage 2 (grpo)"
    message = [line for line in fault["console"].splitlines() if f"{label} stopped after step" in line]
    assert message and f"(pid {pid}) died: " in message[-1], fault["console"][-3000:]
    assert "resumes from its last checkpoint when the launch is rerun" in message[-1]


def test_killed_in_stage1_the_rerun_resumes_it_and_keeps_every_steps_metrics_once(study):
    first, killed = study["first"], study["killed"]["stage1"]
    assert not killed["complete"] and killed["lock"], killed
    assert [r["step"] for r in read_rows(str(study["s1_history"]))] == list(range(1, STAGE1_STEPS + 1))
    summary = json.loads((first / "summary.json").read_text())["results"]["stage1"]
    assert summary["steps"] == STAGE1_STEPS and summary["history"]["steps"] == list(range(1, STAGE1_STEPS + 1))
    # the resumed launch's console (the run's console.log): the log file first, the stage's progress from where it
    # resumed, Ray's output only in the log
    resumed = _sections(first / "console.log")[1].splitlines()
    log = first / "launch.log"
    assert resumed[0] == f"[cadft-verl] full log (Ray, vLLM, verl): {log}"
    checkpoint = first / "stage1_cadft" / f"global_step_{killed['checkpoint']}"
    assert f"stage 1 resumes from {checkpoint}" in "\n".join(resumed)
    bars = [line for line in resumed if line.startswith("stage 1 (cadft) [")]
    assert [b.split("]")[1].split()[0] for b in bars] == [f"{s}/{STAGE1_STEPS}"
                                                          for s in range(killed["checkpoint"] + 1, STAGE1_STEPS + 1)]
    assert all(" loss " in b and " nll " in b and "down-weighted" in b for b in bars)
    assert "Started a local Ray instance" in log.read_text()
    assert "Started a local Ray instance" not in (first / "console.log").read_text()


def test_killed_in_stage2_the_rerun_resumes_it_and_keeps_every_steps_metrics_once(study):
    first, killed = study["first"], study["killed"]["stage2"]
    assert not killed["complete"] and killed["checkpoint"] < RL_STEPS, killed
    last = _sections(first / "console.log")[2]
    assert f"stage 2 resumes from step {killed['checkpoint']}" in last
    # the third launch found stage 1 complete: not trained again
    assert "stage 1 (cadft) [" not in last and "[cadft-verl] stage 1 done" in last
    assert last.splitlines()[-1] == f"[cadft-verl] full log: {first / 'launch.log'}"
    assert len(last.splitlines()) <= 100  # a few screens, the report and its RL-readiness table included (93)
    # every training step's metrics exactly once, across the kill (verl validates again at the step it resumes
    # from: that row is merged into the step's row)
    rows = read_rows(str(study["s2_history"]))
    trained = [r["step"] for r in rows if "critic/score/mean" in r["data"]]
    assert trained == [1, 2, 3], [r["step"] for r in rows]
    assert [r["step"] for r in read_history(str(study["s2_history"]))] == [0, 1, 2, 3]
    summary = json.loads((first / "summary.json").read_text())["results"]["stage2"]
    assert summary["steps"] == RL_STEPS and summary["history"]["steps"] == [0, 1, 2, 3]
    assert summary["init_model"] == str(first / "stage1_cadft" / f"global_step_{STAGE1_STEPS}" / "huggingface")


def test_the_study_writes_the_table_over_seeds_and_a_rerun_redoes_nothing(study):
    out, proc, again = study["out"], study["proc"], study["again"]
    plan = json.loads((out / "study.json").read_text())
    assert plan["recipes"] == ["cadft_no_rewrite"] and plan["seeds"] == [0, 1] and len(plan["runs"]) == 2
    assert not (out / "study.lock").exists()  # held while it ran (checked at the first kill), released at the end
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
    # RL readiness of each model, over the seeds (2 samples per problem here)
    ready = arm["readiness"]
    assert ready["k"] == 2 and "| recipe | model | score | avg@2 | pass@2 | headroom | entropy |" in md
    for stage in ("base", "before", "after"):
        r = ready[stage]
        assert r["avg"]["n"] == 2 and 0 <= r["avg"]["mean"] <= r["pass"]["mean"] <= 1 and r["entropy"]["mean"] > 0
    assert (out / "runs" / "cadft_no_rewrite" / "seed1" / "eval" / "base_readiness" / "eval_key.json").exists()
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
