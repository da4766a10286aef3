"""Full verl SFT step cost of the three losses on CPU: step time and peak-memory ratios vs `sft`, side by side.

Each configuration runs verl's real SFT trainer (FSDP2 engine, CPU platform, 1 rank) on the same local model and
the same GSM8K rows; the step time is the hook's `perf/step_time_s` (wall, the exact-statistics pre-pass included)
and `perf/step_cpu_s` (CPU seconds of the trainer process, which other load on the machine barely moves), the
memory is the growth of the process's peak RSS over the training steps (`perf/max_rss_growth_gb`). Rounds are
interleaved so that machine noise hits every configuration alike; the median over measured steps is reported.

    python bench/bench_sft_step.py [--steps 10] [--rounds 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import pandas as pd

from cadft_verl.trainer.launch import run_sft
from cadft_verl.utils.tiny_model import build_tiny_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (overrides, micro-batch size); the global batch is 16 on one rank
CONFIGS = {
    "sft": (["cadft.loss=sft"], 4),
    "dft": (["cadft.loss=dft"], 4),
    "cadft_lagged": (["cadft.loss=cadft", "cadft.stats=lagged"], 4),
    "cadft_exact_prepass": (["cadft.loss=cadft", "cadft.stats=exact"], 4),
    "sft_1micro": (["cadft.loss=sft"], 16),
    "cadft_exact_1micro": (["cadft.loss=cadft", "cadft.stats=exact"], 16),
    "sft_fused": (["cadft.loss=sft", "model.use_fused_kernels=True"], 4),
    "cadft_lagged_fused": (["cadft.loss=cadft", "cadft.stats=lagged", "model.use_fused_kernels=True"], 4),
}
RATIOS = {
    "dft / sft": ("dft", "sft"),
    "cadft lagged / sft": ("cadft_lagged", "sft"),
    "cadft exact (pre-pass, 4 micro-batches) / sft": ("cadft_exact_prepass", "sft"),
    "cadft exact (1 micro-batch, in-loss) / sft (1 micro-batch)": ("cadft_exact_1micro", "sft_1micro"),
    "cadft lagged / sft, fused log-prob kernels": ("cadft_lagged_fused", "sft_fused"),
}
TARGETS = {"cadft lagged / sft": 1.05, "cadft exact (pre-pass, 4 micro-batches) / sft": 1.45}


def benchmark_rows(n):
    from cadft_verl.utils.paths import find_benchmarks_dir

    bdir = find_benchmarks_dir()
    if bdir is None:
        sys.exit("benchmarks folder not found (set CADFT_BENCHMARKS_DIR)")
    with open(os.path.join(bdir, "gsm8k", "train.jsonl")) as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="4 steps, 1 round (smoke run)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "sft_step.json"))
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 4, 1, 1

    work = tempfile.mkdtemp(prefix="bench_sft_")
    rows = benchmark_rows(16 * args.steps)
    model = build_tiny_model(os.path.join(work, "model"), texts=[r["question"] + r["answer"] for r in rows],
                             vocab_size=1024, hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512)
    data = os.path.join(work, "train.parquet")
    pd.DataFrame({"messages": [[{"role": "user", "content": r["question"]},
                                {"role": "assistant", "content": r["answer"]}] for r in rows]}).to_parquet(data)

    step_times = {k: [] for k in CONFIGS}
    step_cpu = {k: [] for k in CONFIGS}
    rss = {k: [] for k in CONFIGS}
    t0 = time.time()
    for rnd in range(args.rounds):
        for name, (overrides, micro) in CONFIGS.items():
            run_dir = os.path.join(work, f"{name}_{rnd}")
            common = [f"model.path={model}", f"data.train_files={data}", "data.train_batch_size=16",
                      f"data.micro_batch_size_per_gpu={micro}", "data.use_dynamic_bsz=False", "data.max_length=512",
                      "data.truncation=right", f"trainer.total_training_steps={args.steps}", "trainer.save_freq=-1",
                      "trainer.logger=[console,file]", f"trainer.default_local_dir={run_dir}/ckpt", "profile=cpu",
                      "checkpoint.save_contents=[model]"]
            metrics, proc = run_sft(common + overrides, run_dir)
            if proc.returncode != 0 or len(metrics) < args.steps:
                sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
            step_times[name] += [m["perf/step_time_s"] for m in metrics[args.warmup :]]
            step_cpu[name] += [m["perf/step_cpu_s"] for m in metrics[args.warmup :]]
            rss[name].append(metrics[-1]["perf/max_rss_growth_gb"])
            print(f"[round {rnd + 1}/{args.rounds}] {name}: median step "
                  f"{statistics.median(step_times[name]):.3f}s  rss growth {rss[name][-1]:.3f} GB", flush=True)

    med = {k: statistics.median(v) for k, v in step_times.items()}
    cpu = {k: statistics.median(v) for k, v in step_cpu.items()}
    mem = {k: statistics.median(v) for k, v in rss.items()}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "setup": {"model": "Qwen2 4 layers, hidden 128, vocab ~1k", "global_batch": 16, "ranks": 1,
                  "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "wall_s": time.time() - t0},
        "median_step_time_s": med,
        "median_step_cpu_s": cpu,
        "max_rss_growth_gb": mem,
        "time_ratios": {k: med[a] / med[b] for k, (a, b) in RATIOS.items()},
        "cpu_time_ratios": {k: cpu[a] / cpu[b] for k, (a, b) in RATIOS.items()},
        "memory_ratios": {k: (mem[a] / mem[b] if mem[b] > 0 else None) for k, (a, b) in RATIOS.items()},
        "targets": TARGETS,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("\n| ratio | step wall time | step CPU time | peak-RSS growth |\n|---|---|---|---|")
    for k in RATIOS:
        mr = result["memory_ratios"][k]
        mem = f"{mr:.3f}" if mr else "n/a"
        print(f"| {k} | {result['time_ratios'][k]:.3f} | {result['cpu_time_ratios'][k]:.3f} | {mem} |")
    print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    main()
