"""Sampling metrics over n responses per problem, each with a standard error across problems.

- ``avg@k``: mean accuracy over the k samples of a problem (the paper's "average@16"), averaged over problems.
- ``pass@k'``: the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k') / C(n, k')`` with n samples of
  which c are correct, for k' in 1, 2, 4, ..., and n itself.
- ``maj@k``: accuracy of the majority answer among the k samples. All correct samples form one cluster (they all
  equal the gold answer); wrong answers are clustered by their normalised string; samples without an answer do not
  vote. Ties are resolved uniformly at random *in expectation*: a problem scores (#tied clusters that are correct) /
  (#tied clusters), so the metric is deterministic.
- ``headroom@k``: pass@k − avg@k per problem (n = k samples), averaged over problems: how much of what the policy
  can reach in k tries it does not yet get on a typical try, the room RL has to turn samples into pass@1.
- ``entropy``: the policy's mean per-token entropy (nats) on its own samples, per problem (its samples' entropy sums
  over their token counts), averaged over problems; only when every sample carries one
  (``cadft_verl.eval.generation``: exact from the logits with transformers, estimated from the sampled tokens'
  log-probabilities with vLLM).
- standard error: sample standard deviation (ddof=1) of the per-problem values / sqrt(#problems).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from cadft_verl.math.answers import normalize_answer, squash

CORRECT_KEY = "\x00correct"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``n`` samples, ``c`` correct (Chen et al., 2021, numerically stable)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_ks(n: int) -> list[int]:
    """k' values reported for n samples: powers of two up to n, plus n."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    if n >= 1 and ks[-1] != n:
        ks.append(n)
    return ks


def majority_correct(preds: Sequence[str | None], correct: Sequence[bool]) -> float:
    """Expected correctness of the majority-vote answer (see module docstring for clustering and ties)."""
    votes: Counter[str] = Counter()
    for p, ok in zip(preds, correct, strict=True):
        if ok:
            votes[CORRECT_KEY] += 1
        elif p is not None:
            votes[squash(normalize_answer(p)) if len(p) < 10_000 else p] += 1
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [key for key, v in votes.items() if v == top]
    return (1.0 if CORRECT_KEY in tied else 0.0) / len(tied)


