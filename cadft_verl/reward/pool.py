"""A pool of scoring worker processes with a hard per-item deadline that works from any thread.

math-verify's own timeout uses ``signal.alarm`` (main thread only), while verl calls reward functions from thread
pools. Here every comparison runs in a separate worker interpreter (``python -m cadft_verl.reward._worker``,
started with ``subprocess``; no fork of the caller) with math-verify's timeouts disabled. The caller waits on the
worker's pipe with a deadline; when it passes, the worker is killed (SIGKILL), the item is reported as timed out,
and a fresh worker replaces it. A worker that dies (segfault, out of memory, ...) is replaced the same way.

- :meth:`ScoringPool.verify` — one comparison, thread-safe (each call checks out one worker).
- :meth:`ScoringPool.verify_many` — a batch spread over all workers, several items in flight per worker.
- ``num_workers=0`` compares in the calling process (math-verify's signal timeout on the main thread, none
  elsewhere): for debugging and for the single-process baseline of ``bench/bench_scoring.py``.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

from cadft_verl.reward.score import Score

DEFAULT_TIMEOUT = float(os.environ.get("CADFT_REWARD_TIMEOUT", "10"))
DEFAULT_MEM_MB = int(os.environ.get("CADFT_REWARD_MEM_MB", "4096"))
STARTUP_TIMEOUT = 120.0
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_num_workers(cap: int = 8) -> int:
    """Env ``CADFT_REWARD_NUM_WORKERS`` if set, else min(cap, CPUs)."""
    env = os.environ.get("CADFT_REWARD_NUM_WORKERS")
    if env:
        return max(0, int(env))
    return max(1, min(cap, os.cpu_count() or 1))


class WorkerStartError(RuntimeError):
    pass


class _Worker:
    """One worker interpreter plus its two pipes."""

    def __init__(self, mem_mb: int):
        c_read, p_write = os.pipe()  # parent -> child
        p_read, c_write = os.pipe()  # child -> parent
        env = dict(os.environ)
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cadft_verl.reward._worker", str(c_read), str(c_write), str(mem_mb)],
                pass_fds=(c_read, c_write),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        finally:
            os.close(c_read)
            os.close(c_write)
        self.send_conn = Connection(p_write, readable=False)
        self.recv_conn = Connection(p_read, writable=False)
        self.ready = False
        self.started_at = time.monotonic()
        self.inflight: deque[int] = deque()
        self.head_since = 0.0

    def handle_ready(self, msg) -> None:
        if not (isinstance(msg, tuple) and msg and msg[0] == "ready"):
            raise WorkerStartError(f"scoring worker sent {msg!r} instead of its ready message")
        self.ready = True

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        if self.ready:
            return
        try:
            if not self.recv_conn.poll(timeout):
                raise WorkerStartError(f"scoring worker did not start within {timeout:.0f} s")
            self.handle_ready(self.recv_conn.recv())
        except (EOFError, OSError) as e:
            code = self.proc.poll()
            raise WorkerStartError(
                f"scoring worker exited during start-up (exit code {code}); see its traceback above. "
                f"Command: {sys.executable} -m cadft_verl.reward._worker"
            ) from e

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except Exception:  # pragma: no cover
            pass
        self._close_conns()

    def stop(self) -> None:
        try:
            self.send_conn.send(None)
            self.proc.wait(timeout=2)
        except Exception:
            self.kill()
        self._close_conns()

    def _close_conns(self) -> None:
        for c in (self.send_conn, self.recv_conn):
            try:
                c.close()
            except OSError:
                pass


def _in_process_verify(pred: str, gold: str, timeout: float | None) -> Score:
    from cadft_verl.reward.core import answers_match

    main = threading.current_thread() is threading.main_thread()
    sig_timeout = max(1, int(round(timeout))) if (timeout and main and os.name == "posix") else None
    try:
        return Score(answers_match(pred, gold, signal_timeout=sig_timeout), pred)
    except Exception as e:  # noqa: BLE001
        return Score(False, pred, False, f"{type(e).__name__}: {str(e)[:200]}")


class ScoringPool:
    """Worker processes for math-verify comparisons; see the module docstring.

    Workers are started lazily (up to ``num_workers``) and kept for reuse. Use as a context manager or call
    :meth:`close`; the process-wide default pool (:func:`get_default_pool`) is closed at exit.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        timeout: float | None = None,
        mem_mb: int | None = None,
        prefetch: int = 2,
    ):
        self.num_workers = default_num_workers() if num_workers is None else max(0, int(num_workers))
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.mem_mb = DEFAULT_MEM_MB if mem_mb is None else int(mem_mb)
        self.prefetch = max(1, int(prefetch))
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._live = 0
        self._closed = False
        self.stats = {"timeouts": 0, "crashes": 0, "workers_started": 0}

    # ------------------------------------------------------------------ worker bookkeeping
    def _spawn(self) -> _Worker:
        w = _Worker(self.mem_mb)
        with self._cond:
            self.stats["workers_started"] += 1
        return w

    def _checkout(self, block: bool = True) -> _Worker | None:
        """An idle worker, a newly started one (maybe not ready yet), or None (``block=False`` and none free)."""
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("ScoringPool is closed")
                while self._idle:
                    w = self._idle.pop()
                    if w.proc.poll() is None:
                        return w
                    self._live -= 1  # died while idle (killed from outside, OOM killer): start a new one
                    w.kill()
                if self._live < self.num_workers:
                    self._live += 1
                    break
                if not block:
                    return None
                self._cond.wait()
        try:
            return self._spawn()
        except BaseException:
            with self._cond:
                self._live -= 1
                self._cond.notify()
            raise

    def _checkin(self, w: _Worker, alive: bool = True) -> None:
        if alive and w.inflight:
            alive = False  # protocol state unknown: do not reuse
        reuse = False
        with self._cond:
            if alive and not self._closed:
                self._idle.append(w)
                reuse = True
            else:
                self._live -= 1
            self._cond.notify()
        if not reuse:
            if alive:
                w.stop()
            else:
                w.kill()

    def _replace(self, w: _Worker) -> _Worker:
        """Kill ``w`` and start a fresh worker in its slot."""
        w.kill()
        return self._spawn()

    # ------------------------------------------------------------------ API
    def verify(self, pred: str, gold: str, timeout: float | None = None) -> Score:
        """Compare one extracted answer with one gold answer; thread-safe; never blocks past the deadline."""
        timeout = self.timeout if timeout is None else float(timeout)
        if self.num_workers == 0:
            return _in_process_verify(pred, gold, timeout)
        w = self._checkout()
        alive = False
        try:
            w.wait_ready()
            w.send_conn.send((0, pred, gold))
            if w.recv_conn.poll(timeout):
                _, ok, err = w.recv_conn.recv()
                alive = True
                return Score(ok, pred, False, err)
            with self._cond:
                self.stats["timeouts"] += 1
            return Score(False, pred, True, f"timeout after {timeout:g} s")
        except (EOFError, OSError) as e:
            with self._cond:
                self.stats["crashes"] += 1
            return Score(False, pred, False, f"scoring worker died ({type(e).__name__}, exit {w.proc.poll()})")
        finally:
            self._checkin(w, alive)

    def verify_many(
        self,
        pairs: Sequence[tuple[str, str]],
        timeout: float | None = None,
        on_result: Callable[[int, Score], None] | None = None,
    ) -> list[Score]:
        """Compare many ``(pred, gold)`` pairs over the pool; results in input order.

        Every item gets the full ``timeout`` from the moment its worker starts on it; a timed-out or crashing item
        scores False and its worker is replaced, the others are re-queued.
        """
        timeout = self.timeout if timeout is None else float(timeout)
        n = len(pairs)
        results: list[Score | None] = [None] * n
        if n == 0:
            return []
        if self.num_workers == 0:
            for i, (p, g) in enumerate(pairs):
                results[i] = _in_process_verify(p, g, timeout)
                if on_result:
                    on_result(i, results[i])
            return results  # type: ignore[return-value]

        workers: list[_Worker] = [self._checkout(block=True)]
        while len(workers) < min(n, self.num_workers):
            w = self._checkout(block=False)
            if w is None:
                break
            workers.append(w)

        # Items that share a gold answer go to the same worker (its parsed gold stays cached there): the queue
        # holds groups of indices; a worker keeps taking from its own group, then the next group, then steals
        # half of the largest remaining group of another worker.
        by_gold: dict[str, deque[int]] = {}
        for i, (_, g) in enumerate(pairs):
            by_gold.setdefault(g, deque()).append(i)
        groups: deque[deque[int]] = deque(by_gold.values())
        local: dict[int, deque[int]] = {}

        def next_item(w: _Worker) -> int | None:
            mine = local.get(id(w))
            if mine:
                return mine.popleft()
            if groups:
                local[id(w)] = mine = groups.popleft()
                return mine.popleft()
            victim = max(local.values(), key=len, default=None)
            if victim:
                take = deque(victim.pop() for _ in range((len(victim) + 1) // 2))
                take.reverse()
                local[id(w)] = take
                return take.popleft()
            return None

        def requeue(w: _Worker) -> None:
            back = deque(w.inflight)
            back.extend(local.pop(id(w), ()))
            if back:
                groups.appendleft(back)
            w.inflight.clear()

        done = 0
        start_failures = 0
        ok_exit = False

        def finish(i: int, correct: bool, timed_out: bool = False, error: str | None = None) -> None:
            nonlocal done
            results[i] = out = Score(correct, pairs[i][0], timed_out, error)
            done += 1
            if on_result:
                on_result(i, out)

        try:
            while done < n:
                now = time.monotonic()
                for w in workers:
                    if not w.ready:
                        continue
                    while len(w.inflight) < self.prefetch:
                        i = next_item(w)
                        if i is None:
                            break
                        w.send_conn.send((i, pairs[i][0], pairs[i][1]))
                        if not w.inflight:
                            w.head_since = now
                        w.inflight.append(i)
                deadlines = [w.head_since + timeout for w in workers if w.inflight]
                deadlines += [w.started_at + STARTUP_TIMEOUT for w in workers if not w.ready]
                wait_s = max(0.0, min(deadlines) - now) if deadlines else None
                by_conn = {w.recv_conn: w for w in workers if w.inflight or not w.ready}
                readable = wait(list(by_conn), timeout=wait_s)
                for conn in readable:
                    w = by_conn[conn]
                    try:
                        while w.recv_conn.poll():
                            msg = w.recv_conn.recv()
                            if not w.ready:
                                w.handle_ready(msg)
                                start_failures = 0
                                continue
                            tid, ok, err = msg
                            if not w.inflight or w.inflight[0] != tid:
                                raise RuntimeError(f"scoring worker protocol error: got result for {tid}")
                            w.inflight.popleft()
                            w.head_since = time.monotonic()
                            finish(tid, ok, False, err)
                    except (EOFError, OSError):
                        if not w.ready:
                            start_failures += 1
                            if start_failures > 3:
                                raise WorkerStartError(
                                    f"scoring workers keep dying during start-up (exit code {w.proc.poll()})"
                                ) from None
                        elif w.inflight:
                            with self._cond:
                                self.stats["crashes"] += 1
                            head = w.inflight.popleft()
                            finish(head, False, False, f"scoring worker died (exit {w.proc.poll()})")
                        requeue(w)
                        workers[workers.index(w)] = self._replace(w)
                now = time.monotonic()
                for idx, w in enumerate(workers):
                    if w.inflight and now - w.head_since > timeout:
                        with self._cond:
                            self.stats["timeouts"] += 1
                        head = w.inflight.popleft()
                        requeue(w)
                        workers[idx] = self._replace(w)
                        finish(head, False, True, f"timeout after {timeout:g} s")
                    elif not w.ready and now - w.started_at > STARTUP_TIMEOUT:
                        raise WorkerStartError(f"scoring worker did not start within {STARTUP_TIMEOUT:.0f} s")
            ok_exit = True
        finally:
            for w in workers:
                self._checkin(w, alive=ok_exit and w.ready and not w.inflight)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for w in idle:
            w.stop()

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DEFAULT_POOL: ScoringPool | None = None
_DEFAULT_LOCK = threading.Lock()


def get_default_pool() -> ScoringPool:
    """The process-wide pool used by ``compute_score`` (re-created after a fork; closed at exit).

    Size: env ``CADFT_REWARD_NUM_WORKERS`` (default min(4, CPUs), started on demand); deadline:
    ``CADFT_REWARD_TIMEOUT`` seconds (default 10); worker address-space limit: ``CADFT_REWARD_MEM_MB``
    (default 4096, 0 = none).
    """
    global _DEFAULT_POOL
    with _DEFAULT_LOCK:
        if _DEFAULT_POOL is None or _DEFAULT_POOL.pid != os.getpid():
            # small by default: verl may run several reward processes per node, each with its own pool;
            # workers are started only when that many calls are in flight at once
            _DEFAULT_POOL = ScoringPool(num_workers=default_num_workers(cap=4))
        return _DEFAULT_POOL


@atexit.register
def _close_default_pool() -> None:
    pool = _DEFAULT_POOL
    if pool is not None and pool.pid == os.getpid():
        pool.close()
