"""Full verl SFT step cost of the three losses on CPU: step time and peak-memory ratios vs `sft`, side by side.

Each configuration runs verl's real SFT trainer (FSDP2 engine, CPU platform, 1 rank) on the same local model and
the same GSM8K rows (one intra-op thread per run); the step time is the hook's `perf/step_time_s` (wall, the exact-statistics pre-pass included)
and `perf/step_cpu_s` (CPU seconds of the trainer process, which other load on the machine barely moves), the
memory is the growth of the process's peak RSS over the training steps (`perf/max_rss_growth_gb`). The two
configurations of each ratio alternate round by round, so that machine noise hits both alike; the median over
measured steps is reported.

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

# one intra-op thread per run: no OpenMP spin-waiting, so other load on the machine distorts the timings less
os.environ.setdefault("OMP_NUM_THREADS", "1")
from cadft_verl.demo.tiny_model import build_tiny_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (overrides, micro-batch size, dynamic batching); the global batch is 16 on one rank. The CADFT default is
# `stats: exact` (the current global batch): free when the rank holds one micro-batch, else a no-grad pre-pass.
CONFIGS = {
    "sft": (["cadft.loss=sft"], 4, False),
    "dft": (["cadft.loss=dft"], 4, False),
    "cadft_default_prepass": (["cadft.loss=cadft"], 4, False),
    "cadft_lagged": (["cadft.loss=cadft", "cadft.stats=lagged"], 4, False),
    "sft_1micro": (["cadft.loss=sft"], 16, False),
    "cadft_default_1micro": (["cadft.loss=cadft"], 16, False),
    "sft_dynamic": (["cadft.loss=sft", "data.max_token_len_per_gpu=8192"], 4, True),
    "cadft_default_dynamic": (["cadft.loss=cadft", "data.max_token_len_per_gpu=8192"], 4, True),
    "sft_fused": (["cadft.loss=sft", "model.use_fused_kernels=True"], 4, False),
    "cadft_default_fused": (["cadft.loss=cadft", "model.use_fused_kernels=True"], 4, False),
}
RATIOS = {
    "dft / sft": ("dft", "sft"),
    "cadft default, one micro-batch per rank (in-loss) / sft": ("cadft_default_1micro", "sft_1micro"),
    "cadft default, dynamic batching, one micro-batch (in-loss) / sft": ("cadft_default_dynamic", "sft_dynamic"),
    "cadft default, 4 micro-batches (pre-pass) / sft": ("cadft_default_prepass", "sft"),
    "cadft lagged / sft": ("cadft_lagged", "sft"),
    "cadft default (pre-pass) / sft, fused log-prob kernels": ("cadft_default_fused", "sft_fused"),
}
TARGETS = {"cadft default, one micro-batch per rank (in-loss) / sft": 1.05,
           "cadft default, dynamic batching, one micro-batch (in-loss) / sft": 1.05,
           "cadft default, 4 micro-batches (pre-pass) / sft": 1.25,
           "memory (every ratio)": 1.02}


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

    t0 = time.time()
    per_ratio = {}
    for ratio, pair in RATIOS.items():
        # the two configurations of a ratio alternate (a, b, a, b, ...): drifts in machine load hit both alike
        times = {name: [] for name in pair}
        cpu = {name: [] for name in pair}
        rss = {name: [] for name in pair}
        for rnd in range(args.rounds):
            for name in pair:
                overrides, micro, dynamic = CONFIGS[name]
                run_dir = os.path.join(work, f"{name}_{len(per_ratio)}_{rnd}")
                common = [f"model.path={model}", f"data.train_files={data}", "data.train_batch_size=16",
                          f"data.micro_batch_size_per_gpu={micro}", f"data.use_dynamic_bsz={dynamic}",
                          "data.max_length=256", "data.truncation=right", f"trainer.total_training_steps={args.steps}",
                          "trainer.save_freq=-1", "trainer.logger=[console,file]", "profile=cpu",
                          f"trainer.default_local_dir={run_dir}/ckpt", "checkpoint.save_contents=[model]"]
                metrics, proc = run_sft(common + overrides, run_dir)
                if proc.returncode != 0 or len(metrics) < args.steps:
                    sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
                times[name] += [m["perf/step_time_s"] for m in metrics[args.warmup :]]
                cpu[name] += [m["perf/step_cpu_s"] for m in metrics[args.warmup :]]
                rss[name].append(metrics[-1]["perf/max_rss_growth_gb"])
        med = {n: statistics.median(v) for n, v in times.items()}
        med_cpu = {n: statistics.median(v) for n, v in cpu.items()}
        mem = {n: statistics.median(v) for n, v in rss.items()}
        a_, b_ = pair
        per_ratio[ratio] = {
            "median_step_time_s": med, "median_step_cpu_s": med_cpu, "max_rss_growth_gb": mem,
            "time_ratio": med[a_] / med[b_], "cpu_time_ratio": med_cpu[a_] / med_cpu[b_],
            "memory_ratio": mem[a_] / mem[b_] if mem[b_] > 0 else None,
        }
        print(f"{ratio}: wall {per_ratio[ratio]['time_ratio']:.3f}, cpu {per_ratio[ratio]['cpu_time_ratio']:.3f}, "
              f"memory {per_ratio[ratio]['memory_ratio']}", flush=True)

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_end": os.getloadavg()},
        "setup": {"model": "Qwen2 4 layers, hidden 128, vocab ~1k", "global_batch": 16, "ranks": 1,
                  "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "wall_s": time.time() - t0,
                  "omp_threads": os.environ["OMP_NUM_THREADS"], "max_length": 256},
        "ratios": per_ratio,
        "targets": TARGETS,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("\n| ratio | step wall time | step CPU time | peak-RSS growth |\n|---|---|---|---|")
    for k, r in per_ratio.items():
        mem = f"{r['memory_ratio']:.3f}" if r["memory_ratio"] else "n/a"
        print(f"| {k} | {r['time_ratio']:.3f} | {r['cpu_time_ratio']:.3f} | {mem} |")
    print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    main()
