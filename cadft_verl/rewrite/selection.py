"""Which samples a rewrite round considers (METHOD.md section 4).

Two ways to find "persistently incompatible" samples, chosen by the stage's length **[ours]**:

- several epochs (``PersistentSelector``): samples trained on at least ``min_visits`` times whose EMA z (the
  compatibility history) ranks in the top ``fraction`` of the dataset, among those the stage will visit again (a
  rewrite with no visit left would never be trained). An accepted rewrite is trained from the sample's next visit on.
- a single pass (``LookaheadSelector``, the DFT protocol): a sample is visited once, so a rewrite of a sample already
  seen would never be trained. Candidates are the samples still to come in this epoch, scored in a bounded no-grad
  look-ahead of the current policy and ranked by z against the statistics of the scored window; an accepted rewrite
  is trained when its turn comes.

Both take ``ceil(fraction * dataset size)`` candidates (at least one; ties broken by the lower index) and never a
sample whose rewrite has not been trained on yet (``history.pending``). Each candidate is then drawn with
probability ``prob`` from a generator seeded by (seed, step), so a rerun of the same round draws the same samples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from cadft_verl.history import CompatibilityHistory
from cadft_verl.losses.weights import batch_location_scale, z_scores


def num_candidates(fraction: float, dataset_size: int) -> int:
    return min(dataset_size, max(1, math.ceil(fraction * dataset_size - 1e-9)))


def select_candidates(history: CompatibilityHistory, fraction: float, min_visits: int = 1,
                      eligible_set: set[int] | None = None) -> list[int]:
    """Indices of the candidates by EMA z, worst (highest) first (only from ``eligible_set`` when given)."""
    k = num_candidates(fraction, history.size)
    eligible = [i for i in range(history.size)
                if history.visits[i] >= max(1, min_visits) and history.ema_z[i] is not None
                and i not in history.pending and (eligible_set is None or i in eligible_set)]
    eligible.sort(key=lambda i: (-history.ema_z[i], i))
    return eligible[:k]


def draw(candidates: list[int], prob: float, seed: int, step: int) -> list[bool]:
    """For each candidate, whether it is rewritten this round (Bernoulli(prob), reproducible per (seed, step))."""
    rng = random.Random(f"cadft-rewrite/{seed}/{step}")
    return [rng.random() < prob for _ in candidates]


class PersistentSelector:
    """Multi-epoch stages: top ``fraction`` by EMA z among samples with ``min_visits`` training visits."""

    kind = "history"

    def __init__(self, history: CompatibilityHistory, fraction: float, min_visits: int,
                 visited_later: Callable[[int], set[int]] | None = None):
        """``visited_later(step)``: the samples the stage still trains on after ``step`` (None: every sample)."""
        self.history, self.fraction, self.min_visits = history, fraction, int(min_visits)
        self.visited_later = visited_later

    def __call__(self, step: int) -> list[tuple[int, float]]:
        later = self.visited_later(step) if self.visited_later is not None else None
        chosen = select_candidates(self.history, self.fraction, self.min_visits, later)
        return [(i, self.history.ema_z[i]) for i in chosen]


class LookaheadSelector:
    """Single-pass stages: top ``fraction`` of the dataset by z among the samples still to come.

    ``upcoming(step)`` gives the window (dataset indices in training order); ``score(items)`` their NLL under the
    current policy (no-grad); z is taken against the window's own statistics (``zscore``, ``eps``)."""

    kind = "lookahead"

    def __init__(self, history: CompatibilityHistory, fraction: float, upcoming: Callable[[int], list[int]],
                 score: Callable[[list[tuple[int, str | None]]], list[float | None]], zscore: str = "standard",
                 eps: float = 1e-6):
        self.history, self.fraction = history, fraction
        self.upcoming, self.score, self.zscore, self.eps = upcoming, score, zscore, eps
        self.last_window = 0

    def __call__(self, step: int) -> list[tuple[int, float]]:
        window = [i for i in self.upcoming(step) if i not in self.history.pending]
        self.last_window = len(window)
        if not window:
            return []
        nll = self.score([(i, None) for i in window])
        scored = [(i, v) for i, v in zip(window, nll, strict=True) if v is not None and math.isfinite(v)]
        if not scored:
            return []
        c = torch.tensor([v for _, v in scored], dtype=torch.float64)
        loc, scale = batch_location_scale(c, None, self.zscore)
        z = z_scores(c, loc, scale, self.eps).tolist()
        ranked = sorted(zip((i for i, _ in scored), z), key=lambda p: (-p[1], p[0]))
        return ranked[: num_candidates(self.fraction, self.history.size)]
