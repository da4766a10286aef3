"""Verification of rewrite candidates: the candidate's final answer must match the sample's reference answer.

Uses the reward package's process-pool scorer (``cadft_verl.reward.score_batch``): extraction of the last
``\\boxed{}`` / ``####`` answer in this process, math-verify in worker processes with a hard per-item deadline, so a
pathological expression can never hang the training driver.
"""

from __future__ import annotations


def verify_candidates(pairs: list[tuple[str, object]], timeout: float = 10.0, pool=None) -> list[dict]:
    """``pairs``: (candidate text, reference answer). Returns one result per pair (``acc``, ``timed_out``, ...)."""
    if not pairs:
        return []
    from cadft_verl.reward import score_batch

    return score_batch(pairs, timeout=timeout, pool=pool, num_workers=None if pool is not None else 1)
