"""A stage of the one launch: the type every stage is (the registry is ``stages``).

A ``Stage`` knows its own inputs (``file_keys``, ``check``: refused before any worker starts), whether a previous
launch into the same run folder already finished it (``done``: its recorded result, else ``None``), how to run it
(``run``), and what ``summary.json`` records of it (``summarize``). The launch (``cadft_verl.main``) only loops over
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cadft_verl.launch.run_dir import RunDir


@dataclass
class Launch:
    """What the stages of one launch share: its config, its run folder and the results of the stages so far."""

    config: object
    run: RunDir
    #: ``summary.json``'s ``results``: ``stage1``, ``stage2``, ``eval`` (each stage's ``key``)
    results: dict = field(default_factory=dict)


class Stage:
    #: the name ``config.stages`` uses
    name: str = ""
    #: its key in ``summary.json``'s results and wall times, and the eval stage's model label
    key: str = ""
    #: whether it runs on Ray workers (Ray is started for it, else shut down first)
    uses_ray: bool = True

    def file_keys(self, config) -> list[str]:
        """The config keys of files this stage reads (checked to exist before any worker starts)."""
        return []

    def check(self, config) -> None:
        """Refuse, before any worker starts, inputs this stage could not run with (naming the option)."""

    def done(self, launch: Launch) -> dict | None:
        """The result a previous launch recorded for this stage, when it need not run again."""
        return None

    def run(self, launch: Launch) -> dict:
        raise NotImplementedError

    def label(self, launch: Launch) -> str:
        """The stage as the console names it."""
        return self.key

    def history(self, launch: Launch) -> str | None:
        """The stage's metric history file (its progress), when it has one."""
        return None

    def summarize(self, launch: Launch, result: dict) -> dict:
        """What ``summary.json`` records (by default the result); may check the result (the hand-over)."""
        return result

    def finish(self, launch: Launch) -> None:
        """The stage's last words, after the launch's summary line (the eval stage: the report)."""


class TrainingStage(Stage):
    """A stage that trains: its metric history is ``<run dir>/metrics/<project>/<experiment>_<key>.jsonl`` (kept by
    the tracking's ``file`` backend, always on), and ``summary.json`` records its digest (``history_keys``)."""

    history_keys: dict[str, str] = {}

    def history(self, launch: Launch) -> str:
        from cadft_verl.integration import metrics_history

        config = launch.config
        return metrics_history.metrics_path(config.trainer.project_name, experiment(config, self.key))

    def summarize(self, launch: Launch, result: dict) -> dict:
        from cadft_verl.launch.progress import history_summary

        return dict(result, history=history_summary(self.history(launch), self.history_keys))


def experiment(config, key: str) -> str:
    """The metric history's experiment name of a training stage (``<experiment>_stage1`` / ``_stage2``)."""
    return f"{config.trainer.experiment_name}_{key}"


def with_file_logger(backends) -> list[str]:
    """The tracking backends with ``file``: each stage's metric history is always kept (what the summary reads)."""
    backends = [backends] if isinstance(backends, str) else list(backends or [])
    return backends if "file" in backends else [*backends, "file"]
