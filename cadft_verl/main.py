"""The one launch: ``python -m verl.trainer.main recipe=<name> [profile=cpu] [key=value ...]``.

(also ``python -m cadft_verl.main ...``). verl 0.9.1 has no ``verl.trainer.main``: this project's verl plugin makes
that module name resolve to this file, without touching verl's files.

Recipes (``recipes/recipe/*.yaml``) compose over verl's own ``ppo_trainer`` config, so every verl key can still be
overridden. They choose the stages:
- stage 1 ``cadft``: CADFT / DFT / SFT on verl's FSDP actor workers (``RayCADFTStage``), writing an HF export;
- stage 2 ``rl``: verl's own GRPO/PPO trainer (``main_ppo``), starting from stage 1's HF export with a fresh
  optimizer and LR schedule; its final checkpoint is always saved, with an HF export (``hf_model`` in
  ``actor_rollout_ref.actor.checkpoint.save_contents``, set in ``recipes/main.yaml``);
- ``eval``: the base model, stage 1's export and stage 2's final checkpoint on the ``eval.benchmarks``, and the
  run's cold-start report in ``<run dir>/eval/`` (``cadft_verl.eval.stage``).
Each stage resumes from its own checkpoints when the launch is rerun into the same ``trainer.default_local_dir``;
a finished stage 1 or stage 2 is not redone (``COMPLETE.json`` in its folder), nor an evaluation whose model and
settings did not change. ``<run dir>/summary.json`` records what ran and where the outputs are.
"""

from __future__ import annotations

import json
import os
import sys
import time

import hydra
from omegaconf import OmegaConf, open_dict

STAGES = ("cadft", "rl", "eval")
# stage 2 saves only its final checkpoint when trainer.save_freq <= 0 (verl would save none)
FINAL_ONLY = 2**31 - 1
COMPLETE = "COMPLETE.json"


