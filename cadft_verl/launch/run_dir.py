"""A launch's run folder (``trainer.default_local_dir``): the one place that knows its layout.

```
<run dir>/
  launch.lock                  the launch writing here (cadft_verl.utils.files.FolderLock)
  launch.log                   everything but the console (cadft_verl.console)
  summary.json                 what ran and where its outputs are
  metrics/<project>/<experiment>_stage{1,2}.jsonl     each training stage's metric history
  stage1_<loss>/               the warm start: verl's checkpoints (global_step_N/, its HF export in huggingface/),
                               samples.jsonl (every trained sample's NLL, z, weight), COMPLETE.json
  stage2_rl/                   verl's GRPO/PPO checkpoints (global_step_N/actor/huggingface), COMPLETE.json
  eval/<model>/                each model's evaluation (samples, metrics, eval_key.json)
  eval/cold_start.{md,png,json}   the cold-start report
```

``COMPLETE.json`` marks a finished training stage and records what it handed on; verl's own
``latest_checkpointed_iteration.txt`` names a stage's newest complete checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cadft_verl.utils.files import read_json, write_json

COMPLETE = "COMPLETE.json"
#: verl's checkpoint tracker (``verl.utils.checkpoint``): the step of the newest complete checkpoint in its folder
VERL_TRACKER = "latest_checkpointed_iteration.txt"
SUMMARY = "summary.json"
LOCK = "launch.lock"
METRICS = "metrics"
EVAL = "eval"
REPORT = "cold_start"


def step_folder(step: int) -> str:
    return f"global_step_{step}"


def step_of(path: str) -> int:
    """The step of a ``.../global_step_N`` checkpoint path (0 when it names none)."""
    tail = path.rstrip("/").split("global_step_")[-1] if "global_step_" in path else ""
    return int(tail) if tail.isdigit() else 0


@dataclass(frozen=True)
class StageDir:
    """One training stage's folder: verl's checkpoints in it, and its ``COMPLETE.json``."""

    path: str
    #: where the HF export sits inside a step folder (stage 1: ``huggingface``; verl's RL trainer:
    #: ``actor/huggingface``)
    export: str = "huggingface"

    def step_dir(self, step: int) -> str:
        return os.path.join(self.path, step_folder(step))

    def hf_export(self, step: int) -> str:
        return os.path.join(self.step_dir(step), self.export)

    def latest_step(self) -> int:
        """The step of the newest checkpoint verl completed here (its tracker file), 0 when there is none."""
        try:
            with open(os.path.join(self.path, VERL_TRACKER)) as f:
                step = int(f.read().strip())
        except (OSError, ValueError):
            return 0
        return step if os.path.isdir(self.step_dir(step)) else 0

    @property
    def complete_file(self) -> str:
        return os.path.join(self.path, COMPLETE)

    def complete(self) -> dict | None:
        """What a finished stage recorded (``None``: not finished; a cut marker counts as not finished)."""
        done = read_json(self.complete_file, tolerant=True)
        return done if isinstance(done, dict) else None

    def mark_complete(self, result: dict) -> None:
        write_json(self.complete_file, result)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)


class RunDir:
    """Every folder and file name of a run (``RunDir(config.trainer.default_local_dir)``)."""

    def __init__(self, root: str):
        self.root = os.path.abspath(os.path.expanduser(str(root)))

    def __repr__(self) -> str:
        return f"RunDir({self.root!r})"

    # ---------------------------------------------------------------------------------------- the launch's files
    @property
    def summary_file(self) -> str:
        return os.path.join(self.root, SUMMARY)

    def summary(self) -> dict:
        return read_json(self.summary_file, tolerant=True) or {}

    def write_summary(self, summary: dict) -> str:
        return write_json(self.summary_file, summary)

    @property
    def metrics_root(self) -> str:
        return os.path.join(self.root, METRICS)

    # ---------------------------------------------------------------------------------------- training stages
    def stage1(self, loss: str) -> StageDir:
        """The warm start's folder (one per loss, so that the baselines of one run folder do not resume each other)."""
        return StageDir(os.path.join(self.root, f"stage1_{loss}"))

    @property
    def stage2(self) -> StageDir:
        return StageDir(os.path.join(self.root, "stage2_rl"), export=os.path.join("actor", "huggingface"))

    # ---------------------------------------------------------------------------------------- evaluation
    @property
    def eval_dir(self) -> str:
        return os.path.join(self.root, EVAL)

    def eval_model_dir(self, label: str) -> str:
        return os.path.join(self.eval_dir, label)

    def report(self, ext: str) -> str:
        """``eval/cold_start.<ext>`` (md, png, json)."""
        return os.path.join(self.eval_dir, f"{REPORT}.{ext}")

    def report_json(self) -> dict | None:
        return read_json(self.report("json"), tolerant=True)
