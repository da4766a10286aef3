"""The run folder under faults (no Ray): a second launch into a folder in use is refused before it touches anything,
stage 1's per-sample log keeps each step once after a kill at any point, and a marker cut by a kill counts as none."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from cadft_verl.launch.run_dir import RunDir
from cadft_verl.launch.warm_start.samples import SampleLog


def test_a_second_launch_into_a_folder_in_use_is_refused_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    hold = textwrap.dedent("""
        import sys, time
        from cadft_verl.utils.files import FolderLock
        FolderLock(sys.argv[1], "launch.lock", what="launch").acquire()
        print("held", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = sorted(os.listdir(run))
        proc = subprocess.run([sys.executable, "-m", "verl.trainer.main", "recipe=cadft", "profile=cpu",
                               f"trainer.default_local_dir={run}"], capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode != 0
    assert f"{run} is in use by another launch (pid {holder.pid} on host " in proc.stderr
    assert sorted(os.listdir(run)) == before  # no log, no summary: nothing of the running launch was touched


def test_the_per_sample_log_keeps_each_step_once_through_a_kill_at_any_point(tmp_path):
    log = SampleLog(str(tmp_path / "samples.jsonl"))
    for step in (1, 2, 3):
        log.append(step, {"c": [1.0], "z": [0.0]})
    with open(log.path, "a") as f:
        f.write('{"step": 4, "c": [1.')  # killed mid-append
    log.keep_until(2)  # resumed from the checkpoint of step 2: steps 3 and 4 are trained again
    assert [r["step"] for r in log.rows()] == [1, 2]
    log.append(3, {"c": [2.0]})
    assert [r["step"] for r in log.rows()] == [1, 2, 3]
    log.keep_until(0)  # killed before the first checkpoint: the rerun starts over, and so does the log
    assert log.rows() == []
    log.append(1, {"c": []})  # a step without samples writes nothing
    assert log.rows() == []


def test_a_completion_marker_cut_by_a_kill_means_the_stage_is_not_finished(tmp_path):
    run = RunDir(tmp_path)
    stage = run.stage1("cadft")
    os.makedirs(stage.path)
    with open(stage.complete_file, "w") as f:
        f.write('{"stage": "cadft", "hf_mo')
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert stage.complete() is None
    stage.mark_complete({"stage": "cadft", "steps": 4})
    assert stage.complete() == {"stage": "cadft", "steps": 4}
    assert json.loads(open(stage.complete_file).read())["steps"] == 4


def test_the_run_folder_layout_lives_in_run_dir(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.stage1("dft").path.endswith("/r/stage1_dft") and run.stage2.path.endswith("/r/stage2_rl")
    os.makedirs(run.stage2.step_dir(3))
    with open(os.path.join(run.stage2.path, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("3")
    assert run.stage2.latest_step() == 3
    assert run.stage2.hf_export(3).endswith("stage2_rl/global_step_3/actor/huggingface")
    assert run.stage1("cadft").hf_export(2).endswith("stage1_cadft/global_step_2/huggingface")
    assert run.report("json").endswith("/r/eval/cold_start.json")


def test_stage2_killed_between_a_checkpoint_and_its_metrics_row_redoes_that_step(tmp_path):
    """verl writes step N's checkpoint before its metrics row: a kill in between would lose row N on a resume from
    N; the launch resumes from the checkpoint before it instead, so every finished step keeps its row."""
    from omegaconf import OmegaConf

    from cadft_verl.launch.rl import resume_where_logged

    stage = tmp_path / "stage2_rl"
    for step in (1, 2):
        (stage / f"global_step_{step}").mkdir(parents=True)
    (stage / "latest_checkpointed_iteration.txt").write_text("2")
    history = tmp_path / "exp_stage2.jsonl"
    rows = [{"step": 0, "data": {"val-core/acc": 0.3}}, {"step": 1, "data": {"training/global_step": 1}}]
    history.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = OmegaConf.create({"trainer": {"default_local_dir": str(stage), "resume_mode": "auto"}})
    assert resume_where_logged(cfg, str(history)) == 1
    assert cfg.trainer.resume_mode == "resume_path" and cfg.trainer.resume_from_path == str(stage / "global_step_1")
    # the row of step 2 is there: resume from step 2 as verl would
    with open(history, "a") as f:
        f.write(json.dumps({"step": 2, "data": {"training/global_step": 2}}) + "\n")
    cfg = OmegaConf.create({"trainer": {"default_local_dir": str(stage), "resume_mode": "auto"}})
    assert resume_where_logged(cfg, str(history)) == 2 and cfg.trainer.resume_mode == "auto"
    # no earlier checkpoint with a row: from the start
    history.write_text(json.dumps(rows[0]) + "\n")
    cfg = OmegaConf.create({"trainer": {"default_local_dir": str(stage), "resume_mode": "auto"}})
    assert resume_where_logged(cfg, str(history)) == 0 and cfg.trainer.resume_mode == "disable"