def check_inputs(config) -> None:
    """Fail before any worker starts: unknown stage, missing model or data file (naming the key and path), an eval
    stage without benchmarks or with an unknown or missing one (listing what exists)."""
    from cadft_verl.losses import LossConfig
    from cadft_verl.utils.paths import check_config_paths

    stages = list(config.stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages or stages != sorted(stages, key=STAGES.index) or len(set(stages)) != len(stages):
        raise ValueError(f"stages: {stages} is not a non-empty list of {STAGES}, in that order")
    file_keys = []
    if "cadft" in stages:
        LossConfig.from_mapping(config.cadft)
        if not config.cadft.data.train_files:
            raise ValueError("cadft.data.train_files: the recipe runs stage 1 but no SFT training file is set")
        file_keys += ["cadft.data.train_files", "cadft.data.val_files"]
    if "rl" in stages:
        file_keys += ["data.train_files", "data.val_files"]
    check_config_paths(config, "actor_rollout_ref.model.path", file_keys)
    if "eval" in stages:
        from cadft_verl.eval.stage import check_eval_inputs

        check_eval_inputs(config)


def init_ray(config) -> None:
    import ray
    from verl.trainer.constants_ppo import get_ppo_ray_runtime_env

    if ray.is_initialized():
        return
    runtime_env = get_ppo_ray_runtime_env(config)
    env_vars = runtime_env.setdefault("env_vars", {})
    for key in ("VERL_PLATFORM", "VLLM_TARGET_DEVICE", "VLLM_CPU_KVCACHE_SPACE", "VERL_FILE_LOGGER_ROOT"):
        if os.environ.get(key):
            env_vars[key] = os.environ[key]
    if config.transfer_queue.get("enable", False) or ("rl" in config.stages and config.trainer.get("use_v1", True)):
        env_vars["TRANSFER_QUEUE_ENABLE"] = "1"
    kwargs = OmegaConf.to_container(config.ray_kwargs.get("ray_init", {}), resolve=True)
    kwargs["runtime_env"] = OmegaConf.to_container(OmegaConf.merge(runtime_env, kwargs.get("runtime_env") or {}))
    ray.init(**kwargs)


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def write_summary(run_dir: str, summary: dict, name: str = "summary.json") -> str:
    path = os.path.join(run_dir, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2, default=str)
    os.replace(tmp, path)
    return path


def check_handoff(hf_model: str) -> None:
    """The stage-1 export must be a loadable HF model: never fall back to the base model silently."""
    from transformers import AutoConfig

    if not os.path.isdir(hf_model):
        raise FileNotFoundError(f"stage 1 checkpoint missing: {hf_model} does not exist (delete stage 1's "
                                "COMPLETE.json to retrain it)")
    weights = [f for f in os.listdir(hf_model) if f.endswith((".safetensors", ".bin"))]
    if not weights:
        raise FileNotFoundError(f"stage 1 checkpoint corrupt: no weight files in {hf_model}")
    try:
        AutoConfig.from_pretrained(hf_model)
    except Exception as exc:
        raise RuntimeError(f"stage 1 checkpoint corrupt: {hf_model} cannot be loaded ({exc})") from exc


def ensure_ray(config, wall: dict) -> None:
    """Ray is started only for a stage that has work to do (a rerun that only evaluates starts none)."""
    import ray

    if not ray.is_initialized():
        t0 = time.time()
        init_ray(config)
        wall["ray_init"] = time.time() - t0


def run_stage1(config, run_dir: str, wall: dict | None = None) -> dict:
    from verl.utils.tracking import Tracking

    from cadft_verl.trainer.ray_stage import COMPLETE as STAGE1_COMPLETE
    from cadft_verl.trainer.ray_stage import RayCADFTStage

    stage_dir = os.path.join(run_dir, f"stage1_{config.cadft.loss}")
    done = _read_json(os.path.join(stage_dir, STAGE1_COMPLETE))
    if done is not None:  # a finished stage 1 is not redone
        return done
    ensure_ray(config, wall if wall is not None else {})
    tracking = Tracking(project_name=config.trainer.project_name,
                        experiment_name=f"{config.trainer.experiment_name}_stage1",
                        default_backend=list(config.trainer.logger),
                        config=OmegaConf.to_container(config, resolve=True))
    stage = RayCADFTStage(config, stage_dir, tracking=tracking)
    try:
        result = stage.fit()
    finally:
        tracking.finish() if hasattr(tracking, "finish") else None
        if hasattr(stage, "wg"):
            stage.shutdown()
    return result


def stage2_config(config, run_dir: str, init_model: str | None):
    cfg = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
    with open_dict(cfg):
        if init_model is not None:
            cfg.actor_rollout_ref.model.path = init_model
        cfg.trainer.default_local_dir = os.path.join(run_dir, "stage2_rl")
        cfg.trainer.experiment_name = f"{config.trainer.experiment_name}_stage2"
        if int(cfg.trainer.get("save_freq", -1) or -1) <= 0:
            cfg.trainer.save_freq = FINAL_ONLY  # the final checkpoint is the RL model: always saved
        for key in ("cadft", "stages", "recipe_name", "eval"):
            cfg.pop(key, None)
    return cfg


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def stage2_done(cfg) -> dict | None:
    """Stage 2's result when a previous launch finished it with the same start model and length."""
    done = _read_json(os.path.join(cfg.trainer.default_local_dir, COMPLETE))
    if done is None or done.get("init_model") != cfg.actor_rollout_ref.model.path:
        return None
    total = cfg.trainer.get("total_training_steps")
    if total is not None and int(total) != done.get("steps"):
        return None
    if not os.path.isdir(done.get("checkpoint", "")):
        return None
    return done


def run_stage2(config, run_dir: str, init_model: str | None, wall: dict | None = None) -> dict:
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from cadft_verl.eval.model_path import is_hf_model

    cfg = stage2_config(config, run_dir, init_model)
    done = stage2_done(cfg)
    if done is not None:
        print(f"[cadft-verl] stage 2 already complete ({os.path.join(cfg.trainer.default_local_dir, COMPLETE)}): "
              f"not redone", flush=True)
        return done
    ensure_ray(config, wall if wall is not None else {})
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    if cfg.trainer.get("use_v1", True):
        run_ppo(cfg, task_runner_class=TaskRunnerV1)
    else:
        from verl.trainer.main_ppo_v0 import TaskRunner

        run_ppo(cfg, task_runner_class=TaskRunner)
    stage_dir = cfg.trainer.default_local_dir
    tracker = os.path.join(stage_dir, "latest_checkpointed_iteration.txt")
    step = int(open(tracker).read().strip()) if os.path.exists(tracker) else None
    checkpoint = os.path.join(stage_dir, f"global_step_{step}") if step else stage_dir
    export = os.path.join(checkpoint, "actor", "huggingface")
    result = {"stage": "rl", "algorithm": cfg.algorithm.adv_estimator, "init_model": cfg.actor_rollout_ref.model.path,
              "steps": step, "checkpoint": checkpoint,
              # loadable HF model of the final checkpoint (None: saved without hf_model; the eval stage merges it)
              "hf_model": export if step and is_hf_model(export) else None}
    if step:
        write_summary(stage_dir, result, name=COMPLETE)
    return result


def launch(config) -> dict:
    from cadft_verl.plugin import ensure_loaded

    ensure_loaded()
    check_inputs(config)
    from cadft_verl.check import preflight

    preflight(config)  # verl in the supported range, the rollout engine of stage 2 installed
    run_dir = os.path.abspath(config.trainer.default_local_dir)
    os.makedirs(run_dir, exist_ok=True)
    os.environ.setdefault("VERL_FILE_LOGGER_ROOT", os.path.join(run_dir, "metrics"))
    summary = {"recipe": config.get("recipe_name"), "stages": list(config.stages), "run_dir": run_dir, "results": {},
               "wall_s": {}}
    write_summary(run_dir, summary)
    wall = summary["wall_s"]
    init_model = None
    if "cadft" in config.stages:
        t0, ray0 = time.time(), wall.get("ray_init", 0.0)
        result = run_stage1(config, run_dir, wall)
        # worker start-up, training, checkpointing and worker shutdown (Ray's start is wall["ray_init"])
        wall["stage1"] = time.time() - t0 - (wall.get("ray_init", 0.0) - ray0)
        summary["results"]["stage1"] = result
        write_summary(run_dir, summary)
        init_model = result["hf_model"]
        check_handoff(init_model)
        print(f"[cadft-verl] stage 1 done: HF model {init_model}")
    if "rl" in config.stages:
        t0, ray0 = time.time(), wall.get("ray_init", 0.0)
        summary["results"]["stage2"] = run_stage2(config, run_dir, init_model, wall)
        # verl's trainer: worker and rollout start-up, steps, validation
        wall["stage2"] = time.time() - t0 - (wall.get("ray_init", 0.0) - ray0)
        write_summary(run_dir, summary)
    report = None
    if "eval" in config.stages:
        from cadft_verl.eval.stage import print_report, run_eval_stage

        shutdown_ray()  # the eval stage needs no worker; free their memory (GPU: vLLM's) first
        t0 = time.time()
        report = run_eval_stage(config, run_dir, summary["results"])
        markdown = report.pop("_markdown")
        summary["results"]["eval"] = report
        wall["eval"] = time.time() - t0  # model loads (and merges), generation, scoring, report
    path = write_summary(run_dir, summary)
    print(f"[cadft-verl] run finished: outputs in {run_dir} (summary: {path})")
    if report is not None:
        print_report(dict(report, _markdown=markdown))
    return summary


@hydra.main(config_path="recipes", config_name="main", version_base=None)
def main(config):
    from cadft_verl.platform import prepare_device

    prepare_device(config)
    launch(config)


if __name__ == "__main__":
    sys.exit(main())
