#!/usr/bin/env python
"""The reward's worker pool side by side with pebble's ``ProcessPool`` (per-task timeout, hung worker killed and
replaced), on the comparisons the reward sends to workers (math-verify needed: not decided by string equality).

For each pool, 2 workers, each started and warmed up (math-verify imported, LaTeX parser built) before timing:

1. throughput: the MATH-500 x k pairs of ``bench_scoring.py`` that need math-verify, as one batch;
2. per-call latency: the same pairs one call at a time from 4 threads (verl's reward threads call one item at a
   time): median and slowest call;
3. a hanging input: a batch of 40 pairs with 2 sympy power towers (never finish) and a 2 s deadline: wall time,
   whether the other 38 still score right, and the first call after it.

Ours: ``cadft_verl.reward.ScoringPool`` (fresh ``python -m`` interpreters, pipes, SIGKILL on deadline).
pebble: ``ProcessPool(max_workers=2, context=spawn, initializer=<memory cap + warm-up>)``, ``schedule(...,
timeout=)``; ``spawn`` because a fork of a threaded caller (verl's reward threads, Ray workers) can deadlock.
Writes ``bench/results/pool.json``.

    pip install --no-deps pebble==5.2.3   # only for this bench: pebble is not a dependency of the project
    python bench/bench_pool.py [--problems 100 --k 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

SLOW = ("10^{10^{10^{10}}}", "5")  # sympy evaluates the power tower: never finishes
MEM_MB = 4096


def _pebble_init(mem_mb: int) -> None:
    from cadft_verl.reward._worker import _limit_memory
    from cadft_verl.reward.core import answers_match

    _limit_memory(mem_mb)
    answers_match("\\frac{1}{2}", "0.5")


def _pebble_match(pred: str, gold: str) -> bool:
    from cadft_verl.reward.core import answers_match

    return answers_match(pred, gold)


class Ours:
    name = "ours (ScoringPool)"

    def __init__(self, workers: int):
        from cadft_verl.reward import ScoringPool

        self.pool = ScoringPool(num_workers=workers, timeout=10, mem_mb=MEM_MB)
        self.pool.verify_many([("\\frac{1}{2}", "0.5")] * workers)

    def batch(self, pairs, timeout):
        return [s.correct if not s.timed_out else None for s in self.pool.verify_many(pairs, timeout=timeout)]

    def one(self, pred, gold, timeout=10):
        s = self.pool.verify(pred, gold, timeout=timeout)
        return s.correct if not s.timed_out else None

    def close(self):
        self.pool.close()


class Pebble:
    name = "pebble ProcessPool (spawn)"

    def __init__(self, workers: int):
        from pebble import ProcessPool

        self.pool = ProcessPool(max_workers=workers, context=mp.get_context("spawn"), initializer=_pebble_init,
                                initargs=(MEM_MB,))
        for f in [self.pool.schedule(_pebble_match, args=("\\frac{1}{2}", "0.5")) for _ in range(workers * 2)]:
            f.result()

    def _get(self, fut):
        from concurrent.futures import TimeoutError as FutTimeout

        try:
            return bool(fut.result())
        except FutTimeout:
            return None
        except Exception:  # noqa: BLE001 - worker died: scored wrong
            return False

    def batch(self, pairs, timeout):
        futs = [self.pool.schedule(_pebble_match, args=p, timeout=timeout) for p in pairs]
        return [self._get(f) for f in futs]

    def one(self, pred, gold, timeout=10):
        return self._get(self.pool.schedule(_pebble_match, args=(pred, gold), timeout=timeout))

    def close(self):
        self.pool.close()
        self.pool.join()


def _pairs(problems: int, k: int):
    from bench_scoring import make_items

    from cadft_verl.eval.benchmarks import load_benchmark
    from cadft_verl.reward.scorer import _prepare

    items, _ = make_items(load_benchmark("math500", limit=problems).problems, k, 0)
    pairs = []
    for resp, gold in items:
        pred, g, done = _prepare(resp, gold)
        if done is None:
            pairs.append((pred, g))
    return pairs


def measure(cls, workers: int, pairs):
    t = time.perf_counter()
    pool = cls(workers)
    start_s = time.perf_counter() - t
    try:
        t = time.perf_counter()
        got = pool.batch(pairs, 10)
        batch_s = time.perf_counter() - t
        lat = []
        lock = threading.Lock()

        def call(p):
            t0 = time.perf_counter()
            pool.one(*p)
            with lock:
                lat.append(time.perf_counter() - t0)

        t = time.perf_counter()
        with ThreadPoolExecutor(4) as ex:
            list(ex.map(call, pairs))
        calls_s = time.perf_counter() - t
        hang = pairs[:40]
        hang = hang[:5] + [SLOW] + hang[5:25] + [SLOW] + hang[25:38]
        t = time.perf_counter()
        hgot = pool.batch(hang, 2.0)
        hang_s = time.perf_counter() - t
        t = time.perf_counter()
        after = pool.one("\\frac{1}{2}", "0.5")
        after_s = time.perf_counter() - t
        others = [g for i, g in enumerate(hgot) if hang[i] is not SLOW]
    finally:
        pool.close()
    return {
        "pool": cls.name,
        "workers": workers,
        "start_s": round(start_s, 2),
        "pairs": len(pairs),
        "batch_s": round(batch_s, 2),
        "batch_pairs_per_s": round(len(pairs) / batch_s, 1),
        "threads_4_calls_s": round(calls_s, 2),
        "threads_4_pairs_per_s": round(len(pairs) / calls_s, 1),
        "call_latency_median_ms": round(1000 * statistics.median(lat), 2),
        "call_latency_max_ms": round(1000 * max(lat), 1),
        "hang_batch_s": round(hang_s, 2),
        "hang_timeouts": sum(g is None for g in hgot),
        "hang_others_same_as_without_hang": others == got[:38],
        "first_call_after_hang_ms": round(1000 * after_s, 1),
        "first_call_after_hang_ok": after is True,
        "scores": got,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "pool.json"))
    args = ap.parse_args(argv)
    pairs = _pairs(args.problems, args.k)
    print(f"{len(pairs)} pairs that need math-verify; {args.workers} workers; {args.rounds} rounds", flush=True)
    runs = []
    reference = None
    for rnd in range(args.rounds):
        for cls in (Ours, Pebble):
            r = measure(cls, args.workers, pairs)
            reference = reference or r["scores"]
            r["same_scores_as_first_run"] = r.pop("scores") == reference
            r["round"] = rnd + 1
            r["load_1min"] = round(os.getloadavg()[0], 2)
            runs.append(r)
            print(json.dumps(r), flush=True)
    summary = {}
    for name in (Ours.name, Pebble.name):
        rs = [r for r in runs if r["pool"] == name]
        summary[name] = {k: min(r[k] for r in rs) for k in (
            "start_s", "batch_s", "threads_4_calls_s", "call_latency_median_ms", "call_latency_max_ms", "hang_batch_s",
            "first_call_after_hang_ms")}
        summary[name]["hang_batch_plus_first_call_s"] = min(
            r["hang_batch_s"] + r["first_call_after_hang_ms"] / 1000 for r in rs)
    o, p = summary[Ours.name], summary[Pebble.name]
    ratios = {f"pebble/ours {k}": round(p[k] / o[k], 2) for k in o}
    result = {
        "benchmark": "bench/bench_pool.py",
        "note": "best of the rounds per pool; each pool started and warmed up before timing; the machine's 2 cores "
                "are shared, see load_1min per run",
        "summary_best": summary,
        "ratios": ratios,
        "runs": runs,
        "pebble": __import__("pebble").__version__,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
