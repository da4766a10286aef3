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

Each stage's metrics are kept, every step once also across a kill and a resume, in
``<run dir>/metrics/<trainer.project_name>/<experiment>_stage{1,2}.jsonl`` (``cadft_verl.trainer.metrics_history``;
always written, whatever ``trainer.logger`` lists). The console shows each stage's progress and the launch's summary
lines; everything else (Ray, vLLM, verl) goes to ``<run dir>/launch.log`` (``cadft_verl.console``).
"""

from __future__ import annotations

import json
import os
import sys
import time

import hydra
from omegaconf import OmegaConf, open_dict

from cadft_verl.console import LaunchConsole
from cadft_verl.trainer import metrics_history
from cadft_verl.trainer.progress import STAGE1_KEYS, STAGE2_KEYS, HistoryWatcher, history_summary

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
    for key in ("VERL_PLATFORM", "VLLM_TARGET_DEVICE", "VLLM_CPU_KVCACHE_SPACE", "VERL_FILE_LOGGER_ROOT",
                metrics_history.ENV):
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


def with_file_logger(backends) -> list[str]:
    """The tracking backends with ``file``: each stage's metric history is always kept (what the summary reads)."""
    backends = [backends] if isinstance(backends, str) else list(backends or [])
    return backends if "file" in backends else [*backends, "file"]


def stage1_experiment(config) -> str:
    return f"{config.trainer.experiment_name}_stage1"


def stage2_experiment(config) -> str:
    return f"{config.trainer.experiment_name}_stage2"


