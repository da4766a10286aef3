"""The study command end to end on the embedded default: one seed of a warm start + GRPO, killed in stage 2 and
resumed, the table, a rerun that redoes nothing.

Small sizes: stage 1 is 8 CADFT steps (rewriting off: the recipe ``cadft_no_rewrite``), stage 2 3 GRPO steps, each
step checkpointed (``trainer.save_freq=1``). The fault kills one of the launch's Ray actor workers (SIGKILL, as the
OOM killer would) once stage 2 has saved a checkpoint. The launch's watchdog must then stop it within about 60 s,
naming the dead worker, and the study with it; a rerun of the same command resumes the run from its checkpoint.
A worker killed in stage 1: tests/launcher/test_lora_on_cpu.py (the resume of a LoRA warm start). The table's mean and
standard error over several seeds, and what a seed changes: tests/study/test_study_plan_on_cpu.py (CI-time budget,
docs/install.md: each seed is a launch of about 2.5 minutes here).
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
    return ["--out", str(out), "--recipes", RUN, "--seeds", "0", "--stage1-steps", str(STAGE1_STEPS),
            "--rl-steps", str(RL_STEPS), "trainer.save_freq=1", "eval.limit=40", "eval.optional_benchmarks=[]",
            "eval.readiness_k=2",  # RL readiness in the table, at a small cost
            *ONE_RANK]


def _sections(console):
    """The console.log of a run, one part per launch of it (each starts with the study's ``=====`` line)."""
    parts = console.read_text().split("\n===== ")
    return [p.split("\n", 1)[1] if "\n" in p else "" for p in parts[1:]]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "st"
    first = out / "runs" / RUN / "seed0"
    metrics = first / "metrics" / "cadft-verl"
    s2_tracker = first / "stage2_rl" / "latest_checkpointed_iteration.txt"
    s2_history = metrics / f"{RUN}_seed0_stage2.jsonl"
    held = {}

    def stage2_checkpointed():
        # a checkpoint whose step's metrics row is written (a kill between the two redoes that step: tested apart)
        if not s2_tracker.exists() or not s2_tracker.read_text().strip():
            return False
        step = int(s2_tracker.read_text())
        ready = step < RL_STEPS and any(r["step"] == step and "training/global_step" in r["data"]
                                        for r in read_rows(str(s2_history)))
        if ready:
            held["lock"] = (out / "study.lock").exists()  # the study holds its lock while a run trains
        return ready

    fault = launch_and_kill_a_worker_when(study_args(out), stage2_checkpointed, timeout=900, module="cadft_verl.study")
    assert fault["ok"], "stage 2 of the run never saved a checkpoint"
    killed = {"checkpoint": int(s2_tracker.read_text()), "lock": held.get("lock", False),
              "complete": (first / "stage2_rl" / "COMPLETE.json").exists(), **fault,
              "console": (first / "console.log").read_text()}
    proc = launch(study_args(out), module="cadft_verl.study", timeout=1500)
    again = launch(study_args(out), module="cadft_verl.study", timeout=300)
    return {"out": out, "first": first, "s2_history": s2_history, "killed": killed, "proc": proc, "again": again}


def test_a_dead_worker_stops_the_launch_within_a_minute_naming_it(study):
    fault = study["killed"]
    pid, title = fault["killed"]
    assert fault["seconds"] is not None and fault["seconds"] < 60, fault  # not a hang
    assert fault["rc"] != 0 and fault["lock"] and not fault["complete"], fault
    message = [line for line in fault["console"].splitlines() if "stage 2 (grpo) stopped after step" in line]
    assert message and f"(pid {pid}) died: " in message[-1], fault["console"][-3000:]
    assert "resumes from its last checkpoint when the launch is rerun" in message[-1]


def test_killed_in_stage2_the_rerun_resumes_it_and_keeps_every_steps_metrics_once(study):
    first, killed = study["first"], study["killed"]
    assert killed["checkpoint"] < RL_STEPS, killed
    last = _sections(first / "console.log")[1]
    # the resumed launch's console (the run's console.log): the log file first, Ray's output only in the log
    log = first / "launch.log"
    assert last.splitlines()[0] == f"[cadft-verl] full log (Ray, vLLM, verl): {log}"
    assert "Started a local Ray instance" in log.read_text()
    assert "Started a local Ray instance" not in (first / "console.log").read_text()
    assert f"stage 2 resumes from step {killed['checkpoint']}" in last
    # its progress goes on from the checkpoint's step (shown again, with verl's validation there), not from 0
    bars = [line.split("]")[1].split()[0] for line in last.splitlines() if line.startswith("stage 2 (grpo) [")]
    assert list(dict.fromkeys(bars)) == [f"{s}/{RL_STEPS}" for s in range(killed["checkpoint"], RL_STEPS + 1)], bars
    # the second launch found stage 1 complete: not trained again
    assert "stage 1 (cadft) [" not in last and "[cadft-verl] stage 1 done" in last
    assert last.splitlines()[-1] == f"[cadft-verl] full log: {log}"
    assert len(last.splitlines()) <= 100  # a few screens, the report and its RL-readiness table included (93)
    # every training step's metrics exactly once, across the kill (verl validates again at the step it resumes
    # from: that row is merged into the step's row)
    rows = read_rows(str(study["s2_history"]))
    trained = [r["step"] for r in rows if "critic/score/mean" in r["data"]]
    assert trained == [1, 2, 3], [r["step"] for r in rows]
    assert [r["step"] for r in read_history(str(study["s2_history"]))] == [0, 1, 2, 3]
    summary = json.loads((first / "summary.json").read_text())["results"]
    assert summary["stage1"]["steps"] == STAGE1_STEPS
    assert summary["stage2"]["steps"] == RL_STEPS and summary["stage2"]["history"]["steps"] == [0, 1, 2, 3]
    assert summary["stage2"]["init_model"] == str(first / "stage1_cadft" / f"global_step_{STAGE1_STEPS}" /
                                                  "huggingface")


def test_the_study_writes_the_table_and_a_rerun_redoes_nothing(study):
    out, proc, again = study["out"], study["proc"], study["again"]
    plan = json.loads((out / "study.json").read_text())
    assert plan["recipes"] == ["cadft_no_rewrite"] and plan["seeds"] == [0] and len(plan["runs"]) == 1
    assert not (out / "study.lock").exists()  # held while it ran (checked at the kill), released at the end
    table = json.loads((out / "table.json").read_text())
    arm = table["arms"]["cadft_no_rewrite"]
    assert arm["seeds"] == [0] and table["columns"] == ["arith", "average"] and not table["missing"]
    (run,) = table["runs"]
    report = json.loads((study["first"] / "eval" / "cold_start.json").read_text())["models"]
    for stage, model in (("base", "base"), ("before", "stage1"), ("after", "stage2")):
        value = run["scores"][stage]["arith"]
        # the run's own report; one seed: no standard error
        assert 0 <= value <= 1 and value == report[model]["values"]["arith"], (stage, value)
        assert arm[stage]["arith"] == {"mean": value, "se": None, "n": 1}
    assert arm["rl_gain"]["arith"]["mean"] == pytest.approx(run["scores"]["after"]["arith"] -
                                                            run["scores"]["before"]["arith"])
    md = (out / "table.md").read_text()
    assert "| cadft_no_rewrite | 1 |" in md and "RL gain" in md and (out / "table.png").stat().st_size > 5000
    # RL readiness of each model (2 samples per problem here)
    ready = arm["readiness"]
    assert ready["k"] == 2 and "| recipe | model | score | avg@2 | pass@2 | headroom | entropy |" in md
    for stage in ("base", "before", "after"):
        r = ready[stage]
        assert r["avg"]["n"] == 1 and 0 <= r["avg"]["mean"] <= r["pass"]["mean"] <= 1 and r["entropy"]["mean"] > 0
    # the console: one line per run and the table, the launch's own output in each run's console.log
    lines = proc.stdout.splitlines()
    assert "[study] 1/1 cadft_no_rewrite seed 0: running" in proc.stdout
    assert "[study] 1/1 cadft_no_rewrite seed 0: done in" in proc.stdout
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr and len(lines) < 60, proc.stdout
    # a rerun skips the run and starts no launch
    assert again.stdout.count("finished earlier, skipped") == 1 and "running" not in again.stdout
    assert "[study] 1/1 runs finished, 0 failed" in again.stdout


def test_a_second_study_into_the_folder_is_refused_naming_the_difference(study):
    proc = subprocess.run([sys.executable, "-m", "cadft_verl.study", *study_args(study["out"]), "cadft.beta=2.0"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "holds another study" in proc.stderr and "cadft.beta=2.0" in proc.stderr
