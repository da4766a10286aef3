"""Stage 2 of the launch (``rl``, summary key ``stage2``): verl's own GRPO/PPO trainer (``main_ppo``), started from
the warm start's HF export with a fresh optimizer and LR schedule (a PPO critic too starts from it).

Its config is the launch's less this project's blocks, with its checkpoints in the run folder's ``stage2_rl/``; its
final checkpoint is always saved, with an HF export (``hf_model`` in
``actor_rollout_ref.actor.checkpoint.save_contents``, set in ``recipes/main.yaml``). It resumes through verl's own
``trainer.resume_mode``; the metric history keeps the steps up to the checkpoint verl resumes from. A finished stage
2 (``COMPLETE.json``) with the same start model and length is not redone.

Each step's metrics also hold the share of prompt groups whose rewards are not all equal
(``cadft_verl.integration.group_signal``, verl's v1 trainer) beside verl's ``actor/entropy``; both are on the
console's progress line, and one warning names the levers when the share stays under 10% for 3 steps in a row.
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf, open_dict

from cadft_verl.integration import metrics_history
from cadft_verl.integration.group_signal import task_runner
from cadft_verl.launch.progress import STAGE2_KEYS, HistoryWatcher, SignalAlarm
from cadft_verl.launch.run_dir import RunDir, StageDir, step_of
from cadft_verl.launch.stage import Launch, TrainingStage, experiment, with_file_logger

#: verl's advantage estimator -> the RL algorithm's name users know (progress, messages, the report's rows)
ALGORITHM_NAMES = {"gae": "ppo"}


def algorithm_name(adv_estimator: str) -> str:
    return ALGORITHM_NAMES.get(adv_estimator, adv_estimator)


#: a metric verl logs for every training step of stage 2 (not for a validation alone)
TRAINED_KEY = "training/global_step"
# stage 2 saves only its final checkpoint when trainer.save_freq <= 0 (verl would save none)
FINAL_ONLY = 2**31 - 1
#: blocks of the launch's config that verl's RL trainer does not know
OWN_BLOCKS = ("cadft", "stages", "recipe_name", "eval", "console", "watchdog")


def stage2_config(config, run: RunDir, init_model: str | None):
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
        cfg.trainer.default_local_dir = run.stage2.path
        cfg.trainer.experiment_name = experiment(config, "stage2")
        cfg.trainer.logger = with_file_logger(cfg.trainer.logger)
        if int(cfg.trainer.get("save_freq", -1) or -1) <= 0:
            cfg.trainer.save_freq = FINAL_ONLY  # the final checkpoint is the RL model: always saved
        for key in OWN_BLOCKS:
            cfg.pop(key, None)
    return cfg


def stage2_resume_step(cfg) -> int:
    """The step verl's trainer resumes stage 2 from (its ``_load_checkpoint``: ``trainer.resume_mode``)."""
    mode = cfg.trainer.get("resume_mode", "auto")
    if mode == "disable":
        return 0
    if mode == "resume_path":
        return step_of(str(cfg.trainer.get("resume_from_path") or ""))
    return StageDir(os.path.abspath(cfg.trainer.default_local_dir)).latest_step()


def resume_where_logged(cfg, history: str) -> int:
    """The step stage 2 resumes from, such that no finished step is lost: verl writes a step's checkpoint before its
    metrics row, so a kill between the two leaves a checkpoint whose row is missing. Then stage 2 resumes from the
    checkpoint before it (``trainer.resume_mode=resume_path``; none: from the start), and that step is redone."""
    step = stage2_resume_step(cfg)
    logged = {r["step"] for r in metrics_history.read_rows(history) if TRAINED_KEY in r["data"]}
    if step == 0 or step in logged:
        return step
    folder = StageDir(os.path.abspath(cfg.trainer.default_local_dir))
    earlier = [s for s in range(step - 1, 0, -1) if os.path.isdir(folder.step_dir(s)) and s in logged]
    with open_dict(cfg):
        if earlier:
            cfg.trainer.resume_mode, cfg.trainer.resume_from_path = "resume_path", folder.step_dir(earlier[0])
        else:
            cfg.trainer.resume_mode = "disable"
    print(f"[cadft-verl] stage 2's checkpoint of step {step} has no metrics row (killed between the two): step "
          f"{step} is trained again, from " + (f"step {earlier[0]}" if earlier else "the start"), flush=True)
    return earlier[0] if earlier else 0


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