def run_stage1(config, run_dir: str, wall: dict | None = None) -> dict:
    from verl.utils.tracking import Tracking

    from cadft_verl.trainer.ray_stage import COMPLETE as STAGE1_COMPLETE
    from cadft_verl.trainer.ray_stage import RayCADFTStage, model_id

    stage_dir = os.path.join(run_dir, f"stage1_{config.cadft.loss}")
    done = _read_json(os.path.join(stage_dir, STAGE1_COMPLETE))
    if done is not None:  # a finished stage 1 is not redone, but only reused from the same base model
        base, trained_from = model_id(config.actor_rollout_ref.model.path), done.get("base_model")
        if trained_from is not None and model_id(trained_from) != base:
            raise ValueError(
                f"stage 1 in {stage_dir} was trained from {trained_from}, not from actor_rollout_ref.model.path="
                f"{base}: give this launch another trainer.default_local_dir, or delete {stage_dir} to retrain it")
        return done
    ensure_ray(config, wall if wall is not None else {})
    tracking = Tracking(project_name=config.trainer.project_name,
                        experiment_name=stage1_experiment(config),
                        default_backend=with_file_logger(config.trainer.logger),
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
            base = cfg.actor_rollout_ref.model.path
            cfg.actor_rollout_ref.model.path = init_model
            # verl starts a PPO critic from the actor's model unless told otherwise (its config interpolates the
            # actor's path, already resolved to the base model here): so from the warm start too
            critic_model = cfg.get("critic", {}).get("model") or {}
            for key in ("path", "tokenizer_path"):
                if critic_model.get(key) == base:
                    cfg.critic.model[key] = init_model
        cfg.trainer.default_local_dir = os.path.join(run_dir, "stage2_rl")
        cfg.trainer.experiment_name = stage2_experiment(config)
        cfg.trainer.logger = with_file_logger(cfg.trainer.logger)
        if int(cfg.trainer.get("save_freq", -1) or -1) <= 0:
            cfg.trainer.save_freq = FINAL_ONLY  # the final checkpoint is the RL model: always saved
        for key in ("cadft", "stages", "recipe_name", "eval", "console"):
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


def stage2_resume_step(cfg) -> int:
    """The step verl's trainer resumes stage 2 from (its ``_load_checkpoint``: ``trainer.resume_mode``)."""
    mode = cfg.trainer.get("resume_mode", "auto")
    if mode == "disable":
        return 0
    if mode == "resume_path":
        path = str(cfg.trainer.get("resume_from_path") or "")
        tail = path.rstrip("/").split("global_step_")[-1] if "global_step_" in path else ""
        return int(tail) if tail.isdigit() else 0
    folder = os.path.abspath(cfg.trainer.default_local_dir)
    tracker = os.path.join(folder, "latest_checkpointed_iteration.txt")
    try:
        step = int(open(tracker).read().strip())
    except (OSError, ValueError):
        return 0
    return step if os.path.isdir(os.path.join(folder, f"global_step_{step}")) else 0


def stage2_total_steps(cfg) -> int | None:
    """Stage 2's length for the progress bar: ``trainer.total_training_steps``, else the RL data's batches."""
    total = cfg.trainer.get("total_training_steps")
    if total:
        return int(total)
    try:
        import pyarrow.parquet as pq

        files = cfg.data.train_files
        files = [files] if isinstance(files, str) else list(files)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        return rows // int(cfg.data.train_batch_size) * int(cfg.trainer.total_epochs) or None
    except Exception:  # noqa: BLE001 - only the progress bar's total
        return None


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
    # the history of the steps up to the checkpoint verl resumes from stays; the later ones are redone
    history = metrics_history.metrics_path(cfg.trainer.project_name, cfg.trainer.experiment_name)
    resume = stage2_resume_step(cfg)
    metrics_history.keep_until(history, resume)
    if resume:
        print(f"[cadft-verl] stage 2 resumes from step {resume} ({cfg.trainer.default_local_dir})", flush=True)
    label, total = f"stage 2 ({cfg.algorithm.adv_estimator})", stage2_total_steps(cfg)
    print(f"[cadft-verl] {label}: {total or '?'} steps of verl's trainer from {cfg.actor_rollout_ref.model.path} "
          f"(checkpoints in {cfg.trainer.default_local_dir}, metrics in {history})", flush=True)
    with HistoryWatcher(history, label, total, STAGE2_KEYS, after=resume):
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
    if need_critic(cfg):
        result["critic_model"] = cfg.critic.model.path
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
    if os.environ.pop("VERL_FILE_LOGGER_PATH", None):  # one file for both stages: each would cut the other's steps
        print(f"[cadft-verl] VERL_FILE_LOGGER_PATH is ignored by the one launch (each stage keeps its own history); "
              f"the histories go to {os.environ['VERL_FILE_LOGGER_ROOT']} (VERL_FILE_LOGGER_ROOT)", flush=True)
    # verl's file logger appends here and in every Ray worker (the plugin reads the variable): histories survive
    os.environ[metrics_history.ENV] = "1"
    metrics_history.install()
    with launch_console(config):
        return _launch(config, run_dir)


class launch_console:
    """The launch's console around everything it does (``cadft_verl.console``); Ray is shut down inside it, so that
    its last worker logs still go to the log file. Nested uses share the outer console."""

    def __init__(self, config):
        self.config = config
        self.console = None

    def __enter__(self):
        from cadft_verl.console import active

        if active() is None:
            verbose = bool((self.config.get("console") or {}).get("verbose", False))
            self.console = LaunchConsole(os.path.abspath(self.config.trainer.default_local_dir), verbose=verbose)
            self.console.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.console is not None:
            try:
                shutdown_ray()
            finally:
                self.console.close(failed=exc_type is not None)
        return False


def _launch(config, run_dir: str) -> dict:
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
        summary["results"]["stage1"] = dict(result, history=history_summary(
            metrics_history.metrics_path(config.trainer.project_name, stage1_experiment(config)), STAGE1_KEYS))
        write_summary(run_dir, summary)
        init_model = result["hf_model"]
        check_handoff(init_model)
        print(f"[cadft-verl] stage 1 done: HF model {init_model}")
    if "rl" in config.stages:
        t0, ray0 = time.time(), wall.get("ray_init", 0.0)
        result = run_stage2(config, run_dir, init_model, wall)
        summary["results"]["stage2"] = dict(result, history=history_summary(
            metrics_history.metrics_path(config.trainer.project_name, stage2_experiment(config)), STAGE2_KEYS))
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

    with launch_console(config):  # from the start: verl's and the platform's first messages go to the log too
        prepare_device(config)
        launch(config)


if __name__ == "__main__":
    sys.exit(main())
