#!/usr/bin/env python
"""Scoring throughput: MATH-500 x 16 responses (gold answers, reformatted golds, wrong/perturbed answers, no answer),
scored in one process (math-verify in the caller, its own signal timeouts) vs the worker-process pool
(``cadft_verl.reward.score_batch`` with 1 and N workers, hard per-item deadline from any thread).

    python bench/bench_scoring.py            # 500 problems x 16 samples = 8,000 responses, 3 rounds
    python bench/bench_scoring.py --quick    # 100 problems x 4 samples, 2 rounds

Every measurement runs in a fresh interpreter (so no mode profits from parser caches another one warmed up).
"cold" = from nothing (imports / worker start-up included) to all scores; "warm" = after math-verify is imported
and its LaTeX parser built (in-process) or the workers are started (pool). Writes ``bench/results/scoring.json``
(``--out``) and prints a markdown table (best round per mode; all rounds are in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def perturb_number(ans: str, rnd: random.Random) -> str:
    digits = [i for i, ch in enumerate(ans) if ch.isdigit()]
    if not digits:
        return ans + "+1"
    i = rnd.choice(digits)
    return ans[:i] + str((int(ans[i]) + rnd.randint(1, 9)) % 10) + ans[i + 1 :]


def reformat(ans: str) -> str:
    """Same value, different text: what math-verify (not the string shortcut) has to recognise."""
    out = ans.replace("\\frac", "\\dfrac").replace("\\left", "").replace("\\right", "")
    if out == ans:
        out = f"{ans}.0" if ans.isdigit() else f"{{{ans}}}"
    return out


def make_items(problems, k: int, seed: int):
    """k responses per problem: 50% gold, ~19% reformatted gold, ~19% wrong (perturbed or another problem's gold),
    ~12% without a final answer. Responses are the MATH solution text with the final box replaced."""
    rnd = random.Random(seed)
    items, truth = [], []
    golds = [p.gold for p in problems]
    for i, p in enumerate(problems):
        sol = p.solution or p.question
        stem = re.sub(r"\\boxed\{", "\\\\textbf{", sol)  # the reasoning, without its box
        for j in range(k):
            r = (j * 7 + i) % 16
            if r < 8:
                resp, ok = f"{stem}\n\nFinal answer: $\\boxed{{{p.gold}}}$", True
            elif r < 11:
                resp, ok = f"{stem}\n\nFinal answer: $\\boxed{{{reformat(p.gold)}}}$", True
            elif r < 13:
                resp, ok = f"{stem}\n\nFinal answer: $\\boxed{{{perturb_number(p.gold, rnd)}}}$", None
            elif r < 14:
                resp, ok = f"{stem}\n\nFinal answer: $\\boxed{{{golds[(i + 1 + j) % len(golds)]}}}$", None
            else:
                resp, ok = f"{stem}\n\nSo that is the answer.", False
            items.append((resp, p.raw_gold))
            truth.append(ok)
    return items, truth


def _items(n_prob: int, k: int, seed: int):
    from cadft_verl.eval.benchmarks import load_benchmark

    return make_items(load_benchmark("math500", limit=n_prob).problems, k, seed)


def child(args) -> int:
    """One measurement in this fresh interpreter; prints one JSON line."""
    items, _ = _items(args.problems, args.k, args.seed)
    w = args.child
    t0 = time.perf_counter()
    from cadft_verl.reward import ScoringPool, score_batch

    if w == 0:
        from cadft_verl.reward.core import answers_match

        answers_match("\\frac{1}{2}", "0.5")  # import math-verify, build the LaTeX parser
        t1 = time.perf_counter()
        res = score_batch(items, timeout=args.timeout, num_workers=0)
        t2 = time.perf_counter()
    else:
        with ScoringPool(num_workers=w, timeout=args.timeout) as pool:
            pool.verify_many([("\\frac{1}{2}", "0.5")] * w)  # start the workers (they warm up before "ready")
            t1 = time.perf_counter()
            res = score_batch(items, timeout=args.timeout, pool=pool)
            t2 = time.perf_counter()
    print(json.dumps({
        "cold_s": t2 - t0,
        "warm_s": t2 - t1,
        "scores": "".join("1" if r["score"] else "0" for r in res),
        "no_answer": sum(r["no_answer"] for r in res),
        "timeouts": sum(r["timed_out"] for r in res),
        "errors": sum(bool(r["error"]) and not r["timed_out"] for r in res),
    }))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 problems x 4 samples, 2 rounds")
    ap.add_argument("--problems", type=int, default=None)
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--workers", type=int, nargs="*", default=None,
                    help="pool sizes to time (default: 1 and the CPU count); 0 = in-process baseline, always run")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=None,
                    help="rounds over all modes, interleaved (default 3, --quick 2); the 2-core machine is shared")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "scoring.json"))
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.problems = args.problems or (100 if args.quick else 500)
    args.k = args.k or (4 if args.quick else 16)
    repeats = args.repeats or (2 if args.quick else 3)
    if args.child is not None:
        return child(args)

    cpus = os.cpu_count() or 1
    sizes = args.workers if args.workers is not None else sorted({1, cpus})
    sizes = [0] + [s for s in sizes if s > 0]
    items, truth = _items(args.problems, args.k, args.seed)
    n = len(items)
    print(f"scoring {n} responses ({args.problems} MATH-500 problems x {args.k}); CPUs: {cpus}; "
          f"modes (0 = one process): {sizes}; {repeats} rounds", flush=True)

    rounds: dict[int, list[dict]] = {w: [] for w in sizes}
    for rnd in range(repeats):
        for w in sizes:
            cmd = [sys.executable, os.path.abspath(__file__), "--child", str(w), "--problems", str(args.problems),
                   "--k", str(args.k), "--seed", str(args.seed), "--timeout", str(args.timeout)]
            p = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(p.stdout.strip().splitlines()[-1])
            r["load_1min"] = round(os.getloadavg()[0], 2)
            rounds[w].append(r)
            print(f"round {rnd + 1}/{repeats}, workers={w}: cold {r['cold_s']:.2f} s, warm {r['warm_s']:.2f} s "
                  f"(load {r['load_1min']})", flush=True)

    ref = rounds[0][0]["scores"]
    runs = []
    for w in sizes:
        rs = rounds[w]
        cold = sorted(x["cold_s"] for x in rs)
        warm = sorted(x["warm_s"] for x in rs)
        scores = rs[0]["scores"]
        ok = sum(1 for s, t in zip(scores, truth, strict=True) if t is True and s == "1")
        runs.append({
            "mode": "one process (in-caller math-verify)" if w == 0 else f"process pool, {w} worker(s)",
            "workers": w,
            "responses": n,
            "cold_s_best": round(cold[0], 2),
            "cold_s_median": round(cold[len(cold) // 2], 2),
            "warm_s_best": round(warm[0], 2),
            "warm_s_median": round(warm[len(warm) // 2], 2),
            "responses_per_s_warm_best": round(n / warm[0], 1),
            "ms_per_response_warm_best": round(1000 * warm[0] / n, 3),
            "accuracy": round(scores.count("1") / n, 4),
            "gold_or_reformatted_accepted": f"{ok}/{sum(1 for t in truth if t is True)}",
            "no_answer": rs[0]["no_answer"],
            "timeouts": sum(x["timeouts"] for x in rs),
            "errors": sum(x["errors"] for x in rs),
            "same_scores_as_one_process": all(x["scores"] == ref for x in rs),
            "rounds": [{k: v for k, v in x.items() if k != "scores"} for x in rs],
        })
    base = runs[0]["warm_s_best"]
    for r in runs:
        r["speedup_warm_vs_one_process"] = round(base / r["warm_s_best"], 2)
    result = {
        "benchmark": "bench/bench_scoring.py" + (" --quick" if args.quick else ""),
        "data": f"MATH-500 first {args.problems} problems x {args.k} responses "
                "(50% gold, 19% reformatted gold, 19% wrong, 12% no answer); responses = MATH solution text",
        "timeout_s": args.timeout,
        "repeats": repeats,
        "note": "each measurement in a fresh interpreter; cold = imports / worker start-up included; warm = "
                "after start-up; exact matches after normalisation are decided in the caller without math-verify "
                "(about half the responses here)",
        "machine": {
            "cpus": cpus,
            "load_avg_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print()
    print("| mode | responses | cold (s) | warm (s) | responses/s (warm) | speed-up (warm) | accuracy | timeouts |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['mode']} | {r['responses']} | {r['cold_s_best']} | {r['warm_s_best']} | "
              f"{r['responses_per_s_warm_best']} | {r['speedup_warm_vs_one_process']}x | "
              f"{100 * r['accuracy']:.2f}% | {r['timeouts']} |")
    print(f"\nbest of {repeats} rounds; results: {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
