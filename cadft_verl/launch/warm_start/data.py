"""Stage 1's data: verl's SFT dataset with indices and replaceable targets, and a known, resumable sample order.

``EpochOrder`` is the order in which the stage visits the demonstrations: epoch ``e`` is a permutation of the
dataset drawn from ``seed`` and ``e``; step ``s`` (1-based) trains the ``s``-th slice of ``batch_size`` samples
(``drop_last``: a last partial slice of an epoch is not trained). Because the order is a function of (seed, step),
the stage can see which samples are still to come in this epoch (the rewrite look-ahead) and a resume needs nothing
but the step. It has ``state_dict``/``load_state_dict`` so that verl's ``CheckpointHandler`` saves it as it saves a
``StatefulDataLoader`` (``data_0.pt``).
"""

from __future__ import annotations

import torch

from cadft_verl.rewrite import IndexedSFTCollator, RewritableSFTDataset


class EpochOrder:
    def __init__(self, dataset, batch_size: int, seed: int, collate_fn):
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.collate_fn = collate_fn
        self.steps_per_epoch = len(dataset) // self.batch_size
        self.step = 0  # optimizer steps taken so far
        self._perm: tuple[int, list[int]] | None = None

    def __len__(self) -> int:
        return self.steps_per_epoch

    def permutation(self, epoch: int) -> list[int]:
        if self._perm is None or self._perm[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm = (epoch, torch.randperm(len(self.dataset), generator=generator).tolist())
        return self._perm[1]

    def indices(self, step: int) -> list[int]:
        """Dataset indices of optimizer step ``step`` (1-based)."""
        epoch, k = divmod(step - 1, self.steps_per_epoch)
        return self.permutation(epoch)[k * self.batch_size : (k + 1) * self.batch_size]

    def upcoming(self, after_step: int, limit: int | None = None) -> list[int]:
        """Indices still to be trained in the epoch of step ``after_step + 1``, in order, at most ``limit``."""
        epoch, k = divmod(after_step, self.steps_per_epoch)
        perm = self.permutation(epoch)[k * self.batch_size : self.steps_per_epoch * self.batch_size]
        return perm if limit is None else perm[:limit]

    def batch(self, step: int) -> dict:
        return self.collate_fn([self.dataset[i] for i in self.indices(step)])

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "batch_size": self.batch_size, "size": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        mine = self.state_dict()
        for key in ("seed", "batch_size", "size"):
            if int(state[key]) != mine[key]:
                raise ValueError(f"stage-1 checkpoint: its data order has {key}={state[key]}, this run {mine[key]}: "
                                 "the checkpoint belongs to other data or cadft.data settings")
        self.step = int(state["step"])


def build_sft_dataset(files, data_cfg, model_config) -> RewritableSFTDataset:
    from verl.trainer.sft_trainer import create_sft_dataset

    inner = create_sft_dataset(files, data_cfg, model_config.tokenizer, model_config.processor)
    return RewritableSFTDataset(inner, messages_key=data_cfg.get("messages_key", "messages"))


def build_order(dataset, data_cfg) -> EpochOrder:
    batch_size = int(data_cfg.train_batch_size)
    if len(dataset) < batch_size:
        raise ValueError(
            f"cadft.data.train_batch_size={batch_size} is larger than the training set "
            f"({len(dataset)} rows in {data_cfg.train_files})"
        )
    return EpochOrder(dataset, batch_size, int(data_cfg.get("seed", 1)), IndexedSFTCollator(data_cfg.pad_mode))