def mean_se(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "se"}``: mean and standard error (ddof=1 std / sqrt(n); 0 for fewer than two values)."""
    n = len(values)
    if n == 0:
        return {"mean": float("nan"), "se": float("nan")}
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "se": 0.0}
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return {"mean": mean, "se": math.sqrt(var / n)}


def problem_metrics(preds: Sequence[str | None], correct: Sequence[bool]) -> dict[str, float]:
    """Per-problem values: ``avg``, ``pass@k'`` for every k' in :func:`pass_ks`, ``maj``."""
    n, c = len(correct), sum(bool(x) for x in correct)
    out = {"avg": c / n if n else 0.0}
    for k in pass_ks(n):
        out[f"pass@{k}"] = pass_at_k(n, c, k)
    out["maj"] = majority_correct(preds, correct)
    return out


def problem_entropies(samples_per_problem: Sequence[Sequence[dict]]) -> list[float] | None:
    """Per problem, the mean per-token entropy over its samples' tokens (a sample without tokens weighs 1); None
    unless every sample has an ``entropy``."""
    out = []
    for samples in samples_per_problem:
        if not samples or any(x.get("entropy") is None for x in samples):
            return None
        weights = [max(1, int(x.get("tokens") or 0)) for x in samples]
        out.append(sum(w * float(x["entropy"]) for w, x in zip(weights, samples)) / sum(weights))
    return out or None


def benchmark_metrics(samples_per_problem: Sequence[Sequence[dict]], greedy: bool = False) -> dict:
    """Aggregate metrics for one benchmark.

    ``samples_per_problem[i]`` are the scored samples of problem i: dicts with ``correct`` (bool), ``pred``
    (str|None), ``no_answer`` (bool), ``timed_out`` (bool), and optionally ``entropy`` (nats per token) and
    ``tokens``. All problems should have the same number k of samples.
    Returns ``{"n_problems", "k", "n_samples", "avg@k": {mean, se}, "pass@1": ..., "pass@k": ..., "maj@k": ...,
    "headroom@k": ..., "no_answer_rate", "timeouts", "errors"}`` (``greedy@1`` as well when ``greedy``;
    ``entropy`` when every sample has one).
    """
    ks = {len(s) for s in samples_per_problem}
    k = max(ks) if ks else 0
    per = [problem_metrics([x.get("pred") for x in s], [bool(x["correct"]) for x in s]) for s in samples_per_problem]
    all_samples = [x for s in samples_per_problem for x in s]
    out: dict = {
        "n_problems": len(samples_per_problem),
        "k": k,
        "n_samples": len(all_samples),
        f"avg@{k}": mean_se([p["avg"] for p in per]),
    }
    if len(ks) > 1:
        out["k_min"] = min(ks)
    kmin = min(ks) if ks else 0
    for kk in pass_ks(kmin):
        out[f"pass@{kk}"] = mean_se([p[f"pass@{kk}"] for p in per])
    out[f"maj@{k}"] = mean_se([p["maj"] for p in per])
    if kmin:
        out[f"headroom@{kmin}"] = mean_se([p[f"pass@{kmin}"] - p["avg"] for p in per])
    entropy = problem_entropies(samples_per_problem)
    if entropy is not None:
        out["entropy"] = mean_se(entropy)
    if greedy:
        out["greedy@1"] = dict(out[f"avg@{k}"])
    n = max(1, len(all_samples))
    out["no_answer_rate"] = sum(bool(x.get("no_answer")) for x in all_samples) / n
    out["wrong_answer_rate"] = sum(
        (not x["correct"]) and not x.get("no_answer") for x in all_samples
    ) / n
    out["timeouts"] = sum(bool(x.get("timed_out")) for x in all_samples)
    out["errors"] = sum(bool(x.get("error")) and not x.get("timed_out") for x in all_samples)
    return out


def average_metrics(per_benchmark: dict[str, dict]) -> dict:
    """Unweighted mean over benchmarks of every ``{mean, se}`` metric present in all of them.

    The standard error of the average is sqrt(sum se_b^2) / B (benchmarks are independent samples).
    """
    if not per_benchmark:
        return {}
    names = None
    for m in per_benchmark.values():
        keys = {key for key, v in m.items() if isinstance(v, dict) and "mean" in v}
        names = keys if names is None else names & keys
    out: dict = {"n_benchmarks": len(per_benchmark), "benchmarks": list(per_benchmark)}
    b = len(per_benchmark)
    for name in sorted(names or []):
        means = [m[name]["mean"] for m in per_benchmark.values()]
        ses = [m[name]["se"] for m in per_benchmark.values()]
        out[name] = {"mean": sum(means) / b, "se": math.sqrt(sum(s * s for s in ses)) / b}
    out["no_answer_rate"] = sum(m.get("no_answer_rate", 0.0) for m in per_benchmark.values()) / b
    return out


def resolve_metric(name: str, k: int) -> str:
    """``"avg@k"`` -> ``"avg@16"`` for a run with k=16 (also ``pass@k``, ``maj@k``, ``headroom@k``); other names
    unchanged."""
    if name.endswith("@k"):
        return f"{name[:-2]}@{k}"
    return name


def check_metric_k(name: str, k: int, option: str) -> None:
    """Refuse (``ValueError`` naming ``option``) a ``pass@K`` (or ``maj@K``, ``avg@K``) with K larger than the k
    samples per problem a run draws: it has no estimate."""
    kind, _, number = name.partition("@")
    if kind in ("pass", "avg", "maj") and number.isdigit() and int(number) > k:
        raise ValueError(f"{option}: {name} needs at least {number} samples per problem, but k is {k}")
