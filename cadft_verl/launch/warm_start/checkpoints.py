"""Stage 1's checkpoints: verl's ``CheckpointHandler`` (actor shards, HF export, data order) with this stage's own
state beside it (``cadft_state.json``: the batch statistics and the rewrite rounds' place; the compatibility
history; the rewrite audit and rewritten targets). A resume loads the newest and cuts the stage's logs (metric
history, per-sample log) back to its step, so that every step is kept exactly once."""

from __future__ import annotations

import os

from cadft_verl.history import HISTORY_FILE
from cadft_verl.rewrite import load_rewrite_state, save_rewrite_state
from cadft_verl.trainer.checkpoint import ExtraStateCheckpointHandler


class WarmStartCheckpoints:
    def __init__(self, stage, workers):
        from verl.utils.checkpoint.checkpoint_handler import CheckpointHandler, OrchestrationMode

        self.stage = stage
        inner = CheckpointHandler(engine=workers.wg, train_dataloader=stage.order, default_local_dir=stage.dir.path,
                                  max_ckpt_to_keep=stage.config.cadft.trainer.get("max_ckpt_to_keep"),
                                  resume_mode="auto", mode=OrchestrationMode.RAY)
        self.handler = ExtraStateCheckpointHandler(
            inner, {"batch_stats": stage.controller, "rewrite": stage.rewrites},
            save_files=self._save_files, load_files=self._load_files)

    def _save_files(self, folder: str) -> None:
        st = self.stage
        if st.track_history:
            st.history.save(os.path.join(folder, HISTORY_FILE))
        if st.rewrites.audit or st.dataset.targets():
            save_rewrite_state(folder, st.dataset, st.rewrites.audit)

    def _load_files(self, folder: str) -> None:
        st = self.stage
        history_file = os.path.join(folder, HISTORY_FILE)
        if st.track_history and os.path.exists(history_file):
            st.history.load(history_file)
        st.rewrites.audit = load_rewrite_state(folder, st.dataset)

    def save(self, step: int) -> None:
        self.handler.save_checkpoint(step)

    def resume(self) -> int:
        """Load the newest checkpoint (0: none) and keep the logs' steps up to it."""
        st = self.stage
        step = self.handler.load_checkpoint() or 0
        file_logger = (getattr(st.tracking, "logger", None) or {}).get("file")
        if hasattr(file_logger, "keep_until"):  # the one launch's metrics_history.ResumableFileLogger
            file_logger.keep_until(step)
        st.samples.keep_until(step)
        if step:
            print(f"[cadft-verl] stage 1 resumes from {st.dir.step_dir(step)}"
                  + (f" ({len(st.dataset.targets())} rewritten targets restored)" if st.dataset.targets() else ""))
        return step
