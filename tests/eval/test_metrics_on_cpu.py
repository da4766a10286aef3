"""Metrics: unbiased pass@k against brute-force enumeration, maj@k ties, standard errors, aggregation."""

import itertools
import math
import random

import pytest

from cadft_verl.eval.metrics import (
    average_metrics,
    benchmark_metrics,
    majority_correct,
    mean_se,
    pass_at_k,
    pass_ks,
    resolve_metric,
)


def brute_pass_at_k(n, c, k):
    """Fraction of all k-subsets of n samples (c correct) that contain at least one correct sample."""
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_edges_and_closed_form():
    assert pass_at_k(16, 0, 16) == 0.0
    assert pass_at_k(16, 1, 16) == 1.0
    assert pass_at_k(16, 4, 1) == pytest.approx(4 / 16)
    assert pass_at_k(16, 3, 4) == pytest.approx(1 - math.comb(13, 4) / math.comb(16, 4))
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    assert pass_ks(16) == [1, 2, 4, 8, 16]
    assert pass_ks(12) == [1, 2, 4, 8, 12]
    assert pass_ks(1) == [1]


def test_majority_vote_and_ties():
    assert majority_correct(["1", "1", "2"], [True, True, False]) == 1.0
    assert majority_correct(["2", "2", "1"], [False, False, True]) == 0.0
    # tie between a correct and a wrong cluster: expected value of a random tie-break
    assert majority_correct(["1", "2"], [True, False]) == 0.5
    assert majority_correct(["1", "2", "3"], [True, False, False]) == pytest.approx(1 / 3)
    # differently written correct answers form one cluster (all equal the gold)
    assert majority_correct(["1/2", "0.5", "\\frac12", "3", "3"], [True, True, True, False, False]) == 1.0
    # wrong answers cluster by normalised string (spaces, $, thousands separators)
    assert majority_correct(["1 000", "1000", "$1000$", "7", "7"], [False, False, False, True, True]) == 0.0
    # no-answer samples do not vote
    assert majority_correct([None, None, None, "5"], [False, False, False, True]) == 1.0
    assert majority_correct([None, None], [False, False]) == 0.0


def test_mean_se():
    assert mean_se([1.0, 0.0, 1.0, 0.0]) == {"mean": 0.5, "se": pytest.approx(math.sqrt(1 / 3) / 2)}
    assert mean_se([0.3]) == {"mean": 0.3, "se": 0.0}
    vals = [random.Random(0).random() for _ in range(50)]
    m = sum(vals) / 50
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / 49)
    assert mean_se(vals)["se"] == pytest.approx(sd / math.sqrt(50))


def _s(correct, pred="x", no_answer=False, timed_out=False):
    return {"correct": correct, "pred": None if no_answer else pred, "no_answer": no_answer, "timed_out": timed_out}


def test_benchmark_metrics():
    per = [
        [_s(True, "1"), _s(False, "2"), _s(True, "1"), _s(True, "1")],  # c=3
        [_s(False, "5"), _s(False, "5"), _s(False, no_answer=True), _s(False, timed_out=True)],  # c=0
        [_s(True, "7"), _s(False, "8"), _s(False, "9"), _s(False, no_answer=True)],  # c=1, 3-way tie
    ]
    m = benchmark_metrics(per)
    assert m["n_problems"] == 3 and m["k"] == 4 and m["n_samples"] == 12
    assert m["avg@4"]["mean"] == pytest.approx((3 / 4 + 0 + 1 / 4) / 3)
    assert m["avg@4"]["se"] == pytest.approx(mean_se([0.75, 0.0, 0.25])["se"])
    assert m["pass@1"]["mean"] == pytest.approx(m["avg@4"]["mean"])
    assert m["pass@2"]["mean"] == pytest.approx((1.0 + 0 + pass_at_k(4, 1, 2)) / 3)
    assert m["pass@4"]["mean"] == pytest.approx(2 / 3)
    assert m["maj@4"]["mean"] == pytest.approx((1 + 0 + 1 / 3) / 3)
    assert m["no_answer_rate"] == pytest.approx(2 / 12)
    assert m["wrong_answer_rate"] == pytest.approx(6 / 12)
    assert m["timeouts"] == 1
    for key, v in m.items():
        if isinstance(v, dict):
            assert 0.0 <= v["mean"] <= 1.0 and v["se"] >= 0.0, key


