"""Typed ``cadft.rewrite`` block (METHOD.md section 4). Its YAML, with the same comment above every field, is in
``recipes/main.yaml``; ``tests/launcher/test_recipes_on_cpu.py`` keeps the two equal."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cadft_verl.config.block import TypedBlock

DEFAULT_GENERATOR = "rollout"


@dataclass
class RewriteConfig(TypedBlock):
    """Delayed, low-frequency, compatibility-guided rewriting of training targets; only the ``cadft`` loss rewrites
    (sft/dft never do). Choices marked [ours] are this project's, not the paper's."""

    PREFIX = "cadft.rewrite"

    # rewrite at all; false = weighting-only CADFT (no rollout engine needed)
    enabled: bool = True

    # [ours] first round: after this optimizer step (int) or this fraction of the stage's steps (float < 1); the
    # paper's 3000 steps do not fit a ~400-step run
    start: float | int = 0.3

    # [ours] spacing of the rounds: steps (int) or fraction of the stage's steps (float < 1); paper: 1000 steps
    every: float | int = 0.2

    # share of the dataset taken as candidates per round: the top EMA z (paper: 0.005)
    fraction: float = 0.005

    # probability that each candidate is rewritten (paper: 0.5)
    prob: float = 0.5

    # [ours] multi-epoch stages: a candidate needs at least this many training visits (its EMA z over them is
    # "persistently incompatible"); null = 2, or 1 in a two-epoch stage (a rewrite needs a visit left to be trained
    # on). Single-pass stages use the look-ahead below instead
    min_visits: int | None = None

    # [ours] single-pass stages (one epoch, the DFT protocol): candidates are the samples still to come in this epoch,
    # scored in a no-grad look-ahead, in training order; at most this many; null = those of the steps until the next
    # round (or the stage's end)
    lookahead: int | None = None

    # sampling temperature of the policy's own answer (paper: 0.7)
    temperature: float = 0.7

    # nucleus sampling top_p (paper: 0.9)
    top_p: float = 0.9

    # [ours] longest rewrite in tokens; null = cadft.data.max_length
    max_tokens: int | None = None

    # [ours] answers sampled per chosen sample; the verified one with the lowest NLL under the policy wins
    n: int = 4

    # [ours] accept only answers whose final answer verifies against extra_info.ground_truth (math-verify); false =
    # the paper's unverified replacement (the lowest-NLL candidate is taken)
    verify: bool = True

    # [ours] seconds per math-verify comparison (hard deadline, process pool)
    verify_timeout: float = 10.0

    # [ours] score samples not visited since the last round in a no-grad pass before selecting (extra forwards)
    score_unvisited: bool = False

    # [ours] seconds a round's generation may take; on timeout or failure every original target stays
    generation_timeout: float = 1800.0

    # [ours] seed of the rounds' candidate draws and sampling (per round and sample: seed + step, request number)
    seed: int = 0

    # rollout = verl's rollout replicas (vLLM) with the current weights; or module:Class of a custom generator
    # (cadft_verl.rewrite.generator.RewriteGenerator)
    generator: str = DEFAULT_GENERATOR

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        for key in ("start", "every"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"cadft.rewrite.{key} must be a step count (int >= 0) or a fraction (float < 1), "
                                 f"got {v!r}")
            if isinstance(v, float) and v >= 1.0 and not v.is_integer():
                raise ValueError(f"cadft.rewrite.{key}={v!r}: a float must be a fraction < 1 of the total steps")
        if self.every == 0:
            raise ValueError("cadft.rewrite.every must be > 0")
        if not 0.0 < float(self.fraction) <= 1.0:
            raise ValueError(f"cadft.rewrite.fraction must be in (0, 1], got {self.fraction!r}")
        if not 0.0 <= float(self.prob) <= 1.0:
            raise ValueError(f"cadft.rewrite.prob must be in [0, 1], got {self.prob!r}")
        if self.min_visits is not None and int(self.min_visits) < 1:
            raise ValueError(f"cadft.rewrite.min_visits must be >= 1 or null, got {self.min_visits!r}")
        if self.lookahead is not None and int(self.lookahead) < 1:
            raise ValueError(f"cadft.rewrite.lookahead must be >= 1 or null, got {self.lookahead!r}")
        if float(self.temperature) < 0:
            raise ValueError(f"cadft.rewrite.temperature must be >= 0, got {self.temperature!r}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise ValueError(f"cadft.rewrite.top_p must be in (0, 1], got {self.top_p!r}")
        if self.max_tokens is not None and int(self.max_tokens) < 1:
            raise ValueError(f"cadft.rewrite.max_tokens must be >= 1 or null, got {self.max_tokens!r}")
        if int(self.n) < 1:
            raise ValueError(f"cadft.rewrite.n must be >= 1, got {self.n!r}")
        if float(self.verify_timeout) <= 0 or float(self.generation_timeout) <= 0:
            raise ValueError("cadft.rewrite.verify_timeout and generation_timeout must be > 0")

    def visits_needed(self, epochs: int = 3) -> int:
        """Training visits a candidate needs in a stage of ``epochs`` (started) epochs."""
        if self.min_visits is not None:
            return int(self.min_visits)
        return max(1, min(2, int(epochs) - 1))
