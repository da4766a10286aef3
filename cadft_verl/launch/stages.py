"""The registry of the launch's stages, in the order a launch runs them (``config.stages`` names them): the warm
start (``cadft``, ``warm_start_stage``), verl's RL trainer (``rl``, ``rl``) and the evaluation with the cold-start
report (``eval``, ``evaluate``); and the launch's input checks, which ask each stage for its own."""

from __future__ import annotations

from cadft_verl.launch.evaluate import EvalStage
from cadft_verl.launch.rl import RLStage
from cadft_verl.launch.stage import Stage
from cadft_verl.launch.warm_start_stage import WarmStartStage

STAGES: dict[str, Stage] = {stage.name: stage for stage in (WarmStartStage(), RLStage(), EvalStage())}


def stages_of(config) -> list[Stage]:
    """``config.stages`` as stages: a non-empty list of registered names, each once, in the registry's order."""
    order = list(STAGES)
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

    from cadft_verl.lora.checks import check_lora_options

    stages = stages_of(config)
    check_lora_options(config, runs_stage1=any(s.name == "cadft" for s in stages))
    for stage in stages:
        stage.check(config)
    check_config_paths(config, "actor_rollout_ref.model.path", [k for s in stages for k in s.file_keys(config)])
    check_start_model(config.actor_rollout_ref.model.path, "actor_rollout_ref.model.path",
                      chat_template=any(s.name in ("cadft", "rl") for s in stages))
