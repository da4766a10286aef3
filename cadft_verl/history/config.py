"""Typed ``cadft.history`` block (METHOD.md section 3). Its YAML, with the same comment above every field, is in
``recipes/main.yaml``; ``tests/launcher/test_recipes_on_cpu.py`` keeps the two equal."""

from __future__ import annotations

from dataclasses import dataclass

from cadft_verl.config.block import TypedBlock, take_renamed


@dataclass
class HistoryConfig(TypedBlock):
    """The per-sample compatibility history of stage 1: an EMA of each sample's z over its visits, and visit counts."""

    PREFIX = "cadft.history"

    # [ours] EMA momentum of each sample's z: ema_z <- m * ema_z + (1 - m) * z (first visit: z)
    z_momentum: float = 0.5

    # deprecated spelling of z_momentum, which it follows (set in __post_init__); a different value set
    # here is taken for it, with a one-line notice
    momentum: float | None = None

    def __post_init__(self):
        take_renamed(self, "momentum", "z_momentum", HistoryConfig.z_momentum)
        if isinstance(self.z_momentum, bool) or not 0.0 <= float(self.z_momentum) < 1.0:
            raise ValueError(f"cadft.history.z_momentum must be in [0, 1), got {self.z_momentum!r}")