def test_average_and_resolve():
    a = {"avg@4": {"mean": 0.2, "se": 0.03}, "pass@1": {"mean": 0.2, "se": 0.03}, "no_answer_rate": 0.1}
    b = {"avg@4": {"mean": 0.4, "se": 0.04}, "no_answer_rate": 0.3}
    avg = average_metrics({"a": a, "b": b})
    assert avg["avg@4"]["mean"] == pytest.approx(0.3)
    assert avg["avg@4"]["se"] == pytest.approx(0.025)  # sqrt(.03^2 + .04^2) / 2
    assert "pass@1" not in avg  # only metrics present in every benchmark
    assert avg["no_answer_rate"] == pytest.approx(0.2)
    assert resolve_metric("avg@k", 16) == "avg@16" and resolve_metric("pass@1", 16) == "pass@1"


def test_greedy_metric():
    m = benchmark_metrics([[_s(True)], [_s(False)]], greedy=True)
    assert m["k"] == 1 and m["greedy@1"]["mean"] == 0.5 and m["pass@1"]["mean"] == 0.5


def test_headroom_is_pass_at_k_minus_avg_per_problem_with_its_standard_error():
    per = [
        [_s(True), _s(False), _s(True), _s(True)],  # avg 3/4, pass@4 1: headroom 1/4
        [_s(False), _s(False), _s(False), _s(False)],  # all wrong: no room
        [_s(True), _s(False), _s(False), _s(False)],  # avg 1/4, pass@4 1: headroom 3/4
        [_s(True), _s(True), _s(True), _s(True)],  # all right: no room
    ]
    m = benchmark_metrics(per)
    assert m["headroom@4"]["mean"] == pytest.approx(m["pass@4"]["mean"] - m["avg@4"]["mean"]) == pytest.approx(0.25)
    assert m["headroom@4"]["se"] == pytest.approx(mean_se([0.25, 0.0, 0.75, 0.0])["se"])
    assert benchmark_metrics([[_s(True)], [_s(False)]])["headroom@1"]["mean"] == 0.0  # one sample: no room


def test_entropy_is_the_token_weighted_mean_per_problem_then_over_problems():
    def s(entropy, tokens):
        return {**_s(True), "entropy": entropy, "tokens": tokens}

    m = benchmark_metrics([[s(1.0, 3), s(2.0, 1)], [s(0.5, 2), s(0.5, 2)]])
    # problem 1: (3 * 1.0 + 1 * 2.0) / 4 tokens; problem 2: 0.5
    assert m["entropy"]["mean"] == pytest.approx((1.25 + 0.5) / 2)
    assert m["entropy"]["se"] == pytest.approx(mean_se([1.25, 0.5])["se"])
    # a sample without one (a generator that measures none): no entropy rather than a biased one
    assert "entropy" not in benchmark_metrics([[s(1.0, 3), _s(True)]])
    assert "entropy" in average_metrics({"a": m, "b": m}) and "headroom@2" in average_metrics({"a": m, "b": m})


@pytest.mark.parametrize("name, k, ok", [("pass@8", 8, True), ("pass@16", 8, False), ("maj@4", 2, False),
                                         ("avg@k", 1, True), ("pass@k", 1, True), ("greedy@1", 1, True)])
def test_a_pass_at_k_beyond_the_samples_is_refused_naming_the_option(name, k, ok):
    from cadft_verl.eval.metrics import check_metric_k

    if ok:
        check_metric_k(name, k, "eval.metric")
    else:
        with pytest.raises(ValueError, match=rf"^eval\.metric: {name} needs at least \d+ samples per problem, but k "
                                             rf"is {k}$"):
            check_metric_k(name, k, "eval.metric")
