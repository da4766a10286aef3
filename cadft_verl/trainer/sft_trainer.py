"""The drop-in SFT stage: verl's own ``SFTTrainer`` with the SFT / DFT / CADFT loss installed through its loss hook.

Same config keys as ``verl.trainer.sft_trainer`` plus a ``cadft:`` block (``cadft_verl/config/sft_trainer.yaml``).
verl's training loop, engine, checkpointing and tracking run unchanged; this class only

- installs ``EngineLoss`` with ``TrainingWorker.set_loss_fn`` (verl's hook),
- wraps the training client with ``CADFTTrainingClient`` (global-batch statistics and metrics), and
- keeps the lagged statistics in the checkpoint (``cadft_state.json``).
"""

from __future__ import annotations

import os

from verl.trainer.sft_trainer import SFTTrainer

from cadft_verl.losses import LossConfig, make_loss_fn

from .checkpoint import ExtraStateCheckpointHandler
from .hook import CADFTTrainingClient


class CADFTSFTTrainer(SFTTrainer):
    def _build_engine(self):
        super()._build_engine()
        self.loss_cfg = LossConfig.from_mapping(self.config.get("cadft"))
        self.loss_fn = make_loss_fn(self.loss_cfg)
        self.training_client.set_loss_fn(loss_fn=self.loss_fn)
        self.training_client = CADFTTrainingClient(self.training_client, self.loss_cfg)

    def _build_ckpt_handler(self):
        super()._build_ckpt_handler()
        self.ckpt_handler = ExtraStateCheckpointHandler(
            self.ckpt_handler, {"batch_stats": self.training_client.controller}
        )

    def fit(self):
        super().fit()
        if self.rank == 0:
            out = os.path.abspath(self.config.trainer.default_local_dir)
            step = self.total_training_steps
            print(f"[cadft-verl] {self.loss_cfg.loss} SFT finished: checkpoints in {out}")
            hf = os.path.join(out, f"global_step_{step}", "huggingface")
            if os.path.isdir(hf):
                print(f"[cadft-verl] HF model (usable as model.path): {hf}")
