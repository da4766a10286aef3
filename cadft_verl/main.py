"""The one launch: ``python -m verl.trainer.main recipe=<name> [profile=cpu] [key=value ...]``.

(also ``python -m cadft_verl.main ...``). verl 0.9.1 has no ``verl.trainer.main``: this project's verl plugin makes
that module name resolve to this file, without touching verl's files.

Recipes (``recipes/recipe/*.yaml``) compose over verl's own ``ppo_trainer`` config, so every verl key can still be
overridden. ``stages`` chooses the stages (``cadft_verl.launch``): ``cadft`` the warm start on verl's FSDP actor
workers, ``rl`` verl's own GRPO/PPO from its HF export, ``eval`` the base, warm-start and RL models on the
``eval.benchmarks`` and the cold-start report. Every input is checked before any worker starts. Each stage resumes
from its own checkpoints when the launch is rerun into the same ``trainer.default_local_dir``, a finished stage is not
redone, and one launch at a time may write there (``launch.lock``). The run folder's layout:
``cadft_verl.launch.run_dir``. The console shows each stage's progress and the launch's summary lines; everything
else (Ray, vLLM, verl) goes to ``<run dir>/launch.log`` (``cadft_verl.console``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

import hydra

from cadft_verl.console import LaunchConsole, active
from cadft_verl.integration import metrics_history
from cadft_verl.launch import ray_cluster
from cadft_verl.launch.run_dir import LOCK, RunDir
from cadft_verl.launch.stage import Launch
from cadft_verl.launch.stages import check_inputs, stages_of
from cadft_verl.launch.watchdog import StageFailed, Watchdog
from cadft_verl.utils.files import FolderBusyError, FolderLock


def prepare_environment(run: RunDir) -> None:
    """Each stage's metric history goes to ``<run dir>/metrics`` through the resumable file logger, in this process
    and, through the environment, in every Ray worker."""
    os.environ.setdefault("VERL_FILE_LOGGER_ROOT", run.metrics_root)
    if os.environ.pop("VERL_FILE_LOGGER_PATH", None):  # one file for both stages: each would cut the other's steps
        print(f"[cadft-verl] VERL_FILE_LOGGER_PATH is ignored by the one launch (each stage keeps its own history); "
              f"the histories go to {os.environ['VERL_FILE_LOGGER_ROOT']} (VERL_FILE_LOGGER_ROOT)", flush=True)
    os.environ[metrics_history.ENV] = "1"
    metrics_history.install()


def run_stages(config, run: RunDir) -> dict:
    """Each stage in turn, reused when a previous launch finished it; ``summary.json`` after each."""
    stages = stages_of(config)
    launch = Launch(config, run)
    summary = {"recipe": config.get("recipe_name"), "stages": [s.name for s in stages], "run_dir": run.root,
               "results": launch.results, "wall_s": {}}
    run.write_summary(summary)
    wall = summary["wall_s"]
    for stage in stages:
        result = stage.done(launch)
        if result is None:
            if stage.uses_ray:
                wall["ray_init"] = wall.get("ray_init", 0.0) + ray_cluster.start(config)
            else:
                ray_cluster.stop()  # the stage needs no worker: free their memory (GPU: vLLM's) first
            t0 = time.time()
            with watch(stage, launch):
                result = stage.run(launch)
            wall[stage.key] = time.time() - t0
        launch.results[stage.key] = stage.summarize(launch, result)
        run.write_summary(summary)
    print(f"[cadft-verl] run finished: outputs in {run.root} (summary: {run.summary_file})")
    for stage in stages:
        stage.finish(launch)
    return summary


def watch(stage, launch: Launch):
    """The watchdog around a stage on Ray workers (``watchdog:`` block): a dead worker or a stall stops the launch."""
    settings = launch.config.get("watchdog") or {}
    if not stage.uses_ray or not settings.get("enabled", True):
        return contextlib.nullcontext()
    return Watchdog(stage.label(launch), stage.history(launch),
                    interval=float(settings.get("interval_s", 5)), stall_s=settings.get("stall_s"))


def launch(config) -> dict:
    from cadft_verl.check import preflight
    from cadft_verl.plugin import ensure_loaded

    ensure_loaded()
    check_inputs(config)
    preflight(config)  # verl in the supported range, the rollout engine of stage 2 installed
    run = RunDir(config.trainer.default_local_dir)
    prepare_environment(run)
    return run_stages(config, run)


class LaunchSession:
    """The run folder's lock and the launch's console around everything it does. Ray is shut down inside the
    console, so that its last worker logs still go to the log file. Nested uses share the outer session."""

    def __init__(self, config):
        self.run = RunDir(config.trainer.default_local_dir)
        self.verbose = bool((config.get("console") or {}).get("verbose", False))
        self.lock = self.console = None

    def __enter__(self):
        if active() is None:
            created = not os.path.exists(self.run.root)
            self.lock = FolderLock(self.run.root, LOCK, what="launch").acquire()
            self.console = LaunchConsole(self.run.root, verbose=self.verbose, created=created).open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.console is not None:
            try:
                ray_cluster.stop()
            finally:
                self.console.close(failed=exc_type is not None)
                self.lock.release()
        return False


@hydra.main(config_path="recipes", config_name="main", version_base=None)
def main(config):
    from cadft_verl.platform import prepare_device

    try:
        with LaunchSession(config):  # from the start: verl's and the platform's first messages go to the log too
            prepare_device(config)
            launch(config)
    except FolderBusyError as e:  # another launch writes into this run folder: refused, nothing touched
        sys.exit(f"[cadft-verl] {e}")
    except StageFailed:  # a dead worker or a stall: the watchdog's message is on the console already
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
