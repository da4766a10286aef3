"""The one result type of the reward: :class:`Score`, and its one conversion to verl's reward-manager dict."""

from __future__ import annotations

from dataclasses import dataclass

#: ``pred`` handed to verl is truncated to this length (it is logged and used for maj@N there)
VERL_PRED_CHARS = 256


@dataclass(frozen=True)
class Score:
    """One response scored against one reference answer."""

    correct: bool
    pred: str | None  # the extracted final answer; None when the response has none
    timed_out: bool = False  # the comparison hit its deadline (scored wrong)
    error: str | None = None  # why it could not be compared (no reference, worker died, ...)

    @property
    def has_answer(self) -> bool:
        return self.pred is not None

    @property
    def value(self) -> float:
        return 1.0 if self.correct else 0.0

    def as_dict(self) -> dict:
        """The form :func:`~cadft_verl.reward.score_response` / ``score_batch`` return (``acc`` a bool)."""
        return {
            "score": self.value,
            "acc": bool(self.correct),
            "pred": self.pred,
            "no_answer": not self.has_answer,
            "timed_out": bool(self.timed_out),
            "error": self.error,
        }

    def to_verl(self) -> dict:
        """What verl 0.9.1's reward managers expect from a custom reward function: ``score`` is the reward, the
        other keys are logged as floats (``acc``, ``has_answer``, ``timed_out``) or text (``pred``, truncated)."""
        return {
            "score": self.value,
            "acc": self.value,
            "has_answer": 1.0 if self.has_answer else 0.0,
            "timed_out": 1.0 if self.timed_out else 0.0,
            "pred": (self.pred or "")[:VERL_PRED_CHARS],
        }
