"""Run the one launch (``python -m verl.trainer.main``) as a user would, on the CPU profile."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time


#: One actor rank, hence one vLLM rollout replica, instead of the CPU profile's two: for launches whose test is not
#: about ranks (CI-time budget, docs/install.md). Each rank adds an actor process and a replica's three vLLM
#: processes, all started on 2 cores: a 2-step stage-2 launch took 101 s instead of 134 s here. Stage 1's
#: micro-batch doubles with it, so that a rank still holds one micro-batch of the CPU default's 32 (the batch
#: statistics stay free, as at two ranks). Two ranks stay tested end to end by the README's main job
#: (test_default_learns_on_cpu.py), the stage-1 launch tests, rewriting's stage tests and the watchdog's kill of a peer.
ONE_RANK = ("trainer.n_gpus_per_node=1", "cadft.data.micro_batch_size_per_gpu=32")

#: GRPO steps of the main job's test run (the ``default_run`` fixture, tests/launcher/conftest.py; 16 in the README's):
#: enough for its held-out score to rise beyond the noise (test_default_learns_on_cpu.py)
MAIN_JOB_RL_STEPS = 8


def stage1_args(inputs, run_dir, steps=3, extra=()):
    return [
        "profile=cpu",
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"cadft.data.train_files={inputs['data']}/sft/train.parquet",
        "cadft.data.train_batch_size=16",
        "cadft.data.micro_batch_size_per_gpu=4",
        "cadft.data.max_length=1024",
        f"cadft.trainer.total_training_steps={steps}",
        f"trainer.default_local_dir={run_dir}",
        "trainer.logger=[console,file]",
        # weighting-only CADFT: rewrite rounds need a rollout engine (vLLM), tested in tests/rewrite
        "cadft.rewrite.enabled=false",
        # recipes with an eval stage: the generated benchmark (no benchmark folder needed), a few problems
        "eval.benchmarks=[arith]", "eval.limit=8", "eval.k=1", "eval.greedy=true", "eval.max_new_tokens=32",
        # RL readiness (tests/eval/test_eval_stage_on_cpu.py): 2 samples per problem keep its cost small
        "eval.readiness_k=2",
        *extra,
    ]


def launch(args, module="verl.trainer.main", timeout=900, check=True):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"launch failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}")
    return proc


@contextlib.contextmanager
def started(args, module="verl.trainer.main"):
    """A launch (or study) in its own process group, quiet; its whole group (driver, Ray, workers) is killed after."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        _kill_leftover_ray(proc.pid)


def launch_and_kill_when(args, ready, timeout=600, module="verl.trainer.main"):
    """Start a launch, SIGKILL its whole process group (driver, Ray, workers) once ``ready()`` is true."""
    deadline = time.time() + timeout
    with started(args, module) as proc:
        while time.time() < deadline:
            if ready():
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.5)
        return False


def _kill_leftover_ray(pgid):
    """Ray daemons started by a killed driver may have left its process group: end those of this run only."""
    out = subprocess.run(["ps", "-eo", "pid,pgid,command"], capture_output=True, text=True).stdout
    for line in out.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] == str(pgid):
            try:
                os.kill(int(parts[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def ray_workers(pgid, pattern=r"^ray::\w*(ActorRolloutRefWorker|CADFTActorWorker|WorkerDict)\b"):
    """``[(pid, title)]`` of the Ray actor workers of a launch whose title matches ``pattern``: the children of the
    raylet in the launch's process group (Ray's workers each start a process group of their own)."""
    import re

    out = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,pgid,args"], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()[1:]]
    rows = [r for r in rows if len(r) == 4]
    raylets = {r[0] for r in rows if r[2] == str(pgid) and "raylet" in r[3].split()[0]}
    return [(int(r[0]), r[3]) for r in rows if r[1] in raylets and re.search(pattern, r[3])]


def launch_and_kill_a_worker_when(args, ready, timeout=600, module="verl.trainer.main", wait=180):
    """Start a launch; once ``ready()``, SIGKILL one of its Ray actor workers (as the OOM killer would) and let the
    launch stop by itself. Returns ``{ok, killed, seconds, rc}``: ``seconds`` from the kill to the launch's exit
    (None: it had not exited after ``wait`` s and was killed), ``killed`` the worker's (pid, title)."""
    out = {"ok": False, "killed": None, "seconds": None, "rc": None}
    deadline = time.time() + timeout
    with started(args, module) as proc:
        while time.time() < deadline and proc.poll() is None:
            workers = ray_workers(proc.pid) if ready() else []
            if workers:
                time.sleep(0.1)  # the list again, in case a worker just ended
                workers = ray_workers(proc.pid) or workers
                out["killed"] = workers[-1]
                try:
                    os.kill(workers[-1][0], signal.SIGKILL)
                except ProcessLookupError:  # it had just ended: try again
                    continue
                t0 = time.time()
                try:
                    out["rc"] = proc.wait(timeout=wait)
                    out["seconds"] = time.time() - t0
                except subprocess.TimeoutExpired:
                    pass
                out["ok"] = True
                return out
            time.sleep(0.1)
        return out
