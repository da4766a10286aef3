"""Typed configuration of the SFT / DFT / CADFT losses (the ``cadft:`` block of the trainer config)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LOSS_NAMES = ("sft", "dft", "cadft")
STATS_MODES = ("exact", "lagged")
ZSCORE_MODES = ("standard", "robust")
# sub-blocks of the `cadft:` config that configure the stage rather than the loss
SECTIONS = ("data", "optim", "trainer", "rewrite", "history")


@dataclass
class LossConfig:
    """Which loss to train with and how CADFT's sample weights are computed (METHOD.md section 2).

    loss: ``sft`` (verl's token-mean NLL), ``dft`` (token weights sg(p_t)), ``cadft`` (DFT x sample weights).
    beta: strength of the down-weighting, w = exp(-beta * max(0, z)).
    eps: added to the batch std before dividing.
    stats: ``exact`` (statistics of the current global batch: free when each rank holds one micro-batch, else a
        no-grad pre-pass) or ``lagged`` (EMA of previous global batches; biased while the NLL falls).
    momentum: EMA momentum of the lagged statistics.
    prepass_micro_batch_scale: the no-grad pre-pass runs micro-batches (or token budgets) this many times larger than
        training's (no activations are kept for a backward pass).
    zscore: ``standard`` (mean, population std) or ``robust`` (median, 1.4826 x MAD).
    renormalize: rescale the global batch's weights to mean 1.
    """

    loss: str = "cadft"
    beta: float = 1.0
    eps: float = 1e-6
    stats: str = "exact"
    momentum: float = 0.9
    prepass_micro_batch_scale: int = 4
    zscore: str = "standard"
    renormalize: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
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
        if not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"cadft.momentum must be in [0, 1), got {self.momentum!r}")
        scale = self.prepass_micro_batch_scale
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"cadft.prepass_micro_batch_scale must be an int >= 1, got {scale!r}")
        if self.zscore not in ZSCORE_MODES:
            raise ValueError(f"cadft.zscore: unknown z-score mode {self.zscore!r}; choose one of {ZSCORE_MODES}")

    @classmethod
    def from_mapping(cls, cfg) -> "LossConfig":
        """Build from a dict / OmegaConf node; unknown keys are an error naming the key."""
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True)
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values = {}
        for key, value in cfg.items():
            if key in known:
                values[key] = value
            elif key not in SECTIONS:
                raise ValueError(f"cadft.{key}: unknown option; known options: {', '.join(sorted(known))}")
        return cls(**values)
