"""Each stage's metric history, kept across a kill and a resume: every step exactly once.

The history is verl's file-logger format (``trainer.logger`` backend ``file``): one JSON line
``{"step": N, "data": {...}}`` per step, at ``$VERL_FILE_LOGGER_PATH`` or
``$VERL_FILE_LOGGER_ROOT/<project>/<experiment>.jsonl`` (the one launch: ``<run dir>/metrics/<project>/
<experiment>_stage1.jsonl`` and ``..._stage2.jsonl``).

verl's own ``FileLogger`` opens that file for writing, so a resumed stage would keep only the steps after its
checkpoint. ``ResumableFileLogger`` takes its place (``install()``: the ``FileLogger`` name of
``verl.utils.tracking``, which ``Tracking`` looks up when it builds its backends; verl's files stay untouched). It
appends, and a row for a step the file already holds is merged into that step's row (verl validates before its first
step at the step it resumes from). Before a stage resumes from the checkpoint of step ``N``, its launcher calls
``keep_until(path, N)``: the rows of the steps that will be redone are dropped, the earlier ones are kept.

The launch installs it in its own process and, through ``ENV`` (read by the plugin at ``import verl``), in every Ray
worker, so that verl's stage-2 trainer (in its TaskRunner actor) logs through it too.
"""

from __future__ import annotations

import os

from cadft_verl.utils.files import append_jsonl, read_jsonl, write_jsonl

ENV = "CADFT_VERL_RESUMABLE_METRICS"


def metrics_path(project_name: str, experiment_name: str) -> str:
    """Where the file logger of this project and experiment writes (the same rule as verl's ``FileLogger``)."""
    path = os.getenv("VERL_FILE_LOGGER_PATH")
    if path:
        return os.path.abspath(path)
    root = os.path.expanduser(os.getenv("VERL_FILE_LOGGER_ROOT", "."))
    return os.path.abspath(os.path.join(root, project_name, f"{experiment_name}.jsonl"))


def read_rows(path: str, warn: bool = False) -> list[dict]:
    """The file's rows as written; a line cut off by a kill (or still being written) is left out."""
    return [{"step": int(row["step"]), "data": dict(row.get("data") or {})}
            for row in read_jsonl(path, warn=warn) if isinstance(row, dict) and "step" in row]


def merge_rows(rows: list[dict]) -> list[dict]:
    """One row per step, in step order; a later row's values update an earlier row of the same step."""
    merged: dict[int, dict] = {}
    for row in rows:
        merged.setdefault(int(row["step"]), {}).update(row["data"])
    return [{"step": step, "data": merged[step]} for step in sorted(merged)]


def read_history(path: str) -> list[dict]:
    """The stage's history: one row per step, in step order."""
    return merge_rows(read_rows(path))


def keep_until(path: str, step: int) -> int:
    """Keep the history of steps ``<= step`` (the checkpoint a stage resumes from; 0: a fresh start keeps only a
    validation before the first step); returns the number of rows kept."""
    if not os.path.exists(path):
        return 0
    rows = [r for r in read_history(path) if r["step"] <= step]
    write_jsonl(path, rows)
    return len(rows)


def _jsonable(data: dict) -> dict:
    out = {}
    for key, value in data.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        elif hasattr(value, "tolist"):
            value = value.tolist()
        out[key] = value
    return out


class ResumableFileLogger:
    """verl's file-logger backend (same path, same rows) that appends instead of truncating. Each row is appended
    whole (``cadft_verl.utils.files.append_jsonl``: a row cut by a kill is cut off before the next one is written)."""

    def __init__(self, project_name: str, experiment_name: str):
        self.project_name = project_name
        self.experiment_name = experiment_name
        self.filepath = metrics_path(project_name, experiment_name)
        os.makedirs(os.path.dirname(self.filepath), exist_ok=True)
        print(f"Creating file logger at {self.filepath} (appending: earlier steps are kept)")
        self._steps: set[int] | None = None

    def keep_until(self, step: int) -> int:
        """Drop the rows of the steps after ``step`` (called before a resumed stage logs its first row)."""
        self._steps = None
        return keep_until(self.filepath, step)

    def log(self, data, step):
        if self._steps is None:
            self._steps = {r["step"] for r in read_rows(self.filepath, warn=True)}
        step = int(step)
        row = {"step": step, "data": _jsonable(dict(data))}
        if step in self._steps:  # the same step again (a validation at the step a stage resumed from): one row
            write_jsonl(self.filepath, merge_rows(read_rows(self.filepath) + [row]))
            return
        append_jsonl(self.filepath, row)
        self._steps.add(step)

    def finish(self):
        pass


def install() -> None:
    """Make verl's ``Tracking`` build ``ResumableFileLogger`` for its ``file`` backend (in this process)."""
    import verl.utils.tracking as tracking

    tracking.FileLogger = ResumableFileLogger


def install_if_requested() -> None:
    if os.environ.get(ENV) == "1":
        install()
