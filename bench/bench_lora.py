"""LoRA against full fine-tuning on CPU: peak memory and step time of verl's FSDP engine, side by side.

Both configurations run the drop-in SFT stage (verl's SFT trainer, FSDP2 engine, CPU platform, 1 rank, the CADFT
loss) on the same model and GSM8K rows; LoRA is verl's ``model.lora_rank`` / ``lora_alpha`` (``all-linear``), which
is what ``cadft.model.lora_rank`` sets on stage 1's actor workers in the one launch. Memory: the trainer process's
peak RSS at the last step and its growth over the training steps (gradients and AdamW states appear at the first
step: LoRA keeps them only for the adapter). Time: ``perf/step_time_s`` (wall) and ``perf/step_cpu_s``. The two
configurations alternate run by run (A B A B), so that the load of a shared machine hits both alike; the ratios are
of medians. The model (``SHAPE``: 8 layers, hidden 512, a 1k vocabulary, ~34M parameters) is one whose weights,
not its logits, dominate the memory, as in a real LLM at a short micro-batch: with a 32k vocabulary at this width the
logits' buffers hide the optimizer states (measured: equal growth, 0.148 GB against 0.149 GB).

    python bench/bench_lora.py [--rank 32] [--steps 6] [--rounds 2] [--quick]
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

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one intra-op thread per run: less distortion from other load

from cadft_verl.demo.tiny_model import build_tiny_model  # noqa: E402
from common import benchmark_rows, spread  # noqa: E402  (bench/common.py, beside this script)
from cadft_verl.trainer.launch import run_sft  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = {"vocab_size": 1024, "hidden_size": 512, "num_layers": 8, "num_heads": 8, "intermediate_size": 2048}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="3 steps, 1 round (smoke run)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "lora.json"))
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup, args.rounds = 3, 1, 1

    work = tempfile.mkdtemp(prefix="bench_lora_")
    data_rows = benchmark_rows(16 * args.steps)
    data = os.path.join(work, "train.parquet")
    pd.DataFrame({"messages": [[{"role": "user", "content": r["question"]},
                                {"role": "assistant", "content": r["answer"]}] for r in data_rows]}).to_parquet(data)
    model = build_tiny_model(os.path.join(work, "model"), texts=[r["question"] + r["answer"] for r in data_rows],
                             **SHAPE)
    configs = {"full": [], f"lora_r{args.rank}": [f"model.lora_rank={args.rank}", f"model.lora_alpha={2 * args.rank}",
                                                   "model.target_modules=all-linear"]}
    measured = {n: {"time": [], "cpu": [], "peak": [], "growth": []} for n in configs}
    t0, load_start = time.time(), os.getloadavg()
    for rnd in range(args.rounds):
        for name, overrides in configs.items():  # A B A B
            run_dir = os.path.join(work, f"{name}_{rnd}")
            common = [f"model.path={model}", f"data.train_files={data}", "data.train_batch_size=16",
                      "data.micro_batch_size_per_gpu=4", "data.use_dynamic_bsz=False", "data.max_length=256",
                      "data.truncation=right", f"trainer.total_training_steps={args.steps}", "trainer.save_freq=-1",
                      "trainer.logger=[console,file]", "profile=cpu", f"trainer.default_local_dir={run_dir}/ckpt",
                      "checkpoint.save_contents=[model]", "cadft.loss=cadft"]
            metrics, proc = run_sft(common + overrides, run_dir)
            if proc.returncode != 0 or len(metrics) < args.steps:
                sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
            m = measured[name]
            m["time"] += [x["perf/step_time_s"] for x in metrics[args.warmup:]]
            m["cpu"] += [x["perf/step_cpu_s"] for x in metrics[args.warmup:]]
            m["peak"].append(metrics[-1]["perf/max_rss_gb"])
            m["growth"].append(metrics[-1]["perf/max_rss_growth_gb"])
            print(f"round {rnd} {name}: peak {m['peak'][-1]:.3f} GB, growth {m['growth'][-1]:.3f} GB, "
                  f"step {statistics.median(m['time'][-(args.steps - args.warmup):]):.2f} s", flush=True)
    out = {n: {"step_time_s": spread(m["time"]), "step_cpu_s": spread(m["cpu"]), "peak_rss_gb": spread(m["peak"]),
               "peak_rss_growth_gb": spread(m["growth"])} for n, m in measured.items()}
    lora, full = out[f"lora_r{args.rank}"], out["full"]
    ratios = {key: lora[key]["median"] / full[key]["median"] for key in lora}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg(),
                    "note": "measured on a machine shared with other jobs (load averages above): read the ratios of "
                            "the alternating runs, not the absolute times"},
        "setup": {"model": f"Qwen2 {SHAPE}, float32", "global_batch": 16, "micro_batch": 4, "ranks": 1,
                  "max_length": 256, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
                  "lora": configs[f"lora_r{args.rank}"], "loss": "cadft", "wall_s": time.time() - t0,
                  "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")},
        "configs": out, "ratios_lora_over_full": ratios,
        "saved_gb": {"peak_rss": full["peak_rss_gb"]["median"] - lora["peak_rss_gb"]["median"],
                     "peak_rss_growth": full["peak_rss_growth_gb"]["median"] - lora["peak_rss_growth_gb"]["median"]},
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({"ratios_lora_over_full": ratios, "saved_gb": result["saved_gb"]}, indent=1))


if __name__ == "__main__":
    main()
