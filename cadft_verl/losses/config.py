"""Typed configuration of the SFT / DFT / CADFT losses: the loss options of the ``cadft:`` block.

Their YAML, with the same comment above every field, is ``cadft_verl/config/cadft/loss.yaml``: the one launch
(``recipes/main.yaml``) and the drop-in SFT stage (``cadft_verl/config/sft_trainer.yaml``) both include it, and
``tests/launcher/test_recipes_on_cpu.py`` keeps its keys and defaults equal to this dataclass's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cadft_verl.config.block import TypedBlock, take_renamed

LOSS_NAMES = ("sft", "dft", "cadft")
STATS_MODES = ("exact", "lagged")
ZSCORE_MODES = ("standard", "robust")
# sub-blocks of the `cadft:` config that configure the stage rather than the loss
SECTIONS = ("data", "optim", "trainer", "rewrite", "history", "model")


@dataclass
class LossConfig(TypedBlock):
    """Which loss to train with and how CADFT's sample weights are computed (METHOD.md section 2). Choices marked
    [ours] are this project's, not the paper's. ``from_mapping(config.cadft)`` skips the stage's sub-blocks."""

    PREFIX = "cadft"
    SECTIONS = SECTIONS

    # loss: sft (verl's token-mean NLL, identical to verl's sft_loss) | dft (token weights sg(p_t)) | cadft (DFT x
    # sample weights)
    loss: str = "cadft"

    # strength of the sample down-weighting w = exp(-beta * max(0, z)); >= 0 (0 makes cadft equal dft)
    beta: float = 1.0

    # added to the batch std in the z-score
    eps: float = 1e-6

    # [ours] batch statistics: exact (the current global batch, as in the paper: free when each rank holds one
    # micro-batch, else a no-grad pre-pass) | lagged (EMA of previous global batches; biased while the NLL falls)
    stats: str = "exact"

    # [ours] the no-grad pre-pass (the response tokens' logits only: trainer/response_nll.py) runs micro-batches (or
    # token budgets) this many times training's: 1 (measured fastest on CPU, and never more memory than a training
    # micro-batch) | an int > 1 | auto (the largest, up to 8, whose estimated memory stays under a training
    # micro-batch's: losses/prepass.py)
    prepass_micro_batch_scale: int | str = 1

    # [ours] under gradient checkpointing, the training step reuses the pre-pass's decoder-layer outputs instead of
    # running its checkpointed forward (exact: trainer/layer_reuse.py); costs the layer inputs of a rank's whole
    # share (layers x tokens x hidden) until the step's backward; false: checkpointing's own forward
    prepass_reuse_forward: bool = True

    # [ours] EMA momentum of the lagged statistics (stats: lagged)
    stats_momentum: float = 0.9

    # deprecated spelling of stats_momentum, which it follows (set in __post_init__); a different value set
    # here is taken for it, with a one-line notice
    momentum: float | None = None

    # [ours] z-score: standard (mean, population std) | robust (median, 1.4826 x MAD)
    zscore: str = "standard"

    # [ours] rescale each global batch's weights to mean 1 (changes the mix of samples, not the learning rate)
    renormalize: bool = False

    def __post_init__(self):
        take_renamed(self, "momentum", "stats_momentum", LossConfig.stats_momentum)
        self.validate()

    def validate(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"cadft.loss: unknown loss {self.loss!r}; choose one of {', '.join(LOSS_NAMES)}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta)) or self.beta < 0:
            raise ValueError(f"cadft.beta must be a finite number >= 0, got {self.beta!r}")
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps)) or self.eps <= 0:
            raise ValueError(f"cadft.eps must be a finite number > 0, got {self.eps!r}")
        if self.stats not in STATS_MODES:
            raise ValueError(f"cadft.stats: unknown statistics mode {self.stats!r}; choose one of {STATS_MODES}")
        if not 0.0 <= float(self.stats_momentum) < 1.0:
            raise ValueError(f"cadft.stats_momentum must be in [0, 1), got {self.stats_momentum!r}")
        scale = self.prepass_micro_batch_scale
        if scale != "auto" and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
            raise ValueError(f"cadft.prepass_micro_batch_scale must be an int >= 1 or 'auto', got {scale!r}")
        if not isinstance(self.prepass_reuse_forward, bool):
            raise ValueError(f"cadft.prepass_reuse_forward must be true or false, got {self.prepass_reuse_forward!r}")
        if self.zscore not in ZSCORE_MODES:
            raise ValueError(f"cadft.zscore: unknown z-score mode {self.zscore!r}; choose one of {ZSCORE_MODES}")
