"""The math reward: final answer = last ``\\boxed{}`` (else a GSM8K ``####`` answer), compared by math-verify.

- :func:`compute_score` — verl custom reward function (``reward.custom_reward_function``).
- :func:`score_response` — one response, full result dict.
- :func:`score_batch` — many responses over a process pool (evaluation, rewriting verification).

Every comparison has a hard deadline (see :mod:`cadft_verl.reward.pool`), so it is safe from any thread.
Extraction (linear time) runs in the caller; math-verify parsing and comparison run in worker processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cadft_verl.math.answers import normalize_answer, normalize_gold, squash
from cadft_verl.math.extract import extract_final_answer
from cadft_verl.reward.chain import ARITH_SOURCE, chain_matches, chain_of
from cadft_verl.reward.pool import ScoringPool, get_default_pool
from cadft_verl.reward.score import Score

#: an extracted answer or a reference longer than this in UTF-8 bytes (what travels to a worker; a character can
#: take 4) is not given to math-verify: it scores wrong unless literally equal to the reference
MAX_ANSWER_BYTES = 20_000


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _prepare(response: Any, ground_truth: Any) -> tuple[str | None, str | None, Score | None]:
    """(pred, gold, final score if no worker is needed)."""
    text = response if isinstance(response, str) else ("" if response is None else str(response))
    pred = extract_final_answer(text)
    gold = normalize_gold(ground_truth)
    if pred is None:
        return None, gold, Score(False, None)
    if gold is None:
        return pred, None, Score(False, pred, error="no reference answer")
    if len(pred) <= 1000 and len(gold) <= 1000:
        # identical after normalisation: no need to ask math-verify (saves a worker round trip)
        if squash(normalize_answer(pred)) == squash(normalize_answer(gold)) and squash(gold):
            return pred, gold, Score(True, pred)
    if _utf8_len(pred) > MAX_ANSWER_BYTES or _utf8_len(gold) > MAX_ANSWER_BYTES:
        same = squash(pred) == squash(gold)
        return pred, gold, Score(same, pred, error=None if same else "answer too long")
    return pred, gold, None


def score(response: str, ground_truth: Any, timeout: float | None = None, pool: ScoringPool | None = None) -> Score:
    """Score one model response against a reference answer (any published form: str/int/float/list/solution).
    Thread-safe; blocks at most ``timeout`` seconds in math-verify (default ``CADFT_REWARD_TIMEOUT`` or 10 s)."""
    pred, gold, done = _prepare(response, ground_truth)
    if done is not None:
        return done
    return (pool or get_default_pool()).verify(pred, gold, timeout=timeout)  # type: ignore[arg-type]


def score_response(
    response: str, ground_truth: Any, timeout: float | None = None, pool: ScoringPool | None = None
) -> dict:
    """Score one model response against a reference answer (any published form: str/int/float/list/solution).

    Returns ``{"score": 1.0|0.0, "acc": bool, "pred": str|None, "no_answer": bool, "timed_out": bool,
    "error": str|None}``. Thread-safe; blocks at most ``timeout`` seconds in math-verify (default
    ``CADFT_REWARD_TIMEOUT`` or 10 s).
    """
    return score(response, ground_truth, timeout, pool).as_dict()


def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: Any = None,
    extra_info: Mapping | None = None,
    timeout: float | None = None,
    check_chain: bool = False,
    **kwargs: Any,
) -> dict:
    """verl custom reward function (``reward.custom_reward_function.path=pkg://cadft_verl.reward``,
    ``name=compute_score``). One rule for all maths sets. With ``check_chain`` (``reward_kwargs.check_chain`` in the
    recipe's ``reward.custom_reward_function``; off by default), the embedded arithmetic task's rows (``data_source``
    ``cadft/arith`` with a ``chain`` in ``extra_info``) score 1.0 only when the answer is right and the worked
    equations are the problem's chain (:mod:`cadft_verl.reward.chain`), while ``acc`` stays the outcome (what
    evaluation and verl's ``val-core`` report).

    Returns a dict (verl 0.9.1's reward managers take ``result["score"]`` as the reward and log the other keys):
    ``score`` (1.0/0.0), ``acc`` (same, float), ``has_answer`` (1.0 when a boxed/#### answer was found),
    ``timed_out`` (1.0 when the comparison hit the deadline), ``pred`` (extracted answer, truncated, "" if none).
    Extra keyword arguments from verl (``reward_router_address`` ...) or ``reward_kwargs`` are ignored, except
    ``timeout`` (seconds) and ``check_chain``.
    """
    result = score(solution_str, ground_truth, timeout=timeout).to_verl()
    chain = chain_of(extra_info) if check_chain and data_source == ARITH_SOURCE else None
    if chain is not None and not chain_matches(solution_str or "", chain):
        result["score"] = 0.0
    return result


def _item_pair(item: Any) -> tuple[Any, Any]:
    if isinstance(item, Mapping):
        resp = item.get("response", item.get("solution_str"))
        gold = item.get("gold", item.get("ground_truth", item.get("answer")))
        return resp, gold
    resp, gold = item
    return resp, gold


def score_batch(
    items: Iterable[Any],
    timeout: float | None = None,
    num_workers: int | None = None,
    pool: ScoringPool | None = None,
    progress: bool | str = False,
    on_result: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Score many ``(response, ground_truth)`` pairs (or dicts with ``response``/``gold``) in a process pool.

    ``num_workers``: worker processes (default min(8, CPUs); 0 = in this process, no hard deadline off the main
    thread). ``pool``: reuse an existing :class:`ScoringPool` (then ``num_workers`` is ignored).
    ``progress``: show a tqdm bar (a string is used as its description). Results are in input order, each as in
    :func:`score_response`. A timed-out item scores 0 with ``timed_out=True``; the run never hangs on it.
    """
    pairs = [_item_pair(it) for it in items]
    results: list[dict | None] = [None] * len(pairs)
    todo_idx: list[int] = []
    todo_pairs: list[tuple[str, str]] = []
    for i, (resp, gold) in enumerate(pairs):
        pred, g, done = _prepare(resp, gold)
        if done is not None:
            results[i] = done.as_dict()
        else:
            todo_idx.append(i)
            todo_pairs.append((pred, g))  # type: ignore[arg-type]

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc=progress if isinstance(progress, str) else "scoring", unit="resp")
        bar.update(len(pairs) - len(todo_idx))

    def _cb(j: int, out: Score) -> None:
        i = todo_idx[j]
        results[i] = out.as_dict()
        if bar is not None:
            bar.update(1)
        if on_result is not None:
            on_result(i, results[i])  # type: ignore[arg-type]

    own_pool = None
    if pool is None:
        pool = own_pool = ScoringPool(num_workers=num_workers, timeout=timeout)
    try:
        if todo_pairs:
            pool.verify_many(todo_pairs, timeout=timeout, on_result=_cb)
    finally:
        if own_pool is not None:
            own_pool.close()
        if bar is not None:
            bar.close()
    return results  # type: ignore[return-value]
