"""Stage 1 of the one launch, the warm start: CADFT / DFT / SFT on verl's own FSDP actor workers.

Per optimizer step it trains (``step``), records every trained sample's z in the compatibility history and its NLL,
z, weight and token count in ``samples.jsonl`` (``samples``), logs ``stage1/``-prefixed metrics to verl's tracking
backends, runs the delayed rewrite rounds when due (``rewrites``), validates on ``cadft.data.val_files``
(``val/loss``) and checkpoints (``checkpoints``) as its ``plan`` says. A rerun resumes from the newest checkpoint.
It returns what ``COMPLETE.json`` records: the HF export that stage 2 starts from (with LoRA, ``cadft.model``, the
merged model: ``cadft_verl.lora.export``).
"""

from __future__ import annotations

import os

from tqdm import tqdm

from cadft_verl.console import progress as show_progress
from cadft_verl.history import CompatibilityHistory, HistoryConfig
from cadft_verl.lora.checks import lora_options
from cadft_verl.lora.export import merge_lora_export
from cadft_verl.losses import LossConfig
from cadft_verl.trainer.controller import CompatibilityController

from .checkpoints import WarmStartCheckpoints
from .data import build_order, build_sft_dataset
from .plan import WarmStartPlan
from .rewrites import RewriteRounds
from .samples import SAMPLES_FILE, SampleLog
from .step import train_step
from .worker_config import check_stage_options, rewrite_config, stage_worker_config


def model_id(path) -> str:
    """A model path as a stage records it: absolute when it is a local folder (a hub name stays as it is)."""
    path = os.path.expanduser(str(path))
    return os.path.abspath(path) if os.path.exists(path) else path


class WarmStart:
    def __init__(self, config, stage_dir, tracking=None):
        """``stage_dir``: the stage's ``launch.run_dir.StageDir``."""
        from omegaconf import open_dict
        from verl.utils.config import omega_conf_to_dataclass

        self.config, self.dir, self.tracking = config, stage_dir, tracking
        cad = config.cadft
        self.loss_cfg = LossConfig.from_mapping(cad)
        self.lora = lora_options(config)
        check_stage_options(config, self.loss_cfg.loss)
        self.controller = CompatibilityController(self.loss_cfg)
        self.arr_config = stage_worker_config(config)
        self.model_config = omega_conf_to_dataclass(self.arr_config.model)
        self.dataset = build_sft_dataset(cad.data.train_files, cad.data, self.model_config)
        self.order = build_order(self.dataset, cad.data)
        self.val_dataset = (build_sft_dataset(cad.data.val_files, cad.data, self.model_config)
                            if cad.data.get("val_files") else None)
        self.plan = WarmStartPlan(cad.trainer, self.order, rewrite_config(config), self.loss_cfg.loss)
        with open_dict(self.arr_config):
            self.arr_config.actor.optim.total_training_steps = self.plan.total_steps
        # per-sample compatibility history (CADFT only: z is the CADFT loss's)
        self.history = CompatibilityHistory(len(self.dataset),
                                            momentum=HistoryConfig.from_mapping(cad.get("history")).z_momentum)
        self.track_history = self.loss_cfg.loss == "cadft"
        self.rewrites = RewriteRounds(self.plan, self.dataset, self.history, self.order, self.model_config.tokenizer,
                                      cad.data, self.loss_cfg, self.controller, self.dir.path)
        self.samples = SampleLog(self.dir.file(SAMPLES_FILE))
        self.workers = None

    def fit(self) -> dict:
        os.makedirs(self.dir.path, exist_ok=True)
        self.plan.check_rewrite_engine(str(self.arr_config.rollout.name))
        for line in self.plan.describe(self.loss_cfg.loss, self.dir.path):
            print(line, flush=True)
        from .workers import ActorWorkers

        self.workers = ActorWorkers(self.config, self.arr_config, self.model_config, self.loss_cfg, self.plan)
        checkpoints = WarmStartCheckpoints(self, self.workers)
        step, total, last = checkpoints.resume(), self.plan.total_steps, {}
        bar = tqdm(total=total, initial=step, desc=f"stage 1 ({self.loss_cfg.loss})")
        while step < total:
            step += 1
            last, per_sample = train_step(step, self.order, self.workers, self.controller, self.config.cadft.data)
            if self.track_history and per_sample.get("idx") and per_sample.get("z"):
                self.history.update(per_sample["idx"], per_sample["z"], step)
            self.order.step = step
            self.samples.append(step, per_sample)
            if self.plan.schedule.due(step):
                last.update(self.rewrites.run(step, self.workers))
            if self.track_history:
                last.update(self.history.summary())
            if self.plan.validates_at(step) and self.val_dataset is not None:
                last.update(self.workers.scorer.validate(self.val_dataset))
            if self.tracking is not None:
                self.tracking.log({f"stage1/{k}": v for k, v in last.items()}, step=step)
            bar.update(1)
            bar.set_postfix(loss=f"{last.get('train/loss', float('nan')):.4f}")
            self._show_progress(step, last)
            if self.plan.saves_at(step):
                checkpoints.save(step)
        bar.close()
        if self.lora.enabled:  # the hand-over: the merged model, the adapter beside it (also after a resume)
            merge_lora_export(self.dir.step_dir(step), self.lora,
                              base_model=model_id(self.config.actor_rollout_ref.model.path))
        return {"stage": "cadft", "loss": self.loss_cfg.loss, "steps": step, "checkpoint": self.dir.step_dir(step),
                "hf_model": self.dir.hf_export(step), "final_metrics": last,
                # the model stage 1 started from: a rerun from another base does not reuse this stage
                "base_model": model_id(self.config.actor_rollout_ref.model.path)}

    def _show_progress(self, step: int, metrics: dict) -> None:
        """The launch console's line: loss, NLL, the down-weighted share, the validation loss when measured."""
        values = {"loss": metrics.get("train/loss"), "nll": metrics.get("cadft/nll")}
        if "cadft/frac_downweighted" in metrics:
            values["down-weighted"] = f"{100 * metrics['cadft/frac_downweighted']:.0f}%"
        values["val loss"] = metrics.get("val/loss")
        if "rewrite/accepted" in metrics:
            values["rewrites"] = int(metrics["rewrite/accepted"])
        show_progress(f"stage 1 ({self.loss_cfg.loss})", step, self.plan.total_steps, values)

    def shutdown(self) -> None:
        if self.workers is not None:
            self.workers.shutdown()
