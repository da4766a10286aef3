"""In-process math-verify comparison of one extracted answer with one gold answer (no timeout of its own).

This is what a scoring worker process runs (``cadft_verl.reward._worker``); callers should go through
``cadft_verl.reward.compute_score`` / ``score_batch`` which add the hard per-item deadline.
math-verify's own signal-based timeouts are disabled here (``parsing_timeout=None``, ``timeout_seconds=None``)
unless ``signal_timeout`` is given, because ``signal.alarm`` only works in the main thread.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from cadft_verl.math.answers import normalize_answer, squash

_MV = None


def _math_verify():
    global _MV
    if _MV is None:
        import math_verify
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        # "Timeout is disabled ..." is expected here: the caller owns the deadline.
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).setLevel(logging.ERROR)
        configs = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
        _MV = (math_verify.parse, math_verify.verify, configs)
    return _MV


def _parse(ans: str, signal_timeout: int | None):
    parse, _, configs = _math_verify()
    return parse(
        "\\boxed{" + ans + "}",
        extraction_config=configs,
        fallback_mode="first_match",
        parsing_timeout=signal_timeout,
    )


@lru_cache(maxsize=4096)
def _parse_gold_cached(gold: str):
    return _parse(gold, None)


def answers_match(pred: str, gold: str, signal_timeout: int | None = None) -> bool:
    """True when the extracted answer ``pred`` equals the (normalised) ``gold`` per math-verify.

    Both are wrapped in ``\\boxed{}`` and parsed with LaTeX + plain-expression extraction; an exact
    (whitespace-insensitive) string match after normalisation also counts.
    """
    _, verify, _ = _math_verify()
    pred_n = normalize_answer(pred)
    gold_n = normalize_answer(gold)
    if not pred_n or not gold_n:
        return False
    if squash(pred_n) == squash(gold_n):
        return True
    gold_parsed = _parse(gold_n, signal_timeout) if signal_timeout else _parse_gold_cached(gold_n)
    pred_parsed = _parse(pred_n, signal_timeout)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=signal_timeout))
