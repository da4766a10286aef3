"""Extra trainer state saved inside verl's checkpoints (``global_step_N/cadft_state.json``).

Wraps verl's ``CheckpointHandler`` (delegating everything else): the state file (and any files of ``save_files``)
is written atomically by rank 0 *before* verl writes the step folder's tracker, so a checkpoint verl considers
complete always holds it; on resume it is read back from the folder verl resumes from (``load_files`` gets that
folder). Used by the drop-in SFT stage (SPMD) and stage 1 of the one launch (Ray).
"""

from __future__ import annotations

import os

import torch.distributed as dist

from cadft_verl.utils.files import read_json, write_json

STATE_FILE = "cadft_state.json"


class ExtraStateCheckpointHandler:
    def __init__(self, inner, objects: dict, save_files=None, load_files=None):
        """``objects``: name -> object with ``state_dict()`` / ``load_state_dict(state)`` (JSON-serialisable).
        ``save_files(folder)`` / ``load_files(folder)``: optional extra files of the step folder."""
        self._inner = inner
        self._objects = objects
        self._save_files = save_files
        self._load_files = load_files
        self.loaded_from: str | None = None

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _rank(self) -> int:
        return dist.get_rank() if dist.is_initialized() else 0

    def save_checkpoint(self, step):
        folder = os.path.join(self._inner.default_local_dir, f"global_step_{step}")
        if self._rank() == 0:
            os.makedirs(folder, exist_ok=True)
            state = {name: obj.state_dict() for name, obj in self._objects.items()}
            write_json(os.path.join(folder, STATE_FILE), {"step": step, **state}, indent=None)
            if self._save_files is not None:
                self._save_files(folder)
        return self._inner.save_checkpoint(step)

    def load_checkpoint(self):
        step = self._inner.load_checkpoint()
        if step:
            folder = self._inner._determine_resume_path()
            path = os.path.join(folder, STATE_FILE)
            if not os.path.exists(path):
                raise FileNotFoundError(
                    f"resuming from {folder}, but it has no {STATE_FILE}: the CADFT state (lagged statistics) of "
                    "that checkpoint is missing; resume from a checkpoint written by cadft_verl or set "
                    "trainer.resume_mode=disable"
                )
            state = read_json(path)
            for name, obj in self._objects.items():
                if name in state:
                    obj.load_state_dict(state[name])
            if self._load_files is not None:
                self._load_files(folder)
            self.loaded_from = path
        return step
