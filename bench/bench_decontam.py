#!/usr/bin/env python
"""Decontamination: what n-gram overlap catches, what it costs, and how fast it is.

1. Recall on planted benchmark problems: every MATH-500 and GSM8K test problem planted in six forms (verbatim,
   whitespace changed, prefix, suffix, prompt template, one word changed; ``tests/data/data_test_utils.py``).
2. False positives: the 7,473 clean rows of GSM8K train, matched against all seven benchmark test files.
3. Speed: 100,000 training rows (GSM8K train questions with their numbers redrawn, a third of them two questions
   long) against all benchmark files, in one process.

Grid: n in --ngrams, overlap threshold in --thresholds; n = 0 is the exact / normalised match alone (the old
behaviour). Writes ``bench/results/decontam.json`` and prints a table.

    python bench/bench_decontam.py            # full grid + 100k rows
    python bench/bench_decontam.py --quick    # defaults only, 20k rows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "data"))

from data_test_utils import PLANT_FORMS, plant  # noqa: E402

from cadft_verl.data.decontaminate import Decontaminator, benchmark_files  # noqa: E402
from cadft_verl.math.ngrams import DEFAULT_N, DEFAULT_THRESHOLD  # noqa: E402
from cadft_verl.utils.paths import find_benchmarks_dir  # noqa: E402


def _questions(path: str) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append(r.get("problem") or r.get("question"))
    return out


def _redraw_numbers(text: str, rnd: random.Random) -> str:
    return re.sub(r"\d+", lambda m: str(rnd.randint(2, 999)), text)


def speed_rows(train: list[str], n: int, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        q = _redraw_numbers(train[i % len(train)], rnd)
        if i % 3 == 2:
            q += " " + _redraw_numbers(train[rnd.randrange(len(train))], rnd)
        rows.append(q)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ngrams", type=int, nargs="*", default=None)
    ap.add_argument("--thresholds", type=float, nargs="*", default=None)
    ap.add_argument("--rows", type=int, default=None, help="training rows of the speed run (default 100000)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "decontam.json"))
    args = ap.parse_args(argv)
    ngrams = args.ngrams if args.ngrams is not None else ([DEFAULT_N] if args.quick else [0, 5, 6, 8, 10, 13])
    thresholds = args.thresholds or ([DEFAULT_THRESHOLD] if args.quick else [0.5, 0.7, 0.9])
    n_rows = args.rows or (20_000 if args.quick else 100_000)
    bdir = find_benchmarks_dir()
    if bdir is None:
        print("no benchmark folder (CADFT_BENCHMARKS_DIR, ../shared/benchmarks)", file=sys.stderr)
        return 2
    bdir = str(bdir)
    planted = {
        name: [(q, form, plant(q, form, seed=i)) for i, q in enumerate(_questions(os.path.join(bdir, rel)))
               for form in PLANT_FORMS]
        for name, rel in (("math500", "math/test.jsonl"), ("gsm8k_test", "gsm8k/test.jsonl"))
    }
    clean = _questions(os.path.join(bdir, "gsm8k", "train.jsonl"))
    print(f"{len(benchmark_files(bdir))} benchmark files; planted: "
          + ", ".join(f"{k} {len(v)}" for k, v in planted.items()) + f"; clean GSM8K train {len(clean)}", flush=True)

    grid = []
    for n in ngrams:
        for th in (thresholds if n else [1.0]):
            t = time.perf_counter()
            d = Decontaminator.from_dir(bdir, n=n, threshold=min(th, 1.0))
            build_s = time.perf_counter() - t
            rec = {"ngram": n, "threshold": th if n else None, "index_build_s": round(build_s, 2)}
            for name, rows in planted.items():
                by_form = {f: [0, 0] for f in PLANT_FORMS}
                for _, form, text in rows:
                    by_form[form][1] += 1
                    by_form[form][0] += d.find(text) is not None
                rec[f"recall_{name}"] = {f: round(a / b, 4) for f, (a, b) in by_form.items()}
                rec[f"recall_{name}_all"] = round(sum(a for a, _ in by_form.values()) / len(rows), 4)
            t = time.perf_counter()
            fps = [(i, d.find(q)) for i, q in enumerate(clean)]
            rec["clean_s"] = round(time.perf_counter() - t, 2)
            fps = [(i, h) for i, h in fps if h is not None]
            rec["false_positives_gsm8k_train"] = len(fps)
            rec["false_positive_examples"] = [
                {"train_row": i, "file": os.path.relpath(h.file, bdir), "id": h.id, "match": h.match,
                 "coverage": h.coverage, "span": h.span[:120]} for i, h in fps[:8]
            ]
            grid.append(rec)
            print(f"n={n:>2} th={th if n else '-':>4}: recall MATH-500 {rec['recall_math500_all']:.3f} "
                  f"(one word {rec['recall_math500']['one_word_changed']:.3f}), GSM8K test "
                  f"{rec['recall_gsm8k_test_all']:.3f} (one word {rec['recall_gsm8k_test']['one_word_changed']:.3f}),"
                  f" false positives on GSM8K train {len(fps)}", flush=True)

    rows = speed_rows(clean, n_rows)
    load_before = round(os.getloadavg()[0], 2)
    t = time.perf_counter()
    d = Decontaminator.from_dir(bdir)
    build_s = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    hits = sum(d.find(q) is not None for q in rows)
    match_s, match_cpu_s = time.perf_counter() - t, time.process_time() - c
    speed = {
        "rows": n_rows, "ngram": DEFAULT_N, "threshold": DEFAULT_THRESHOLD, "benchmark_problems": len(d),
        "index_build_s": round(build_s, 2), "match_s": round(match_s, 2), "match_cpu_s": round(match_cpu_s, 2),
        "load_1min_before": load_before, "total_s": round(build_s + match_s, 2),
        "rows_per_s": round(n_rows / match_s), "hits": hits,
        "mean_tokens_per_row": round(sum(len(q.split()) for q in rows) / len(rows), 1),
    }
    print(f"speed: {n_rows} rows in {match_s:.1f} s, {match_cpu_s:.1f} s CPU (+ {build_s:.1f} s index) = "
          f"{speed['rows_per_s']} rows/s; "
          f"{hits} hits", flush=True)
    result = {
        "benchmark": "bench/bench_decontam.py" + (" --quick" if args.quick else ""),
        "forms": list(PLANT_FORMS),
        "grid": grid,
        "speed": speed,
        "machine": {"cpus": os.cpu_count(), "load_avg_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
                    "python": sys.version.split()[0], "platform": platform.platform()},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
