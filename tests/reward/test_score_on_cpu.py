"""One score type: the pool, ``score``, ``score_batch`` and verl's ``compute_score`` all come from ``Score``."""

from cadft_verl.reward import Score, ScoringPool, compute_score, score_batch
from cadft_verl.reward.scorer import score


def test_score_and_its_views():
    with ScoringPool(num_workers=1, timeout=10) as pool:
        right = score("so \\boxed{\\frac{1}{2}}", "0.5", pool=pool)  # needs math-verify: goes through the pool
        wrong = score("\\boxed{3}", "4", pool=pool)
        none = score("no answer here", "4", pool=pool)
        via_pool = pool.verify("\\frac{1}{2}", "0.5")
        batch = score_batch([("so \\boxed{\\frac{1}{2}}", "0.5"), ("no answer here", "4")], pool=pool)
    assert right == Score(True, "\\frac{1}{2}") and via_pool == right
    assert wrong == Score(False, "3") and none == Score(False, None) and not none.has_answer
    assert batch == [right.as_dict(), none.as_dict()]
    assert right.to_verl() == {"score": 1.0, "acc": 1.0, "has_answer": 1.0, "timed_out": 0.0, "pred": "\\frac{1}{2}"}
    assert none.to_verl() == {"score": 0.0, "acc": 0.0, "has_answer": 0.0, "timed_out": 0.0, "pred": ""}
    assert Score(False, "x" * 1000, timed_out=True).to_verl()["timed_out"] == 1.0
    assert len(Score(False, "x" * 1000).to_verl()["pred"]) == 256
    assert compute_score("m", "so \\boxed{\\frac{1}{2}}", "0.5") == right.to_verl()
