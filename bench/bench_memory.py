"""Where the one launch's memory goes on CPU: peak RSS of every process of the launch (driver, Ray's daemons, each
actor rank, the vLLM server and engine, agent-loop and reward workers) per stage (stage 1, stage 2, eval), per Ray
method that was running (a Ray worker's title names it: ``ray::WorkerDict.actor_rollout_update_actor``), and the
peak of their sum and of the machine's used memory.

    python bench/bench_memory.py --model tiny --profile cpu     # the CPU default (main job sizes, 2 GRPO steps)
    python bench/bench_memory.py --model smollm --profile cpu_lowmem   # SmolLM2-135M-Instruct on a GSM8K sample
    python bench/bench_memory.py --model smollm --profile cpu --name smollm_cpu   # same launch, the 2-rank profile

Samples /proc every 0.5 s (the launch's process tree: Ray's workers are the raylet's children). Results go to
``bench/results/memory_<name>.json``; docs/performance.md (memory) reads them. The machine is shared: ``free_gb_min``
is what was left for everyone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GB = 1024 ** 3


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, title, rss bytes) of every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{name}/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
        table[int(name)] = (ppid, title, rss)
    return table


def _tree(root: int, table) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _role(pid: int, root: int, title: str) -> tuple[str, str | None]:
    """(role, ray method or None) of a process of the launch."""
    if pid == root:
        return "driver", None
    m = re.match(r"ray::(\w+)(?:\.(\w+))?", title)
    if m:
        return m.group(1), m.group(2)
    m = re.match(r"VLLM::(\w+)", title)
    if m:
        return f"vllm_{m.group(1)}", None
    for key in ("gcs_server", "dashboard", "log_monitor", "runtime_env", "raylet"):
        if key in title.split(" ", 1)[0] or (key != "raylet" and key in title):
            return key, None
    return title.split()[0].rsplit("/", 1)[-1][:40] if title else "?", None


def _free_gb() -> float:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return info["MemAvailable"] * 1024 / GB


PHASES = [  # (regex on a console line, the phase it starts)
    (re.compile(r"stage 1 \("), "stage1"),
    (re.compile(r"stage 2 \(|\] stage 2|grpo: \d+ steps|rl: \d+ steps"), "stage2"),
    (re.compile(r"\] eval: "), "eval"),
]


def measure(cmd: list[str], log_path: str, interval: float = 0.5) -> dict:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    state = {"phase": "start-up", "index": -1, "phase_t": {"start-up": 0.0}}
    t0 = time.time()

    def read():
        with open(log_path, "w") as log:
            for line in proc.stdout:
                log.write(f"{time.time() - t0:8.1f} {line}")
                log.flush()
                for i, (rx, phase) in enumerate(PHASES):
                    if rx.search(line) and i > state["index"]:  # phases only move forward
                        state.update(phase=phase, index=i)
                        state["phase_t"][phase] = round(time.time() - t0, 1)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    roles: dict[int, str] = {}  # pid -> its most specific role seen (a Ray worker's title is set after its start)
    order: list[int] = []
    peak: dict[int, dict[str, float]] = {}  # pid -> phase -> GB
    by_method: dict[str, dict[str, float]] = {}  # role.method -> phase -> GB (max over ranks)
    total: dict[str, float] = {}
    free_min = _free_gb()
    while proc.poll() is None:
        table = _proc_table()
        phase = state["phase"]
        s = 0.0
        for pid in _tree(proc.pid, table):
            _, title, rss = table[pid]
            role, method = _role(pid, proc.pid, title)
            if pid not in roles:
                order.append(pid)
            if pid not in roles or title.startswith(("ray::", "VLLM")):
                roles[pid] = role
            gb = rss / GB
            s += gb
            cell = peak.setdefault(pid, {})
            cell[phase] = max(cell.get(phase, 0.0), gb)
            if method:
                key = f"{role}.{method}"
                m = by_method.setdefault(key, {})
                m[phase] = max(m.get(phase, 0.0), gb)
        total[phase] = max(total.get(phase, 0.0), s)
        free_min = min(free_min, _free_gb())
        time.sleep(interval)
    names, counts = {}, {}
    for pid in order:
        counts[roles[pid]] = counts.get(roles[pid], 0) + 1
        names[pid] = f"{roles[pid]}#{counts[roles[pid]]}"
    reader.join(timeout=10)
    rnd = lambda d: {k: round(v, 2) for k, v in d.items()}  # noqa: E731
    significant = {names[pid]: rnd(v) for pid, v in sorted(peak.items(), key=lambda kv: names[kv[0]])
                   if max(v.values()) >= 0.05}
    return {
        "rc": proc.returncode,
        "wall_s": round(time.time() - t0, 1),
        "phase_start_s": state["phase_t"],
        "peak_rss_gb": significant,
        "peak_rss_gb_by_ray_method": {k: rnd(v) for k, v in sorted(by_method.items())},
        "peak_sum_rss_gb": rnd(total),
        "free_gb_min": round(free_min, 2),
    }


def inputs(model: str, work: str, rl_steps: int, stage1_steps: int | None, profile: str) -> list[str]:
    run = os.path.join(work, "run")
    if model == "tiny":
        from cadft_verl.demo.cpu_default import build_inputs, launch_overrides

        data_dir, model_dir = build_inputs(work)
        args = launch_overrides(data_dir, model_dir, run, stage1_steps=stage1_steps, rl_steps=rl_steps)
        return [a if a != "profile=cpu" else f"profile={profile}" for a in args]
    from cadft_verl.data.sample import make_sample
    from cadft_verl.demo.smollm import launch_overrides, smollm_model

    data_dir = os.path.join(work, "data")
    make_sample(out=data_dir, quiet=True, progress=False)
    kw = {"stage1_steps": stage1_steps} if stage1_steps else {}
    return launch_overrides(data_dir, smollm_model(), run, rl_steps=rl_steps, profile=profile, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["tiny", "smollm"], default="smollm")
    ap.add_argument("--name", help="results name (default: the model)")
    ap.add_argument("--rl-steps", type=int, default=2)
    ap.add_argument("--stage1-steps", type=int, default=None)
    ap.add_argument("--profile", default="cpu", help="the launch's profile: cpu (default) or cpu_lowmem")
    ap.add_argument("--work", help="folder for data and the run (default: a new temporary folder)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    name = args.name or args.model
    work = args.work or tempfile.mkdtemp(prefix=f"bench_memory_{name}_")
    cmd = [sys.executable, "-m", "verl.trainer.main", "recipe=cadft_then_grpo",
           *inputs(args.model, work, args.rl_steps, args.stage1_steps, args.profile), *args.overrides]
    result = measure(cmd, os.path.join(work, "console.log"))
    summary_file = os.path.join(work, "run", "summary.json")
    summary = json.load(open(summary_file)) if os.path.exists(summary_file) else {}
    result = {"setup": {"model": args.model, "profile": args.profile, "overrides": args.overrides, "rl_steps": args.rl_steps,
                        "machine": f"{os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GB:.0f} GiB",
                        "console": os.path.join(work, "console.log"), "date": time.strftime("%Y-%m-%d %H:%M")},
              **result, "stage_wall_s": summary.get("wall_s")}
    out = os.path.join(REPO, "bench", "results", f"memory_{name}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    print(f"wrote {out}")
    sys.exit(0 if result["rc"] == 0 else 1)


if __name__ == "__main__":
    main()
