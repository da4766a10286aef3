"""Which samples a rewrite round considers (METHOD.md section 4).

Candidates: samples visited at least ``min_visits`` times whose EMA z ranks in the top ``fraction`` of the dataset
(``ceil(fraction * dataset size)`` samples, at least one; ties broken by the lower index). Each candidate is then
drawn for rewriting with probability ``prob`` from a generator seeded by (seed, step), so a rerun of the same round
draws the same samples.
"""

from __future__ import annotations

import math
import random

from cadft_verl.history import CompatibilityHistory


def num_candidates(fraction: float, dataset_size: int) -> int:
    return min(dataset_size, max(1, math.ceil(fraction * dataset_size - 1e-9)))


def select_candidates(history: CompatibilityHistory, fraction: float, min_visits: int = 1) -> list[int]:
    """Indices of the candidates, worst (highest EMA z) first."""
    k = num_candidates(fraction, history.size)
    eligible = [i for i in range(history.size) if history.visits[i] >= max(1, min_visits) and history.ema_z[i] is not None]
    eligible.sort(key=lambda i: (-history.ema_z[i], i))
    return eligible[:k]


def draw(candidates: list[int], prob: float, seed: int, step: int) -> list[bool]:
    """For each candidate, whether it is rewritten this round (Bernoulli(prob), reproducible per (seed, step))."""
    rng = random.Random(f"cadft-rewrite/{seed}/{step}")
    return [rng.random() < prob for _ in candidates]
