"""A stage of the one launch, and the registry of stages (``config.stages`` names them, in this order).

A ``Stage`` knows its own inputs (``file_keys``, ``check``: refused before any worker starts), whether a previous
launch into the same run folder already finished it (``done``: its recorded result, else ``None``), how to run it
(``run``), and what ``summary.json`` records of it (``summarize``). The launch (``cadft_verl.main``) only loops over
them: ``warm_start.stage`` (``cadft``), ``rl`` (``rl``) and ``evaluate`` (``eval``).
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


#: the stages' names, in the order a launch runs them
ORDER = ("cadft", "rl", "eval")
STAGES: dict[str, Stage] = {}


def register(cls: type[Stage]) -> type[Stage]:
    STAGES[cls.name] = cls()
    return cls


def registry() -> dict[str, Stage]:
    """The registered stages (importing the modules that register this project's three)."""
    from cadft_verl.launch import evaluate, rl, warm_start_stage  # noqa: F401

    return STAGES


def stages_of(config) -> list[Stage]:
    """``config.stages`` as stages: a non-empty list of registered names, each once, in the registry's order."""
    order = [n for n in ORDER if n in registry()]
    names = list(config.stages)
    if not names or any(n not in STAGES for n in names) or names != sorted(names, key=order.index) \
            or len(set(names)) != len(names):
        raise ValueError(f"stages: {names} is not a non-empty list of {tuple(order)}, in that order")
    return [STAGES[n] for n in names]


def check_inputs(config) -> None:
    """Fail before any worker starts: an unknown stage, a missing model or data file (naming the key and path), and
    whatever a stage refuses (e.g. an eval stage without benchmarks, listing what exists)."""
    from cadft_verl.eval.model_path import check_start_model
    from cadft_verl.utils.paths import check_config_paths

    stages = stages_of(config)
    for stage in stages:
        stage.check(config)
    check_config_paths(config, "actor_rollout_ref.model.path", [k for s in stages for k in s.file_keys(config)])
    check_start_model(config.actor_rollout_ref.model.path, "actor_rollout_ref.model.path",
                      chat_template=any(s.name in ("cadft", "rl") for s in stages))
