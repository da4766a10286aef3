"""Typed ``cadft.rewrite`` block (METHOD.md section 4). Every field is documented in recipes/main.yaml."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

DEFAULT_GENERATOR = "rollout"


@dataclass
class RewriteConfig:
    """Delayed, low-frequency, compatibility-guided rewriting of training targets.

    enabled: rewrite at all (false = weighting-only CADFT). Only the ``cadft`` loss rewrites; sft/dft never do.
    start / every: first round and spacing, in optimizer steps (int) or as a fraction of the stage's steps
        (float < 1). [ours] 0.3 and 0.2 (the paper's 3000/1000 steps do not fit a ~400-step run).
    fraction: share of the dataset taken as candidates per round (top EMA z). Paper: 0.005.
    prob: probability that each candidate is rewritten. Paper: 0.5.
    min_visits: in a multi-epoch stage, a candidate must have been visited (trained on) at least this often: its EMA z
        over the visits is "persistently incompatible". [ours] null = 2, or 1 in a two-epoch stage (a rewrite needs
        a visit left to be trained on). Not used by a single-pass stage.
    lookahead: in a single-pass stage (the DFT protocol: one epoch), candidates come from the samples still to come
        in this epoch, scored in a no-grad look-ahead of the current policy: at most this many of them, in
        training order. [ours] null = the samples of the steps until the next round (or the stage's end).
    temperature / top_p: nucleus sampling of the policy's own answer. Paper: 0.7 / 0.9.
    max_tokens: longest rewrite in tokens; null = cadft.data.max_length.
    n: candidates generated per chosen sample; the verified one with the lowest NLL wins. [ours] 4.
    verify: accept only candidates whose final answer verifies against extra_info.ground_truth. [ours] true;
        false = the paper's unverified replacement (the lowest-NLL candidate is taken).
    verify_timeout: seconds per math-verify comparison (hard deadline, process pool). [ours] 10.
    score_unvisited: no-grad scoring of samples not visited since the last round before selecting. [ours] false.
    generation_timeout: seconds for a round's generation; on timeout/failure the originals stay. [ours] 1800.
    seed: sampling seed of the rewrite rounds (per round and sample: seed + step, request number). [ours] 0.
    generator: ``rollout`` (verl's rollout replicas, vLLM) or ``module:Class`` of a custom generator.
    """

    enabled: bool = True
    start: float | int = 0.3
    every: float | int = 0.2
    fraction: float = 0.005
    prob: float = 0.5
    min_visits: int | None = None
    lookahead: int | None = None
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int | None = None
    n: int = 4
    verify: bool = True
    verify_timeout: float = 10.0
    score_unvisited: bool = False
    generation_timeout: float = 1800.0
    seed: int = 0
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

    @classmethod
    def from_mapping(cls, cfg) -> "RewriteConfig":
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"cadft.rewrite.{unknown[0]}: unknown option; known options: {', '.join(sorted(known))}")
        return cls(**cfg)
