"""Every benchmark file in the shared folder: the reference answer (boxed) and the reference solution, scored
against the gold the loader extracts, must score 100%.

Rows that cannot be checked, with the reason (the data, not the grader):
- OlympiadBench: none of the 675 ``solution`` texts ends in a ``\\boxed{}`` or ``####`` answer (they are prose
  proofs ending in e.g. "... so the answer is 2"), so solution-as-response is not applicable; the gold itself
  (``final_answer``) is checked for all 675 rows.
- AIME 2024 id 60: its ``solution`` contains no ``\\boxed{}`` answer (the other 29 do).
- AIME 2025 and AMC 2023 have no solution field.
"""

import os
import re

import pytest

from cadft_verl.eval.benchmarks import benchmarks_dir, load_benchmark
from cadft_verl.math.extract import extract_final_answer
from cadft_verl.reward import ScoringPool, score_batch
from cadft_verl.tasks import PRESETS, get_benchmark

BDIR = benchmarks_dir()
pytestmark = pytest.mark.skipif(not os.path.isdir(BDIR), reason=f"no benchmarks folder at {BDIR}")

# solution texts that hold no final answer (see module docstring): benchmark -> problem ids
NO_ANSWER_IN_SOLUTION = {"aime24": {"60"}}
ROWS = {"math500": 500, "minerva_math": 272, "olympiadbench": 675, "aime24": 30, "amc23": 40, "aime25": 30,
        "gsm8k": 1319, "arith": 150}  # arith: generated, the embedded task's held-out problems


@pytest.fixture(scope="module")
def benches():
    return {n: load_benchmark(n) for n in PRESETS["all"]}


@pytest.fixture(scope="module")
def pool():
    with ScoringPool(num_workers=2, timeout=30) as p:
        yield p


def _fails(bench, responses, results):
    return [
        f"{bench.name} id={p.id} gold={p.gold!r} pred={r['pred']!r} err={r['error']}"
        for p, resp, r in zip(bench.problems, responses, results, strict=True)
        if r["score"] != 1.0
    ]


def test_row_counts(benches):
    assert {n: len(b) for n, b in benches.items()} == ROWS
    assert all(not b.skipped for b in benches.values())


@pytest.mark.parametrize("name", PRESETS["all"])
def test_boxed_gold_scores_100(benches, pool, name):
    b = benches[name]
    responses = [f"Reasoning ... so the final answer is $\\boxed{{{p.gold}}}$." for p in b.problems]
    results = score_batch(list(zip(responses, [p.raw_gold for p in b.problems], strict=True)), pool=pool)
    fails = _fails(b, responses, results)
    assert not fails, f"{len(fails)} rows fail:\n" + "\n".join(fails[:20])


@pytest.mark.parametrize("name", [n for n in PRESETS["all"] if get_benchmark(n).solution_field])
def test_solution_text_scores_100(benches, pool, name):
    b = benches[name]
    skip = NO_ANSWER_IN_SOLUTION.get(name, set())
    probs = [p for p in b.problems if p.id not in skip]
    assert len(probs) == len(b.problems) - len(skip)
    for p in b.problems:
        if p.id in skip:
            assert extract_final_answer(p.solution) is None  # still true of the data, else re-enable the row
    results = score_batch([(p.solution, p.raw_gold) for p in probs], pool=pool)
    fails = [f"id={p.id} gold={p.gold!r} pred={r['pred']!r}" for p, r in zip(probs, results, strict=True)
             if r["score"] != 1.0]
    assert not fails, f"{name}: {len(fails)} solutions fail:\n" + "\n".join(fails[:20])


def test_olympiadbench_solutions_hold_no_final_answer(benches):
    # documents why OlympiadBench is not in test_solution_text_scores_100
    import json

    with open(benches["olympiadbench"].source, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert all(extract_final_answer("\n".join(r["solution"])) is None for r in rows)


def test_numeric_forms(benches, pool):
    """Golds written the way models often write them: AMC floats, GSM8K thousands separators, AIME leading zeros."""
    items, want = [], []
    for p in benches["amc23"].problems:
        items.append((f"\\boxed{{{float(p.raw_gold)}}}", p.raw_gold))  # "27.0"
    for p in benches["gsm8k"].problems:
        if len(p.gold) > 3 and p.gold.isdigit():
            items.append((f"\\boxed{{{int(p.gold):,}}}", p.raw_gold))  # "1,000"
    for p in benches["aime24"].problems:
        items.append((f"\\boxed{{{int(p.gold)}}}", p.raw_gold))  # "25" for "025"
    want = [1.0] * len(items)
    got = [r["score"] for r in score_batch(items, pool=pool)]
    bad = [items[i] for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not bad, bad[:10]


def test_wrong_answers_score_0(benches, pool):
    """Negative control: each problem answered with the next problem's gold (when the two differ as numbers /
    strings) is scored wrong. Catches a grader that accepts everything."""
    items = []
    for b in benches.values():
        ps = b.problems[:60]  # a slice: wrong answers go through sympy simplification (slow-ish)
        for p, q in zip(ps, ps[1:] + ps[:1], strict=True):
            a, g = re.sub(r"\s", "", q.gold), re.sub(r"\s", "", p.gold)
            if a != g:
                items.append((f"\\boxed{{{q.gold}}}", p.raw_gold, b.name, p.id))
    results = score_batch([(r, g) for r, g, _, _ in items], pool=pool)
    accepted = [(n, i, r) for (r, _, n, i), res in zip(items, results, strict=True) if res["score"] == 1.0]
    # a few neighbours are genuinely equal in value (MATH-500 "x=5" after "5" in the full set)
    assert len(accepted) <= 2, accepted
