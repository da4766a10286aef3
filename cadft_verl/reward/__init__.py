"""Math reward / scorer: last ``\\boxed{}`` (or GSM8K ``####``) answer vs the reference, compared by math-verify,
with a hard per-item deadline that works from any thread (worker processes, killed and replaced on timeout).

verl (0.9.1) custom reward function::

    reward.custom_reward_function.path=pkg://cadft_verl.reward
    reward.custom_reward_function.name=compute_score

Public API: :func:`compute_score` (verl), :func:`score_response` (one), :func:`score_batch` (many, process pool),
:class:`ScoringPool`, the result type :class:`Score`, and the extraction helpers of :mod:`cadft_verl.math.extract`.
Only absolute imports are used, so loading this file by path (``custom_reward_function.path=/.../__init__.py``)
also works when the package is installed.
"""

from cadft_verl.math.answers import normalize_answer, normalize_gold
from cadft_verl.math.extract import extract_final_answer, gsm8k_final, last_boxed
from cadft_verl.reward.pool import ScoringPool, get_default_pool
from cadft_verl.reward.score import Score
from cadft_verl.reward.scorer import compute_score, score_batch, score_response

__all__ = [
    "Score",
    "ScoringPool",
    "compute_score",
    "extract_final_answer",
    "get_default_pool",
    "gsm8k_final",
    "last_boxed",
    "normalize_answer",
    "normalize_gold",
    "score_batch",
    "score_response",
]
