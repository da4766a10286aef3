"""Full verl SFT step cost of the three losses on CPU: step time and peak-memory ratios vs `sft`, side by side.

Each configuration runs verl's real SFT trainer (FSDP2 engine, CPU platform, 1 rank) on the same local model and
the same GSM8K rows (one intra-op thread per run); the step time is the hook's `perf/step_time_s` (wall, the exact-statistics pre-pass included)
and `perf/step_cpu_s` (CPU seconds of the trainer process, which other load on the machine barely moves), the
memory is the growth of the process's peak RSS over the training steps (`perf/max_rss_growth_gb`). The two
configurations of each ratio alternate round by round, so that machine noise hits both alike; the median over
measured steps is reported.

Two models (issue 23): the 1k vocabulary and a 32k one (same layers, wider logits). Memory is reported absolute
(the trainer process's peak RSS) and as growth over the training steps; each figure comes with its spread (min and
max over the measured steps or runs), so a ratio can be read against its noise.

    python bench/bench_sft_step.py [--steps 8] [--rounds 2] [--vocabs 1k,32k] [--groups 1micro,4micro,...] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import pandas as pd

from common import benchmark_rows, spread  # noqa: E402  (bench/common.py, beside this script)
from cadft_verl.trainer.launch import run_sft

# one intra-op thread per run: no OpenMP spin-waiting, so other load on the machine distorts the timings less
os.environ.setdefault("OMP_NUM_THREADS", "1")
from cadft_verl.demo.tiny_model import build_tiny_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Groups of configurations measured side by side (round by round, A B C A B C ...) on one model; every ratio is
# `cadft ... / sft` within its group. The global batch is 16 on one rank: micro-batch 16, 4 and 2 give 1, 4 and 8
# micro-batches per rank. The CADFT default is `stats: exact`: free with one micro-batch per rank, else a no-grad
# pre-pass (the scoring forward: the response tokens' logits only) at `cadft.prepass_micro_batch_scale` times the
# training micro-batch (issue 23: 1 by default), whose decoder-layer outputs the training step reuses under gradient
# checkpointing (`cadft.prepass_reuse_forward`, on by default; `cadft_no_reuse`: the scoring forward alone).
# group -> (micro-batch, extra overrides of every configuration of the group, {name: overrides})
GROUPS = {
    "1micro": (16, [], {"sft": ["cadft.loss=sft"], "cadft_default": ["cadft.loss=cadft"]}),
    "4micro": (4, [], {"sft": ["cadft.loss=sft"],
                       "cadft_default": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=1"],
                       "cadft_no_reuse": ["cadft.loss=cadft", "cadft.prepass_reuse_forward=false"],
                       "cadft_scale4": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=4"],
                       "cadft_auto": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=auto"]}),
    "8micro": (2, [], {"sft": ["cadft.loss=sft"],
                       "cadft_default": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=1"],
                       "cadft_no_reuse": ["cadft.loss=cadft", "cadft.prepass_reuse_forward=false"]}),
    "4micro_fused": (4, ["model.use_fused_kernels=True"],
                     {"sft": ["cadft.loss=sft"],
                      "cadft_default": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=1"]}),
    "8micro_fused": (2, ["model.use_fused_kernels=True"],
                     {"sft": ["cadft.loss=sft"],
                      "cadft_default": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=1"]}),
    "1micro_dynamic": (4, ["data.use_dynamic_bsz=True", "data.max_token_len_per_gpu=8192"],
                       {"sft": ["cadft.loss=sft"], "cadft_default": ["cadft.loss=cadft"]}),
    "4micro_dynamic": (4, ["data.use_dynamic_bsz=True", "data.max_token_len_per_gpu=1024"],
                       {"sft": ["cadft.loss=sft"],
                        "cadft_default": ["cadft.loss=cadft", "cadft.prepass_micro_batch_scale=1"]}),
    "4micro_lagged": (4, [], {"sft": ["cadft.loss=sft"], "dft": ["cadft.loss=dft"],
                              "cadft_lagged": ["cadft.loss=cadft", "cadft.stats=lagged"]}),
}
VOCABS = {"1k": 1024, "32k": 32768}
TARGETS = {"1micro time": 1.05, "4micro / 8micro time (pre-pass)": 1.25, "peak memory (every ratio)": 1.02}


def build_model(work, rows, vocab):
    """The bench's Qwen2 (4 layers, hidden 128) with its output/embedding matrix at ``vocab`` entries (the tiny
    tokenizer's ~1k ids are the only ones the data uses; the rest only widen the logits, as a real vocabulary does)."""
    import torch
    from transformers import AutoModelForCausalLM

    path = os.path.join(work, f"model_{vocab}")
    build_tiny_model(path, texts=[r["question"] + r["answer"] for r in rows], vocab_size=1024, hidden_size=128,
                     num_layers=4, num_heads=4, intermediate_size=512)
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
    if vocab > model.config.vocab_size:
        model.resize_token_embeddings(vocab, mean_resizing=False)
        model.save_pretrained(path)
    return path, model.config.vocab_size


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--vocabs", default=",".join(VOCABS), help=f"comma-separated, of {list(VOCABS)}")
    ap.add_argument("--groups", default="1micro,4micro,8micro,4micro_fused,8micro_fused", help=f"comma-separated, of {list(GROUPS)}")
    ap.add_argument("--only", default="", help="comma-separated configuration names to keep in each group (sft always)")
    ap.add_argument("--quick", action="store_true", help="4 steps, 1 round (smoke run)")
    ap.add_argument("--merge", action="store_true", help="keep the groups of an existing --out file that this run "
                    "does not measure (each run's machine load is kept with its groups)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "sft_step.json"))
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 4, 1, 1
    keep = set(filter(None, args.only.split(",")))

    work = tempfile.mkdtemp(prefix="bench_sft_")
    rows = benchmark_rows(16 * args.steps)
    data = os.path.join(work, "train.parquet")
    pd.DataFrame({"messages": [[{"role": "user", "content": r["question"]},
                                {"role": "assistant", "content": r["answer"]}] for r in rows]}).to_parquet(data)

    t0, load_start = time.time(), os.getloadavg()
    results = {}
    for vname in args.vocabs.split(","):
        model, vocab = build_model(work, rows, VOCABS[vname])
        for gname in args.groups.split(","):
            micro, extra, configs = GROUPS[gname]
            configs = {n: o for n, o in configs.items() if n == "sft" or not keep or n in keep}
            times = {n: [] for n in configs}
            cpu = {n: [] for n in configs}
            prepass = {n: [] for n in configs}
            peak = {n: [] for n in configs}
            growth = {n: [] for n in configs}
            for rnd in range(args.rounds):
                for name, overrides in configs.items():
                    run_dir = os.path.join(work, f"{vname}_{gname}_{name}_{rnd}")
                    common = [f"model.path={model}", f"data.train_files={data}", "data.train_batch_size=16",
                              f"data.micro_batch_size_per_gpu={micro}",
                              "data.max_length=256", "data.truncation=right",
                              f"trainer.total_training_steps={args.steps}", "trainer.save_freq=-1",
                              "trainer.logger=[console,file]", "profile=cpu",
                              f"trainer.default_local_dir={run_dir}/ckpt", "checkpoint.save_contents=[model]"]
                    fixed = [] if any("use_dynamic_bsz" in o for o in extra) else ["data.use_dynamic_bsz=False"]
                    metrics, proc = run_sft(common + fixed + extra + overrides, run_dir)
                    if proc.returncode != 0 or len(metrics) < args.steps:
                        sys.exit(f"{vname}/{gname}/{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
                    times[name] += [m["perf/step_time_s"] for m in metrics[args.warmup :]]
                    cpu[name] += [m["perf/step_cpu_s"] for m in metrics[args.warmup :]]
                    prepass[name] += [m.get("perf/prepass_time_s", 0.0) for m in metrics[args.warmup :]]
                    peak[name].append(metrics[-1]["perf/max_rss_gb"])
                    growth[name].append(metrics[-1]["perf/max_rss_growth_gb"])
            group = {"micro_batch": micro, "micro_batches_per_rank": 16 // micro, "overrides": extra, "configs": {},
                     "ratios": {}}
            for n in configs:
                group["configs"][n] = {"step_time_s": spread(times[n]), "step_cpu_s": spread(cpu[n]),
                                       "prepass_time_s": spread(prepass[n]), "peak_rss_gb": spread(peak[n]),
                                       "peak_rss_growth_gb": spread(growth[n])}
            base = group["configs"]["sft"]
            for n in configs:
                if n == "sft":
                    continue
                c = group["configs"][n]
                r = {"time": c["step_time_s"]["median"] / base["step_time_s"]["median"],
                     "cpu_time": c["step_cpu_s"]["median"] / base["step_cpu_s"]["median"],
                     "peak_rss": c["peak_rss_gb"]["median"] / base["peak_rss_gb"]["median"],
                     "peak_rss_growth": (c["peak_rss_growth_gb"]["median"] / base["peak_rss_growth_gb"]["median"]
                                         if base["peak_rss_growth_gb"]["median"] > 0 else None)}
                group["ratios"][f"{n} / sft"] = r
                print(f"[{vname} {gname}] {n} / sft: time {r['time']:.3f} cpu {r['cpu_time']:.3f} "
                      f"peak {r['peak_rss']:.3f} growth {r['peak_rss_growth']}", flush=True)
            group["load_avg"] = os.getloadavg()
            group["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
            group["steps"], group["warmup"], group["rounds"] = args.steps, args.warmup, args.rounds
            results[f"{vname}/{gname}"] = group

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg()},
        "setup": {"model": "Qwen2 4 layers, hidden 128, intermediate 512, float32; vocab " +
                  ", ".join(f"{v}={VOCABS[v]}" for v in args.vocabs.split(",")),
                  "global_batch": 16, "ranks": 1, "steps": args.steps, "warmup": args.warmup,
                  "rounds": args.rounds, "wall_s": time.time() - t0, "omp_threads": os.environ["OMP_NUM_THREADS"],
                  "max_length": 256,
                  "memory": "peak_rss_gb: the trainer process's peak RSS at the last step (absolute); growth: over "
                            "the training steps (from before the first step)",
                  "spread": "median, min, max over the measured steps (time) or runs (memory)"},
        "groups": results,
        "runs": [{"groups": sorted(results), "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg(),
                  "wall_s": time.time() - t0}],
        "targets": TARGETS,
    }
    if args.merge and os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        result["groups"] = {**old.get("groups", {}), **results}
        result["runs"] = old.get("runs", []) + result["runs"]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("\n| vocab, micro-batches | ratio | time (median, min-max of config) | peak RSS | peak-RSS growth |")
    print("|---|---|---:|---:|---:|")
    for key, g in results.items():
        for rname, r in g["ratios"].items():
            c = g["configs"][rname.split(" / ")[0]]["step_time_s"]
            grow = f"{r['peak_rss_growth']:.3f}" if r["peak_rss_growth"] else "n/a"
            print(f"| {key} | {rname} | {r['time']:.3f} ({c['min']:.2f}-{c['max']:.2f} s) | {r['peak_rss']:.3f} | {grow} |")
    print(f"\nresults written to {args.out}")


if __name__ == "__main__":
    main()
