"""What several bench scripts share: the spread of a measured figure and GSM8K training rows to train on."""

from __future__ import annotations

import json
import os
import statistics
import sys


def spread(values):
    """median, min, max and count of a figure measured several times."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def benchmark_rows(n):
    """The first ``n`` rows of GSM8K's training split from the benchmarks folder (exits naming it when absent)."""
    from cadft_verl.utils.paths import find_benchmarks_dir

    bdir = find_benchmarks_dir()
    if bdir is None:
        sys.exit("benchmarks folder not found (set CADFT_BENCHMARKS_DIR)")
    with open(os.path.join(bdir, "gsm8k", "train.jsonl")) as f:
        return [json.loads(line) for _, line in zip(range(n), f)]
