"""With ``reward_kwargs.check_chain``, the RL reward of the embedded arithmetic task pays a right answer only with the
problem's own chain of equations (a one-digit answer is often a lucky guess), while its ``acc`` and every other data
source keep the outcome. Without it (the default) the reward is the outcome."""

import pandas as pd

from cadft_verl.reward import compute_score
from cadft_verl.reward.chain import ARITH_SOURCE, equations

EXTRA = {"chain": "7 + 2 = 9\n9 - 3 = 6"}


def compute_checked(*args):
    return compute_score(*args, check_chain=True)


def _boxed(body, answer):
    return f"{body}\n\\boxed{{{answer}}}"


def test_a_right_answer_needs_the_problem_chain_on_arith_rows():
    right = compute_checked(ARITH_SOURCE, _boxed("7 + 2 = 9\n9 - 3 = 6", 6), "6", EXTRA)
    assert right["score"] == 1.0 and right["acc"] == 1.0
    spaced = compute_checked(ARITH_SOURCE, _boxed("7+2=9, then 9 -3 = 6", 6), "6", EXTRA)
    assert spaced["score"] == 1.0  # the same equations in another spacing
    for body in ("5 + 5 = 8\n8 - 2 = 6",  # a lucky guess: wrong sums ending on the right digit
                 "9 - 3 = 6",  # a step skipped
                 "7 + 2 = 9\n9 - 3 = 6\n6 + 0 = 6",  # an equation too many
                 "The answer is 6."):  # no worked steps
        lucky = compute_checked(ARITH_SOURCE, _boxed(body, 6), "6", EXTRA)
        assert lucky["score"] == 0.0 and lucky["acc"] == 1.0, body  # acc stays the outcome (val-core, evaluation)
    wrong = compute_checked(ARITH_SOURCE, _boxed("7 + 2 = 9\n9 - 3 = 6", 5), "6", EXTRA)
    assert wrong["score"] == 0.0 and wrong["acc"] == 0.0


def test_other_sources_and_rows_without_a_chain_keep_the_outcome_reward():
    lucky = _boxed("5 + 5 = 8", 6)
    assert compute_score("cadft/gsm8k", lucky, "6", EXTRA)["score"] == 1.0
    assert compute_score(ARITH_SOURCE, lucky, "6", {"steps": 2})["score"] == 1.0
    assert compute_checked(ARITH_SOURCE, lucky, "6", None)["score"] == 1.0
    assert compute_checked("cadft/gsm8k", lucky, "6", EXTRA)["score"] == 1.0
    assert compute_checked(ARITH_SOURCE, lucky, "6", {"steps": 2})["score"] == 1.0


def test_without_check_chain_the_reward_is_the_outcome():
    lucky = compute_score(ARITH_SOURCE, _boxed("5 + 5 = 8", 6), "6", EXTRA)
    assert lucky["score"] == 1.0 and lucky["acc"] == 1.0


def test_make_arith_carries_each_problem_chain_to_the_rl_rows(tmp_path, monkeypatch):
    from cadft_verl.data.sample import make_arith

    monkeypatch.setenv("CADFT_BENCHMARKS_DIR", str(tmp_path / "none"))
    make_arith(out=str(tmp_path), sft_size=8, rl_size=16, val_size=4, quiet=True)
    for split in ("train", "val"):
        rl = pd.read_parquet(tmp_path / "rl" / f"{split}.parquet")
        for source, extra, reward in zip(rl["data_source"], rl["extra_info"], rl["reward_model"]):
            chain = equations(extra["chain"])
            assert source == ARITH_SOURCE and len(chain) == extra["steps"]
            assert chain[-1].endswith(f"= {reward['ground_truth']}")  # the chain ends on the answer
            # the clean solution scores 1, the same answer after a wrong chain 0
            assert compute_checked(source, _boxed(extra["chain"], reward["ground_truth"]), reward["ground_truth"],
                                 extra)["score"] == 1.0
            assert compute_checked(source, _boxed("1 + 1 = 2", reward["ground_truth"]), reward["ground_truth"],
                                 extra)["score"] == 0.0
