"""The embedded arithmetic task's verifier (rows of ``data_source`` ``cadft/arith``): a response earns its reward
only when its final answer is right *and* its worked equations are the problem's chain.

Why: every answer of the task is one digit, so a wrong chain ends on the right digit about one time in ten, and the
outcome reward pays those guesses; on RL rollouts about half of what the outcome reward pushed up was wrong
arithmetic (docs/cpu-default.md, "Why stage 2 did not learn"). The chain of a problem is unique (start value, then
one equation per step) and is carried in the row's ``extra_info["chain"]`` (``cadft_verl.tasks.arith``). Evaluation
keeps the outcome metric; this is the RL reward only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: the data_source of the embedded arithmetic task's rows (``cadft/<task>``, cadft_verl.data.convert)
ARITH_SOURCE = "cadft/arith"

_EQUATION = re.compile(r"(-?\d+)\s*([+-])\s*(\d+)\s*=\s*(-?\d+)")


def equations(text: str) -> list[str]:
    """The ``a op b = c`` equations of a text, in order, in the task's normal form (``"7 + 2 = 9"``)."""
    return [f"{a} {op} {b} = {c}" for a, op, b, c in _EQUATION.findall(text or "")]


def chain_of(extra_info: Mapping | None) -> list[str] | None:
    """The problem's chain from a row's ``extra_info`` (None when the row has none)."""
    chain = (extra_info or {}).get("chain")
    if chain is None:
        return None
    return equations(chain) if isinstance(chain, str) else [str(c) for c in chain]


def chain_matches(response: str, chain: list[str]) -> bool:
    """True when the response's equations are exactly the problem's chain, in order."""
    return equations(response) == list(chain)
