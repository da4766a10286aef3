"""Compatibility history: per dataset index, an EMA of the sample's z-score over its visits and a visit count.

A *visit* is any time the sample's compatibility is measured under the current policy: a training step that contains
it (z from the CADFT loss itself) or a no-grad scoring pass (``cadft.rewrite.score_unvisited``, and the scoring of a
rewrite round's originals). The EMA uses momentum ``m`` (``cadft.history.z_momentum``, default 0.5)::

    ema_z <- z                          on the first visit
    ema_z <- m * ema_z + (1 - m) * z    afterwards

A sample whose target is rewritten starts a fresh history (``reset``) and is *pending* until a training step has
visited it with the new target: pending samples are never rewrite candidates, and no-grad scoring does not end the
pending state (``update(..., trained=False)``).

``last_step`` is the optimizer step of the most recent visit (the rewrite round uses it to find samples not visited
since the previous round). The whole state is JSON-serialisable and is saved with every stage-1 checkpoint
(``global_step_N/cadft_history.json``), so a resumed run continues with the same history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cadft_verl.utils.files import read_json, write_json

HISTORY_FILE = "cadft_history.json"


class CompatibilityHistory:
    def __init__(self, size: int, momentum: float = 0.5):
        """``momentum``: the EMA's, ``cadft.history.z_momentum`` (``HistoryConfig``)."""
        if size < 0:
            raise ValueError(f"history size must be >= 0, got {size}")
        if not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"cadft.history.z_momentum must be in [0, 1), got {momentum!r}")
        self.size = int(size)
        self.momentum = float(momentum)
        self.ema_z: list[float | None] = [None] * self.size
        self.visits: list[int] = [0] * self.size
        self.last_step: list[int] = [-1] * self.size
        self.pending: set[int] = set()

    # ------------------------------------------------------------------------------------------------------------
    def update(self, indices: Iterable[int], z: Iterable[float], step: int, trained: bool = True) -> int:
        """Record one visit per (index, z) pair; non-finite z values are skipped. Returns the number recorded.
        ``trained``: the visit is a training step (ends a rewritten sample's pending state); False for no-grad
        scoring."""
        m = self.momentum
        n = 0
        for i, zi in zip(indices, z, strict=True):
            i, zi = int(i), float(zi)
            if not 0 <= i < self.size:
                raise IndexError(f"compatibility history: dataset index {i} outside [0, {self.size})")
            if not math.isfinite(zi):
                continue
            prev = self.ema_z[i]
            self.ema_z[i] = zi if prev is None else m * prev + (1.0 - m) * zi
            self.visits[i] += 1
            self.last_step[i] = int(step)
            if trained:
                self.pending.discard(i)
            n += 1
        return n

    def reset(self, index: int) -> None:
        """A fresh history for a sample whose target was replaced; pending until trained with the new target."""
        i = int(index)
        self.ema_z[i], self.visits[i], self.last_step[i] = None, 0, -1
        self.pending.add(i)

    def visited(self, min_visits: int = 1) -> list[int]:
        return [i for i, v in enumerate(self.visits) if v >= min_visits]

    def not_visited_since(self, step: int) -> list[int]:
        """Indices whose last visit is before ``step`` (never visited included)."""
        return [i for i, s in enumerate(self.last_step) if s < step]

    def summary(self) -> dict[str, float]:
        seen = [z for z in self.ema_z if z is not None]
        out = {"history/visited_frac": len(seen) / self.size if self.size else 0.0}
        if seen:
            out["history/ema_z_max"] = max(seen)
            out["history/ema_z_mean"] = sum(seen) / len(seen)
        return out

    # ------------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"size": self.size, "momentum": self.momentum, "ema_z": list(self.ema_z),
                "visits": list(self.visits), "last_step": list(self.last_step), "pending": sorted(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(
                f"compatibility history in the checkpoint covers {state['size']} samples but the dataset has "
                f"{self.size}: the checkpoint belongs to different training data"
            )
        self.ema_z = [None if z is None else float(z) for z in state["ema_z"]]
        self.visits = [int(v) for v in state["visits"]]
        self.last_step = [int(s) for s in state["last_step"]]
        self.pending = {int(i) for i in state.get("pending", [])}

    def save(self, path: str) -> None:
        write_json(path, self.state_dict(), indent=None)

    def load(self, path: str) -> None:
        self.load_state_dict(read_json(path))

    def __eq__(self, other) -> bool:
        return isinstance(other, CompatibilityHistory) and self.state_dict() == other.state_dict()
