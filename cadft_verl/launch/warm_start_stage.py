"""The warm start as a stage of the launch (``cadft``, summary key ``stage1``): reused when a previous launch into the
same run folder finished it from the same base model; else run (``warm_start.WarmStart``) with verl's tracking
backends, its metric history always kept; its HF export checked before it is handed to stage 2."""

from __future__ import annotations

import os

from cadft_verl.launch.progress import STAGE1_KEYS
from cadft_verl.launch.stage import Launch, TrainingStage, experiment, with_file_logger


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


class WarmStartStage(TrainingStage):
    name, key, history_keys = "cadft", "stage1", STAGE1_KEYS

    def file_keys(self, config) -> list[str]:
        return ["cadft.data.train_files", "cadft.data.val_files"]

    def check(self, config) -> None:
        from cadft_verl.config import load_blocks

        from cadft_verl.lora.checks import check_lora_options, check_targets_match

        load_blocks(config, ["cadft", "cadft.history", "cadft.rewrite", "cadft.model"])  # naming a bad option
        if not config.cadft.data.train_files:
            raise ValueError("cadft.data.train_files: the recipe runs stage 1 but no SFT training file is set")
        lora = check_lora_options(config, runs_stage1=True)
        check_targets_match(lora, str(config.actor_rollout_ref.model.path),
                            bool(config.actor_rollout_ref.model.get("trust_remote_code", False)))

    def done(self, launch: Launch) -> dict | None:
        from cadft_verl.launch.warm_start import model_id

        stage_dir = launch.run.stage1(launch.config.cadft.loss)
        done = stage_dir.complete()
        if done is not None:  # a finished stage 1 is not redone, but only reused from the same base model
            base, trained_from = model_id(launch.config.actor_rollout_ref.model.path), done.get("base_model")
            if trained_from is not None and model_id(trained_from) != base:
                raise ValueError(
                    f"stage 1 in {stage_dir.path} was trained from {trained_from}, not from "
                    f"actor_rollout_ref.model.path={base}: give this launch another trainer.default_local_dir, or "
                    f"delete {stage_dir.path} to retrain it")
        return done

    def run(self, launch: Launch) -> dict:
        from omegaconf import OmegaConf
        from verl.utils.tracking import Tracking

        from cadft_verl.launch.warm_start import WarmStart

        config = launch.config
        stage_dir = launch.run.stage1(config.cadft.loss)
        tracking = Tracking(project_name=config.trainer.project_name, experiment_name=experiment(config, self.key),
                            default_backend=with_file_logger(config.trainer.logger),
                            config=OmegaConf.to_container(config, resolve=True))
        stage = WarmStart(config, stage_dir, tracking=tracking)
        try:
            result = stage.fit()
        finally:
            tracking.finish() if hasattr(tracking, "finish") else None
            stage.shutdown()
        stage_dir.mark_complete(result)
        return result

    def label(self, launch: Launch) -> str:
        return f"stage 1 ({launch.config.cadft.loss})"

    def summarize(self, launch: Launch, result: dict) -> dict:
        check_handoff(result["hf_model"])
        print(f"[cadft-verl] stage 1 done: HF model {result['hf_model']}")
        return super().summarize(launch, result)
