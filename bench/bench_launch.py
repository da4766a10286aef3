"""Wall-time split of the one launch on CPU (``recipe=cadft_then_grpo profile=cpu``, the CPU default's sizes).

Reports start-up (Ray), stage 1 (worker start-up and shutdown vs training steps, and the scoring pre-pass inside
them), the hand-over (stage 2's start-up: verl's trainer, actor workers, vLLM replica, weight load), stage 2's
steps and validation, and the hand-over cost relative to stage 2's first step.

    python bench/bench_launch.py [--stage1-steps 8] [--rl-steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from cadft_verl.demo.cpu_default import build_inputs, launch_overrides

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows(path):
    with open(path) as f:
        return [json.loads(line)["data"] for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage1-steps", type=int, default=8)
    ap.add_argument("--rl-steps", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "launch.json"))
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench_launch_")
    data_dir, model_dir = build_inputs(work)
    run = os.path.join(work, "run")
    cmd = [sys.executable, "-m", "verl.trainer.main", "recipe=cadft_then_grpo",
           *launch_overrides(data_dir, model_dir, run, stage1_steps=args.stage1_steps, rl_steps=args.rl_steps),
           *args.overrides]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"launch failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    summary = json.load(open(os.path.join(run, "summary.json")))
    wall = summary["wall_s"]
    s1 = rows(os.path.join(run, "metrics", "cadft-verl", "cadft_then_grpo_stage1.jsonl"))
    s2 = rows(os.path.join(run, "metrics", "cadft-verl", "cadft_then_grpo_stage2.jsonl"))
    s1_train = sum(r["stage1/perf/step_time_s"] for r in s1)
    s1_scoring = sum(r.get("stage1/perf/prepass_time_s", 0.0) for r in s1)
    s2_steps = sum(r["timing_s/step"] for r in s2)
    s2_val = sum(r.get("timing_s/testing", 0.0) for r in s2)
    handoff = wall["stage2"] - s2_steps - s2_val
    split = {
        "process_start_and_config": total - sum(wall.values()),
        "ray_init": wall["ray_init"],
        "stage1_workers_start_save_shutdown": wall["stage1"] - s1_train,
        "stage1_train_steps": s1_train - s1_scoring,
        "stage1_scoring_prepass": s1_scoring,
        "rewriting": 0.0,
        "handoff_stage2_startup": handoff,
        "stage2_steps": s2_steps,
        "stage2_validation": s2_val,
    }
    result = {
        "setup": {"stage1_steps": args.stage1_steps, "rl_steps": args.rl_steps, "model": "Qwen2 2x128",
                  "cpus": os.cpu_count(), "note": "rewriting disabled here; see bench/bench_rewrite.py"},
        "total_wall_s": total,
        "split_s": split,
        "stage2_first_step_s": s2[0]["timing_s/step"],
        "stage2_later_step_s": (s2_steps - s2[0]["timing_s/step"]) / max(len(s2) - 1, 1),
        "handoff_over_stage2_first_step": handoff / s2[0]["timing_s/step"],
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("| part | seconds | share |\n|---|---|---|")
    for k, v in split.items():
        print(f"| {k} | {v:.1f} | {v / total:.0%} |")
    print(f"\nhand-over / stage 2's first step = {result['handoff_over_stage2_first_step']:.1f}x "
          f"(first step {result['stage2_first_step_s']:.1f}s, later steps {result['stage2_later_step_s']:.1f}s)")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
