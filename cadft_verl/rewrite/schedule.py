"""When rewrite rounds run: after optimizer step ``start``, then every ``every`` steps, never at the last step.

``start`` and ``every`` are optimizer steps (int) or fractions of the stage's total steps (float < 1), rounded to the
nearest step (at least 1). A round after the stage's last step would change nothing that is trained, so it is skipped.
"""

from __future__ import annotations


def resolve_steps(value, total_steps: int) -> int:
    """An int step count, or ``round(value * total_steps)`` (at least 1) for a float fraction < 1."""
    if isinstance(value, float) and value < 1.0:
        return max(1, int(round(value * total_steps)))
    return int(value)


class RewriteSchedule:
    def __init__(self, start, every, total_steps: int, enabled: bool = True):
        self.total_steps = int(total_steps)
        self.start = resolve_steps(start, self.total_steps)
        self.every = max(1, resolve_steps(every, self.total_steps))
        self.enabled = bool(enabled)

    def due(self, step: int) -> bool:
        """True when a round runs right after optimizer step ``step`` (1-based)."""
        if not self.enabled or step < max(self.start, 1) or step >= self.total_steps:
            return False
        return (step - self.start) % self.every == 0

    def rounds(self) -> list[int]:
        return [s for s in range(1, self.total_steps + 1) if self.due(s)]

    def __repr__(self) -> str:
        return f"RewriteSchedule(start={self.start}, every={self.every}, total={self.total_steps}, rounds={self.rounds()})"
