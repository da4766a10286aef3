"""Each run of a study: the one launch (``python -m verl.trainer.main``) in its own folder, as a user would start it.

A run is finished when its launch wrote the cold-start report (``<run>/summary.json``'s ``results.eval``) with the
overrides the study gives it now (``<run>/study_run.json``): a study rerun skips it. Any other run is (re)started,
and the launch resumes it per stage from its own checkpoints (a killed run continues where its last checkpoint
was). The launch's console goes to ``<run>/console.log`` (its full logs to ``<run>/launch.log``); the study prints
one line per run.

The base model is the same in every run of a study that does not override it: its evaluation is done once and
copied into the next runs (``eval/base``; the launch's eval stage reuses it only under the same model fingerprint and
settings, else evaluates again).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

from cadft_verl.console import LOG_FILE
from cadft_verl.launch.run_dir import RunDir
from cadft_verl.study.plan import Run, override_key
from cadft_verl.utils.files import read_json, write_json

RUN_FILE = "study_run.json"
CONSOLE_LOG = "console.log"


def run_finished(run: Run) -> bool:
    summary = RunDir(run.run_dir).summary()
    recorded = read_json(os.path.join(run.run_dir, RUN_FILE), tolerant=True) or {}
    report = (((summary.get("results") or {}).get("eval") or {}).get("report") or {}).get("json")
    return bool(report) and os.path.isfile(report) and recorded.get("overrides") == run.overrides


def share_base_eval(run: Run, finished: list[Run]) -> str | None:
    """Copy a finished run's base-model evaluation (and its RL-readiness samples, ``base_readiness``) into ``run``
    (before its launch); the source folder or None."""
    target = RunDir(run.run_dir).eval_model_dir("base")
    if os.path.exists(target):
        return None
    model = _model(run)
    for other in finished:
        source = RunDir(other.run_dir).eval_model_dir("base")
        if _model(other) == model and os.path.isfile(os.path.join(source, "eval_key.json")):
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("merged_model"))
            ready = RunDir(other.run_dir).eval_model_dir("base_readiness")
            if os.path.isfile(os.path.join(ready, "eval_key.json")):
                shutil.copytree(ready, RunDir(run.run_dir).eval_model_dir("base_readiness"), dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("merged_model"))
            return source
    return None


def _model(run: Run) -> str | None:
    return next((o.split("=", 1)[1] for o in run.overrides if override_key(o) == "actor_rollout_ref.model.path"),
                None)


def start_run(run: Run, finished: list[Run], show=None) -> dict:
    """Run (or resume) one launch; returns ``{ok, seconds, rc, console}``. Its console goes to ``console.log``, and
    each of its lines to ``show`` (the study's progress line) when given. Its process group is the study's, so that
    a signal to the study (Ctrl-C, a kill of the group) reaches the launch too."""
    os.makedirs(run.run_dir, exist_ok=True)
    shared = share_base_eval(run, finished)
    write_json(os.path.join(run.run_dir, RUN_FILE), {"arm": run.arm, "seed": run.seed, "recipe": run.recipe,
                                                     "overrides": run.overrides, "base_eval_from": shared}, indent=1)
    console = os.path.join(run.run_dir, CONSOLE_LOG)
    t0 = time.time()
    with open(console, "a", encoding="utf-8") as log:
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(run.command())}\n")
        log.flush()
        proc = subprocess.Popen(run.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=dict(os.environ, PYTHONUNBUFFERED="1"))
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if show is not None:
                show(line.rstrip("\n"))
        rc = proc.wait()
    return {"ok": rc == 0 and run_finished(run), "rc": rc, "seconds": time.time() - t0, "console": console,
            "launch_log": os.path.join(run.run_dir, LOG_FILE)}