class RLStage(TrainingStage):
    name, key, history_keys = "rl", "stage2", STAGE2_KEYS

    def file_keys(self, config) -> list[str]:
        return ["data.train_files", "data.val_files"]

    @staticmethod
    def _config(launch: Launch):
        warm = launch.results.get("stage1") or {}
        return stage2_config(launch.config, launch.run, warm.get("hf_model"))

    def done(self, launch: Launch) -> dict | None:
        """Stage 2's result when a previous launch finished it with the same start model and length."""
        cfg = self._config(launch)
        done = launch.run.stage2.complete()
        if done is None or done.get("init_model") != cfg.actor_rollout_ref.model.path:
            return None
        total = cfg.trainer.get("total_training_steps")
        if total is not None and int(total) != done.get("steps"):
            return None
        if not os.path.isdir(done.get("checkpoint", "")):
            return None
        print(f"[cadft-verl] stage 2 already complete ({launch.run.stage2.complete_file}): not redone", flush=True)
        return done

    def run(self, launch: Launch) -> dict:
        from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config

        from cadft_verl.eval.model_path import is_hf_model, merge_lora
        from cadft_verl.lora.export import is_peft_export

        cfg = self._config(launch)
        validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        # the history of the steps up to the checkpoint verl resumes from stays; the later ones are redone
        history = metrics_history.metrics_path(cfg.trainer.project_name, cfg.trainer.experiment_name)
        resume = resume_where_logged(cfg, history)
        metrics_history.keep_until(history, resume)
        if resume:
            print(f"[cadft-verl] stage 2 resumes from step {resume} ({cfg.trainer.default_local_dir})", flush=True)
        label, total = f"stage 2 ({algorithm_name(cfg.algorithm.adv_estimator)})", stage2_total_steps(cfg)
        print(f"[cadft-verl] {label}: {total or '?'} steps of verl's trainer from {cfg.actor_rollout_ref.model.path} "
              f"(checkpoints in {cfg.trainer.default_local_dir}, metrics in {history})", flush=True)
        # groups of one response (rollout.n = 1) are never mixed: the share says nothing then, and warns of nothing
        alarm = SignalAlarm() if int(cfg.actor_rollout_ref.rollout.get("n", 1) or 1) > 1 else None
        with HistoryWatcher(history, label, total, STAGE2_KEYS, after=resume, alarm=alarm):
            if cfg.trainer.get("use_v1", True):
                run_ppo(cfg, task_runner_class=task_runner(TaskRunnerV1))
            else:
                from verl.trainer.main_ppo_v0 import TaskRunner

                run_ppo(cfg, task_runner_class=TaskRunner)
        stage_dir = launch.run.stage2
        step = stage_dir.latest_step() or None
        checkpoint = stage_dir.step_dir(step) if step else stage_dir.path
        export = stage_dir.hf_export(step) if step else None
        hf_model = export if export and is_hf_model(export) else None
        result = {"stage": "rl", "algorithm": cfg.algorithm.adv_estimator,
                  "init_model": cfg.actor_rollout_ref.model.path, "steps": step, "checkpoint": checkpoint,
                  # loadable HF model of the final checkpoint (None: saved without hf_model; the eval stage merges it)
                  "hf_model": hf_model}
        if hf_model and is_peft_export(hf_model):
            # a LoRA stage 2 (actor_rollout_ref.model.lora_rank > 0) exports the PEFT model's keys: hand over the
            # adapter merged into the weights (huggingface_merged/ beside it), as stage 1 does
            result["hf_model"], result["lora_export"] = merge_lora(hf_model), hf_model
        if need_critic(cfg):
            result["critic_model"] = cfg.critic.model.path
        if step:
            stage_dir.mark_complete(result)
        return result

    def label(self, launch: Launch) -> str:
        return f"stage 2 ({algorithm_name(launch.config.algorithm.adv_estimator)})"

