"""A stage's metric history across a kill and a resume (no Ray): verl's Tracking with the launch's file backend, the
history merge, the launch console, the summary's and report's reading of the history, stage 1's checkpoint default."""

import json
import subprocess
import sys
import textwrap

import pytest

from cadft_verl.integration import metrics_history as mh


def _raw_steps(path):
    return [json.loads(line)["step"] for line in open(path) if line.strip()]


def test_keep_until_drops_the_steps_to_redo_and_a_line_cut_by_a_kill(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [{"step": s, "data": {"loss": 1.0 / s}} for s in range(1, 6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "data": {"lo')  # killed mid-line
    assert [r["step"] for r in mh.read_history(str(path))] == [1, 2, 3, 4, 5]
    assert mh.keep_until(str(path), 3) == 3
    assert _raw_steps(path) == [1, 2, 3]
    assert mh.keep_until(str(path), 0) == 0 and path.read_text() == ""  # resumed from no checkpoint: all redone
    assert mh.keep_until(str(tmp_path / "missing.jsonl"), 2) == 0


def test_merge_rows_one_row_per_step_later_values_win():
    rows = [{"step": 2, "data": {"a": 1}}, {"step": 1, "data": {"a": 0}}, {"step": 2, "data": {"a": 5, "val": 3}}]
    assert mh.merge_rows(rows) == [{"step": 1, "data": {"a": 0}}, {"step": 2, "data": {"a": 5, "val": 3}}]


@pytest.mark.parametrize("by", ["root", "path"])
def test_verl_tracking_keeps_every_step_once_across_a_kill_and_a_resume(tmp_path, monkeypatch, by):
    """Stage 2's case: verl validates before its first step at the step it resumes from (a second row for that
    step), the launcher has cut the history at the checkpoint before verl's trainer starts."""
    import numpy as np
    import verl.utils.tracking as tracking

    monkeypatch.setattr(tracking, "FileLogger", tracking.FileLogger)  # restored after the test
    if by == "root":
        monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(tmp_path / "metrics"))
        monkeypatch.delenv("VERL_FILE_LOGGER_PATH", raising=False)
        path = tmp_path / "metrics" / "proj" / "exp_stage2.jsonl"
    else:
        path = tmp_path / "one.jsonl"
        monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(path))
    monkeypatch.setenv(mh.ENV, "1")
    mh.install_if_requested()
    assert tracking.FileLogger is mh.ResumableFileLogger
    assert mh.metrics_path("proj", "exp_stage2") == str(path)

    first = tracking.Tracking("proj", "exp_stage2", default_backend=["file"])
    first.log({"val/acc": 0.1}, step=0)  # validation before the first step
    for step in range(1, 7):  # trained up to step 6, checkpoint at step 4, killed after step 6 (no finish)
        first.log({"train/loss": np.float32(1.0 / step), "critic/score/mean": step / 10}, step=step)
    with open(path, "a") as f:  # killed while verl wrote step 7's row
        f.write('{"step": 7, "data": {"train/lo')

    mh.keep_until(str(path), 4)  # the launcher, before verl's trainer resumes from global_step_4
    again = tracking.Tracking("proj", "exp_stage2", default_backend=["file"])
    again.log({"val/acc": 0.4}, step=4)  # verl's validation before training, at the resumed step
    for step in range(5, 9):
        again.log({"train/loss": 1.0 / step, "critic/score/mean": step / 10}, step=step)
    again.finish()

    assert _raw_steps(path) == list(range(0, 9))  # every step exactly once, in the file as written
    history = mh.read_history(str(path))
    assert [r["step"] for r in history] == list(range(0, 9))
    assert history[4]["data"] == {"train/loss": pytest.approx(0.25), "critic/score/mean": 0.4, "val/acc": 0.4}
    assert history[6]["data"]["critic/score/mean"] == 0.6  # redone after the resume: the new value


def test_a_row_cut_by_a_kill_does_not_swallow_the_next_one(tmp_path, monkeypatch):
    """Appending after a cut row would glue the next row to it (one broken line: that step lost); the logger cuts
    the broken end off first."""
    monkeypatch.delenv("VERL_FILE_LOGGER_PATH", raising=False)
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(tmp_path))
    logger = mh.ResumableFileLogger("p", "e")
    logger.log({"a": 1.0}, step=1)
    with open(logger.filepath, "a") as f:
        f.write('{"step": 2, "data": {"a"')
    mh.ResumableFileLogger("p", "e").log({"a": 3.0}, step=3)
    assert [(r["step"], r["data"]["a"]) for r in mh.read_history(logger.filepath)] == [(1, 1.0), (3, 3.0)]


def test_the_summary_and_the_report_read_the_history(tmp_path):
    from cadft_verl.eval.cold_start import training_markdown
    from cadft_verl.launch.progress import STAGE1_KEYS, STAGE2_KEYS, history_summary

    s1, s2 = tmp_path / "s1.jsonl", tmp_path / "s2.jsonl"
    s1.write_text("".join(json.dumps({"step": s, "data": {"stage1/train/loss": 3.0 - s, "stage1/cadft/nll": 2.0,
                                                          "stage1/cadft/frac_downweighted": 0.3}}) + "\n"
                          for s in (1, 2, 3)))
    s2.write_text(json.dumps({"step": 0, "data": {"val-core/arith/reward/mean@1": 0.2}}) + "\n"
                  + json.dumps({"step": 1, "data": {"critic/score/mean": 0.5}}) + "\n"
                  + json.dumps({"step": 2, "data": {"critic/score/mean": 0.6, "val-core/arith/reward/mean@1": 0.3}})
                  + "\n")
    h1, h2 = history_summary(str(s1), STAGE1_KEYS), history_summary(str(s2), STAGE2_KEYS)
    assert h1["steps"] == [1, 2, 3] and h1["loss"]["first"] == {"step": 1, "value": 2.0}
    assert h1["loss"]["last"]["value"] == 0.0 and "val loss" not in h1
    assert h2["steps"] == [0, 1, 2] and h2["val acc"]["first"]["value"] == 0.2 and h2["val acc"]["last"]["step"] == 2
    md = "\n".join(training_markdown({"stage1": h1, "stage2": h2}))
    assert "## Training (metric history)" in md and "| stage 2 | reward | 0.5 (step 1) | 0.6 (step 2) |" in md
    assert "1..3 (3 rows)" in md and str(s2) in md


def test_stage1_checkpoints_a_quarter_of_the_way_by_default():
    from hydra import compose, initialize_config_module

    from cadft_verl.launch.warm_start import save_every

    with initialize_config_module(config_module="cadft_verl.recipes", version_base=None):
        cfg = compose("main", overrides=["recipe=cadft_then_grpo", "profile=cpu"])
    assert cfg.cadft.trainer.save_freq == 0.25
    assert save_every(cfg.cadft.trainer.save_freq, 390) == 98 and save_every(0.25, 3) == 1
    assert save_every(-1, 10) == -1 and save_every(None, 10) == -1 and save_every(5, 10) == 5


def test_stage2_resume_step_follows_verls_resume_mode(tmp_path):
    from omegaconf import OmegaConf

    from cadft_verl.launch.rl import stage2_resume_step

    cfg = OmegaConf.create({"trainer": {"default_local_dir": str(tmp_path), "resume_mode": "auto"}})
    assert stage2_resume_step(cfg) == 0
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("4")
    assert stage2_resume_step(cfg) == 0  # the tracker names a folder that is not there: verl starts from scratch
    (tmp_path / "global_step_4").mkdir()
    assert stage2_resume_step(cfg) == 4
    cfg.trainer.resume_mode = "disable"
    assert stage2_resume_step(cfg) == 0
    cfg.trainer.resume_mode, cfg.trainer.resume_from_path = "resume_path", "/x/global_step_7"
    assert stage2_resume_step(cfg) == 7


CONSOLE_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    from cadft_verl.console import LaunchConsole, progress, say
    console = LaunchConsole(sys.argv[1]).open()
    print("[cadft-verl] a summary line")
    print("verl: a metric dump nobody reads")
    print("warning on stderr", file=sys.stderr)
    os.write(1, b"C-level output\\n")
    subprocess.run([sys.executable, "-c", "print('a child process')"])
    for step in range(1, 101):
        progress("stage 1 (cadft)", step, 100, {"loss": 1.0 / step, "down-weighted": "30%"})
    say("| a | table |")
    console.close()
    print("after close")
""")


def test_the_console_shows_progress_and_summary_lines_and_the_log_gets_everything(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    log = tmp_path / "launch.log"
    out = proc.stdout
    assert out.count(f"full log (Ray, vLLM, verl): {log}") == 1 and out.count(f"full log: {log}") == 1  # start, end
    assert "[cadft-verl] a summary line" in out and "| a | table |" in out and "after close" in out
    for hidden in ("metric dump", "C-level output", "a child process", "warning on stderr"):
        assert hidden not in out + proc.stderr
        assert hidden in log.read_text()
    bars = [line for line in out.splitlines() if line.startswith("stage 1 (cadft) [")]
    assert 10 <= len(bars) <= 21 and bars[-1].startswith("stage 1 (cadft) [" + "#" * 20 + "] 100/100  loss 0.01")
    assert "down-weighted 30%" in bars[-1]
    assert len(out.splitlines()) < 30


def test_stage2_progress_follows_its_history_from_the_resumed_step(tmp_path, monkeypatch):
    """Stage 2 runs in verl's TaskRunner: the launch's console follows its history file (what the resumed launch
    shows after a kill at step 3 with the checkpoint of step 2, as measured in a real launch)."""
    import cadft_verl.launch.progress as launcher

    shown = []
    monkeypatch.setattr(launcher, "show_progress", lambda label, step, total, values: shown.append((step, values)))
    path = tmp_path / "grpo_stage2.jsonl"

    def add(step, data):
        with open(path, "a") as f:
            f.write(json.dumps({"step": step, "data": data}) + "\n")

    add(0, {"val-core/arith/acc/mean@1": 0.2})
    add(1, {"critic/score/mean": 0.1})
    add(2, {"critic/score/mean": 0.3})  # the killed launch's rows up to its checkpoint
    watcher = launcher.HistoryWatcher(str(path), "stage 2 (grpo)", 4, launcher.STAGE2_KEYS, after=2)
    watcher.poll()
    add(2, {"val-core/arith/acc/mean@1": 0.4})  # verl's validation before training, at the resumed step
    watcher.poll()
    add(3, {"critic/score/mean": 0.5})
    watcher.poll()
    watcher.poll()
    assert [s for s, _ in shown] == [2, 2, 3]
    none = {"signal": None, "entropy": None}  # rows without the group-signal share and the entropy
    assert shown[1][1] == {"reward": 0.3, **none, "val acc": 0.4}
    assert shown[2][1] == {"reward": 0.5, **none, "val acc": None}
