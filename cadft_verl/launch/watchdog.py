"""A dead worker stops the launch instead of hanging it.

While a stage runs on Ray workers, a thread of the launch looks at Ray's actor table (the GCS's, which needs no
dashboard) every few seconds. When an actor of this launch dies for any reason but an intended end (a worker process
that exited or was killed, an out-of-memory kill by Ray's memory monitor, a lost node, an actor whose start failed),
or when the stage writes no new row to its metric history for ``stall_s`` seconds, it prints one message that names
the stage, the last step it finished, which worker died and how (for an OOM kill, the memory figures Ray reported
and the levers), and interrupts the launch. Without it, the worker's peers would wait for it in a collective and
the launch would hang with no CPU use and nothing on the console. The run folder resumes on a rerun, as after any
kill.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from cadft_verl.integration import metrics_history

#: Ray's reasons an actor ended that are not a failure (a ``ray.kill`` at a stage's end, a handle released)
INTENDED = {"RAY_KILL", "OUT_OF_SCOPE", "REF_DELETED", "OWNER_DIED"}
LEVERS = ("fewer actor ranks (trainer.n_gpus_per_node), parameter and optimizer offload "
          "(actor_rollout_ref.actor.fsdp_config.param_offload / optimizer_offload), a smaller rollout KV cache "
          "(VLLM_CPU_KVCACHE_SPACE on CPU, actor_rollout_ref.rollout.gpu_memory_utilization on GPU), smaller "
          "micro-batches or sequence lengths")


class StageFailed(RuntimeError):
    """The watchdog stopped a stage: a worker died, or the stage made no progress."""


def _actor_table() -> dict:
    from ray._private import state

    return state.actors()


def death_of(info: dict) -> str | None:
    """How a dead actor ended, in words, when it was a failure (``None`` when it was alive or ended on purpose)."""
    if info.get("State") != "DEAD":
        return None
    cause = info.get("DeathCause")
    if cause is None:
        return "it died (Ray recorded no cause)"
    if cause.HasField("oom_context"):
        return (f"killed for memory by Ray's memory monitor: {cause.oom_context.error_message.strip()} "
                f"Levers: {LEVERS}.")
    if cause.HasField("creation_task_failure_context"):
        return f"its start failed: {str(cause.creation_task_failure_context).strip()[:2000]}"
    if cause.HasField("runtime_env_failed_context"):
        return f"its runtime environment failed: {cause.runtime_env_failed_context.error_message.strip()}"
    if cause.HasField("actor_died_error_context"):
        ctx = cause.actor_died_error_context
        from ray.core.generated.common_pb2 import ActorDiedErrorContext

        reason = ActorDiedErrorContext.Reason.Name(ctx.reason)
        if reason in INTENDED:
            return None
        text = ctx.error_message.strip()
        if " Some common causes include" in text:  # Ray's generic list: one line of it is enough
            text = text.split(" Some common causes include")[0] + (
                " (a signal, a crash, or the kernel's OOM killer: `dmesg` tells; for memory, the levers are "
                f"{LEVERS})")
        return f"{reason}: {text}"
    return None


def last_step(history: str | None) -> int | None:
    rows = metrics_history.read_rows(history) if history else []
    return max((r["step"] for r in rows), default=None)


class Watchdog:
    """``with Watchdog("stage 1 (cadft)", history_path, stall_s=...):`` around a stage that runs on Ray."""

    def __init__(self, label: str, history: str | None, interval: float = 5.0, stall_s: float | None = None,
                 grace_s: float = 15.0):
        self.label, self.history, self.grace_s = label, history, float(grace_s)
        self.interval, self.stall_s = float(interval), (float(stall_s) if stall_s else None)
        self.failure: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cadft-watchdog")
        self._known_dead: set[str] = set()
        self._job = None
        self._started = time.time()

    def __enter__(self) -> Watchdog:
        import ray

        self._job = ray.get_runtime_context().get_job_id()
        self._known_dead = {aid for aid, info in _actor_table().items() if info.get("State") == "DEAD"}
        self._started = time.time()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
        if self.failure is None and exc_type is not None and not issubclass(exc_type, StageFailed):
            try:  # Ray's own error came first (a call to the dead worker): name the worker all the same
                self.failure = self.check()
            except Exception:  # noqa: BLE001
                pass
        if self.failure is not None:  # whatever surfaced first (the interrupt, or Ray's own error): the one message
            print(f"[cadft-verl] {self.failure}", flush=True)
            raise StageFailed(self.failure) from exc
        return False

    # ----------------------------------------------------------------------------------------------------------
    def check(self) -> str | None:
        """One look: the failure's message, or ``None``."""
        for aid, info in _actor_table().items():
            if aid in self._known_dead or not self._of_this_job(info):
                continue
            how = death_of(info)
            if how is None:
                continue
            name = info.get("Name") or info.get("ActorClassName") or "actor"
            worker = f"{info.get('ActorClassName', 'actor')} '{name}' (pid {info.get('Pid')})"
            step = last_step(self.history)
            where = f"after step {step}" if step is not None else "before its first step"
            return (f"{self.label} stopped {where}: Ray worker {worker} died: {how}. The run folder resumes "
                    "from its last checkpoint when the launch is rerun.")
        if self.stall_s and self.history:
            changed = os.path.getmtime(self.history) if os.path.exists(self.history) else self._started
            if time.time() - changed > self.stall_s:
                step = last_step(self.history)
                return (f"{self.label} made no progress for {self.stall_s:.0f} s (no new metrics row after step "
                        f"{step}; launch.watchdog.stall_s): stopped. Look at launch.log for what it waits on; the "
                        "run folder resumes from its last checkpoint when the launch is rerun.")
        return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.failure = self.check()
            except Exception:  # noqa: BLE001 - the watchdog must never stop a healthy run
                continue
            if self.failure is not None:
                os.kill(os.getpid(), signal.SIGINT)  # raises KeyboardInterrupt in the launch, mostly inside ray.get
                # a wait inside Ray's C++ code does not always see the interrupt (measured: a ray.get on a live peer
                # that waited out its 600 s): after a grace period, end this job's other actors, which fails every
                # call still waiting on them, so the stage ends with the message all the same
                if not self._stop.wait(self.grace_s):
                    self._end_peers()
                return

    def _of_this_job(self, info: dict) -> bool:
        """An actor of this launch's Ray job (the table also lists other drivers' actors)."""
        return not self._job or info.get("JobID") in (None, self._job)

    def _end_peers(self) -> None:
        import ray

        worker = ray._private.worker.global_worker
        for aid, info in _actor_table().items():
            if info.get("State") == "ALIVE" and self._of_this_job(info):
                try:
                    worker.core_worker.kill_actor(ray.ActorID.from_hex(aid), True)
                except Exception:  # noqa: BLE001 - one that is gone already, or not this driver's to end
                    continue
