"""A pool of scoring worker processes with a hard per-item deadline that works from any thread.

math-verify's own timeout uses ``signal.alarm`` (main thread only), while verl calls reward functions from thread
pools. Here every comparison runs in a separate worker interpreter (``python -m cadft_verl.reward._worker``,
started with ``subprocess``; no fork of the caller) with math-verify's timeouts disabled. The caller waits on the
worker's pipe with a deadline; when it passes, the worker is killed (SIGKILL), the item is reported as timed out,
and a fresh worker replaces it. A worker that dies (segfault, out of memory, ...) is replaced the same way.

Nothing here waits on a worker past a deadline:

- items go to a worker through a non-blocking pipe, from a buffer the caller's wait loop drains, so a worker stuck on
  one item cannot stall the caller however large the next item is; a pair whose message is larger than
  :data:`MAX_MESSAGE_BYTES` (UTF-8 bytes, not characters) is scored wrong without a worker;
- a killed worker is reaped in the background (freeing a large address space can take the kernel seconds);
- in a batch, a worker holds one item at a time (``prefetch=1``, the default): an item never waits behind another
  item that may run into its deadline (with ``prefetch`` > 1 it can, for that whole deadline; the round trip it saves
  is well under 1 % of a math-verify comparison). While every worker is busy, items wait and one item has used most
  of its deadline, one standby worker is started, so that the rest of the batch does not wait for a replacement's
  start-up once the stuck worker is killed.

Workers never outlive the pool's process (parent-death signal, a parent check while idle and a CPU-time limit per
item; see :mod:`cadft_verl.reward._worker`). They are all started from one long-lived thread (:class:`_Spawner`),
because Linux sends the parent-death signal when the *thread* that started a process ends.

- :meth:`ScoringPool.verify` — one comparison, thread-safe (each call checks out one worker).
- :meth:`ScoringPool.verify_many` — a batch spread over all workers.
- ``num_workers=0`` compares in the calling process (math-verify's signal timeout on the main thread, none
  elsewhere): for debugging and for the single-process baseline of ``bench/bench_scoring.py``.
"""

from __future__ import annotations

import atexit
import math
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from multiprocessing.connection import Connection

from cadft_verl.reward.score import Score

DEFAULT_TIMEOUT = float(os.environ.get("CADFT_REWARD_TIMEOUT", "10"))
DEFAULT_MEM_MB = int(os.environ.get("CADFT_REWARD_MEM_MB", "4096"))
STARTUP_TIMEOUT = 120.0
#: a (pred, gold) pair whose message to a worker is larger than this is scored wrong without one ("answer too long")
MAX_MESSAGE_BYTES = 256 * 1024
#: CPU seconds beyond an item's deadline after which the worker's RLIMIT_CPU ends it (matters only when the parent
#: can no longer kill it)
CPU_MARGIN_S = 5.0
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: parent -> worker messages: this length header, then the pickle (read by ``_worker.read_frame``)
FRAME_HEADER = struct.Struct("!Q")


def frame(obj) -> bytes:
    """One parent -> worker message: length header + pickle."""
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(payload)) + payload


def default_num_workers(cap: int = 8) -> int:
    """Env ``CADFT_REWARD_NUM_WORKERS`` if set, else min(cap, CPUs)."""
    env = os.environ.get("CADFT_REWARD_NUM_WORKERS")
    if env:
        return max(0, int(env))
    return max(1, min(cap, os.cpu_count() or 1))


class WorkerStartError(RuntimeError):
    pass


class _Spawner:
    """Runs every worker start of this process on one long-lived daemon thread.

    A worker asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), and Linux sends that signal when
    the thread that started the process ends: a worker started from a short-lived caller thread (verl's reward
    threads, a ``ThreadPoolExecutor``) would die with that thread. Re-created after a fork."""

    _lock = threading.Lock()
    _current: _Spawner | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="cadft-reward-spawner", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                fut.set_exception(e)

    @classmethod
    def call(cls, fn: Callable):
        with cls._lock:
            if cls._current is None or cls._current.pid != os.getpid():
                cls._current = cls()
            spawner = cls._current
        fut: Future = Future()
        spawner._jobs.put((fn, fut))
        return fut.result()


class _Worker:
    """One worker interpreter, its pipes and the bytes not yet written to it."""

    def __init__(self, mem_mb: int):
        c_read, p_write = os.pipe()  # parent -> child
        p_read, c_write = os.pipe()  # child -> parent
        env = dict(os.environ)
        env["PYTHONPATH"] = _PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("OMP_NUM_THREADS", "1")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cadft_verl.reward._worker", str(c_read), str(c_write), str(mem_mb),
                 str(os.getpid())],
                pass_fds=(c_read, c_write),
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except BaseException:
            os.close(p_write)
            os.close(p_read)
            raise
        finally:
            os.close(c_read)
            os.close(c_write)
        os.set_blocking(p_write, False)
        self.wfd = p_write
        self.recv_conn = Connection(p_read, writable=False)
        self.outbuf = bytearray()
        self.ready = False
        self.started_at = time.monotonic()
        self.inflight: deque[int] = deque()
        self.head_since = 0.0
        self._closed = False

    def send(self, msg: bytes) -> None:
        """Queue one framed message and write what the pipe takes now; never blocks."""
        self.outbuf += msg
        self.flush()

    def flush(self) -> None:
        """Write as much of the buffer as the pipe takes; ``OSError`` (broken pipe) when the worker is gone."""
        while self.outbuf:
            try:
                n = os.write(self.wfd, self.outbuf)
            except BlockingIOError:
                return
            del self.outbuf[:n]

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
        """SIGKILL; the process is reaped in the background, so this never waits on the kernel."""
        try:
            self.proc.kill()
        except OSError:
            pass
        self._close()
        self._reap()

    def stop(self, wait: float = 0.0, ask: bool = True) -> None:
        """Ask an idle worker to exit (``ask``: send the exit message; EOF follows anyway); wait up to ``wait``
        seconds for it (then SIGKILL), else reap it in the background."""
        if ask:
            try:
                self.send(frame(None))
            except OSError:
                pass
        self._close()  # EOF too, should the exit message not fit into the pipe
        if wait > 0:
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()

    def _reap(self) -> None:
        if self.proc.poll() is None:
            threading.Thread(target=self.proc.wait, name="cadft-reward-reaper", daemon=True).start()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            os.close(self.wfd)
        except OSError:
            pass
        try:
            self.recv_conn.close()
        except OSError:
            pass


def _poll(readers: Sequence[_Worker], writers: Sequence[_Worker], timeout: float | None):
    """(workers with something to read or at EOF, workers whose pipe takes more bytes) within ``timeout`` seconds."""
    poller = select.poll()
    where: dict[int, tuple[_Worker, bool]] = {}
    for w in readers:
        fd = w.recv_conn.fileno()
        poller.register(fd, select.POLLIN)
        where[fd] = (w, True)
    for w in writers:
        poller.register(w.wfd, select.POLLOUT)
        where[w.wfd] = (w, False)
    ms = -1 if timeout is None else max(0, math.ceil(timeout * 1000))
    readable, writable = [], []
    for fd, _ in poller.poll(ms):
        w, is_read = where[fd]
        (readable if is_read else writable).append(w)
    return readable, writable


def _in_process_verify(pred: str, gold: str, timeout: float | None) -> Score:
    from cadft_verl.reward.core import answers_match

    main = threading.current_thread() is threading.main_thread()
    sig_timeout = max(1, int(round(timeout))) if (timeout and main and os.name == "posix") else None
    try:
        return Score(answers_match(pred, gold, signal_timeout=sig_timeout), pred)
    except Exception as e:  # noqa: BLE001
        return Score(False, pred, False, f"{type(e).__name__}: {str(e)[:200]}")


def _message(task_id: int, pred: str, gold: str, timeout: float) -> tuple[bytes | None, str | None]:
    """(the framed task, None) or (None, why it is not sent)."""
    msg = frame((task_id, pred, gold, timeout + CPU_MARGIN_S))
    if len(msg) > MAX_MESSAGE_BYTES:
        return None, f"answer too long ({len(msg)} bytes > {MAX_MESSAGE_BYTES})"
    return msg, None


class ScoringPool:
    """Worker processes for math-verify comparisons; see the module docstring.

    Workers are started lazily (up to ``num_workers``, plus one standby while a batch has a stuck item) and kept for
    reuse. Use as a context manager or call :meth:`close`; the process-wide default pool (:func:`get_default_pool`)
    is closed at exit.
    """

    def __init__(
        self,
        num_workers: int | None = None,
        timeout: float | None = None,
        mem_mb: int | None = None,
        prefetch: int = 1,
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
        self._startup_s = 2.0  # running estimate of a worker's start-up (spawn to ready), for the standby's timing
        self.stats = {"timeouts": 0, "crashes": 0, "workers_started": 0, "standby_started": 0}

    # ------------------------------------------------------------------ worker bookkeeping
    def _spawn(self) -> _Worker:
        mem_mb = self.mem_mb
        w = _Spawner.call(lambda: _Worker(mem_mb))
        with self._cond:
            self.stats["workers_started"] += 1
        return w

    def _note_ready(self, w: _Worker) -> None:
        self._startup_s = 0.7 * self._startup_s + 0.3 * (time.monotonic() - w.started_at)

    def _checkout(self, block: bool = True, extra: bool = False) -> _Worker | None:
        """An idle worker, a newly started one (maybe not ready yet), or None (``block=False`` and none free).
        ``extra``: start one beyond ``num_workers`` (the standby); it is stopped when checked in over the limit."""
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
                if self._live < self.num_workers or extra:
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

    def _checkin(self, w: _Worker, alive: bool = True, replace: bool = False) -> None:
        """Return ``w`` to the idle list, or stop/kill it (``alive`` False: killed; ``replace``: a new worker is
        started in its slot, so that the next call does not wait for a start-up)."""
        if alive and (w.inflight or w.outbuf):
            alive = False  # protocol state unknown: do not reuse
        reuse = False
        with self._cond:
            if alive and not self._closed and self._live <= self.num_workers:
                self._idle.append(w)
                reuse = True
            else:
                self._live -= 1
            self._cond.notify()
        if not reuse:
            if alive and w.ready:
                w.stop()
            else:
                w.kill()
        if replace and not reuse and not self._closed:
            fresh = self._checkout(block=False)
            if fresh is not None:
                self._checkin(fresh)

    # ------------------------------------------------------------------ API
    def start(self, timeout: float = STARTUP_TIMEOUT) -> ScoringPool:
        """Start all ``num_workers`` workers now and wait until each is ready (a warm-up: no later call then pays
        for a start-up); returns the pool."""
        started: list[_Worker] = []
        try:
            while len(started) < self.num_workers:
                w = self._checkout(block=False)
                if w is None:
                    break
                started.append(w)
            for w in started:
                if not w.ready:
                    w.wait_ready(timeout)
                    self._note_ready(w)
        finally:
            for w in started:
                self._checkin(w, alive=w.ready)
        return self

    def verify(self, pred: str, gold: str, timeout: float | None = None) -> Score:
        """Compare one extracted answer with one gold answer; thread-safe; returns at most ``timeout`` seconds after
        a worker is ready for it (a worker's start-up does not count; a killed worker's replacement starts at once)."""
        timeout = self.timeout if timeout is None else float(timeout)
        if self.num_workers == 0:
            return _in_process_verify(pred, gold, timeout)
        msg, refused = _message(0, pred, gold, timeout)
        if msg is None:
            return Score(False, pred, False, refused)
        w = self._checkout()
        alive = replace = False  # replace: a timeout or a crash (not a failed start-up) killed it
        try:
            if not w.ready:
                w.wait_ready()
                self._note_ready(w)
            w.send(msg)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    replace = True
                    with self._cond:
                        self.stats["timeouts"] += 1
                    return Score(False, pred, True, f"timeout after {timeout:g} s")
                readable, writable = _poll([w], [w] if w.outbuf else [], left)
                if writable:
                    w.flush()
                if readable:
                    _, ok, err = w.recv_conn.recv()
                    alive = True
                    return Score(ok, pred, False, err)
        except (EOFError, OSError) as e:
            replace = True
            with self._cond:
                self.stats["crashes"] += 1
            return Score(False, pred, False, f"scoring worker died ({type(e).__name__}, exit {w.proc.poll()})")
        finally:
            self._checkin(w, alive, replace=replace)

    def verify_many(
        self,
        pairs: Sequence[tuple[str, str]],
        timeout: float | None = None,
        on_result: Callable[[int, Score], None] | None = None,
    ) -> list[Score]:
        """Compare many ``(pred, gold)`` pairs over the pool; results in input order.

        Every item gets the full ``timeout`` from the moment its worker starts on it, and its result comes back
        within that deadline plus the time to kill the worker; a timed-out or crashing item scores False and its
        worker is replaced, the others are re-queued.
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

        workers: list[_Worker] = [self._checkout(block=True)]  # type: ignore[list-item]
        while len(workers) < min(n, self.num_workers):
            w = self._checkout(block=False)
            if w is None:
                break
            workers.append(w)
        target = len(workers)  # the batch's share of the pool; a standby may add one while an item is stuck
        # an item that has run this long, with other items waiting, starts the standby (ready by the deadline)
        standby_after = max(timeout / 2, timeout - self._startup_s - 1.0)

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

        def waiting() -> bool:
            """Items that no worker has started: not handed out, or queued behind another item."""
            return bool(groups) or any(local.values()) or any(len(w.inflight) > 1 for w in workers)

        def standby_due() -> bool:
            """Items wait, every worker is busy and no standby is running yet."""
            return len(workers) <= target and all(w.inflight for w in workers) and waiting()

        done = 0
        start_failures = 0
        ok_exit = False

        def finish(i: int, correct: bool, timed_out: bool = False, error: str | None = None) -> None:
            nonlocal done
            results[i] = out = Score(correct, pairs[i][0], timed_out, error)
            done += 1
            if on_result:
                on_result(i, out)

        def retire(w: _Worker) -> None:
            """Kill ``w`` (its head item already settled), give its other items back and start its replacement (unless
            a standby already took its place), which then serves this batch or, starting up, the next call."""
            back = deque(w.inflight)
            back.extend(local.pop(id(w), ()))
            if back:
                groups.appendleft(back)
            w.inflight.clear()
            workers.remove(w)
            self._checkin(w, alive=False)
            if len(workers) < target:
                fresh = self._checkout(block=not workers and waiting())
                if fresh is not None:
                    workers.append(fresh)

        def crashed(w: _Worker) -> None:
            nonlocal start_failures
            if not w.ready:
                start_failures += 1
                if start_failures > 3:
                    raise WorkerStartError(
                        f"scoring workers keep dying during start-up (exit code {w.proc.poll()})"
                    ) from None
            elif w.inflight:
                with self._cond:
                    self.stats["crashes"] += 1
                finish(w.inflight.popleft(), False, False, f"scoring worker died (exit {w.proc.poll()})")
            retire(w)

        try:
            while done < n:
                # 1. hand out items: every worker, starting ones included, gets one before any gets a second (up
                # to ``prefetch``): an item queued behind another can wait out that item's deadline
                now = time.monotonic()
                for depth in range(self.prefetch if all(w.ready for w in workers) else 1):
                    for w in list(workers):
                        if w not in workers or not w.ready or len(w.inflight) != depth:
                            continue
                        i = next_item(w)
                        msg = None
                        while i is not None:
                            msg, refused = _message(i, pairs[i][0], pairs[i][1], timeout)
                            if msg is not None:
                                break
                            finish(i, False, False, refused)
                            i = next_item(w)
                        if i is None:
                            continue
                        if not w.inflight:
                            w.head_since = now
                        w.inflight.append(i)
                        try:
                            w.send(msg)  # type: ignore[arg-type]
                        except OSError:
                            crashed(w)
                if done >= n:
                    break
                # 2. wait for a result, a pipe that takes more, a start-up, a deadline or the standby's moment
                wake = [w.head_since + timeout for w in workers if w.inflight]
                wake += [w.started_at + STARTUP_TIMEOUT for w in workers if not w.ready]
                if standby_due():
                    wake += [w.head_since + standby_after for w in workers if w.inflight]
                wait_s = max(0.0, min(wake) - now) if wake else 1.0
                readable, writable = _poll([w for w in workers if w.inflight or not w.ready],
                                           [w for w in workers if w.outbuf], wait_s)
                for w in writable:
                    if w in workers:
                        try:
                            w.flush()
                        except OSError:
                            crashed(w)
                for w in readable:
                    if w not in workers:
                        continue
                    try:
                        while w.recv_conn.poll():
                            msg = w.recv_conn.recv()
                            if not w.ready:
                                w.handle_ready(msg)
                                self._note_ready(w)
                                start_failures = 0
                                continue
                            tid, ok, err = msg
                            if not w.inflight or w.inflight[0] != tid:
                                raise RuntimeError(f"scoring worker protocol error: got result for {tid}")
                            w.inflight.popleft()
                            w.head_since = time.monotonic()
                            finish(tid, ok, False, err)
                    except (EOFError, OSError):
                        crashed(w)
                # 3. deadlines: kill the stuck worker now (reaped in the background), score its item as a timeout
                now = time.monotonic()
                for w in list(workers):
                    if w.inflight and now - w.head_since >= timeout:
                        with self._cond:
                            self.stats["timeouts"] += 1
                        finish(w.inflight.popleft(), False, True, f"timeout after {timeout:g} s")
                        retire(w)
                    elif not w.ready and now - w.started_at > STARTUP_TIMEOUT:
                        raise WorkerStartError(f"scoring worker did not start within {STARTUP_TIMEOUT:.0f} s")
                # 4. an item near its deadline while others wait: start the standby that takes over after the kill
                if standby_due() and any(now - w.head_since >= standby_after for w in workers):
                    with self._cond:
                        self.stats["standby_started"] += 1
                    workers.append(self._checkout(block=False, extra=True))  # type: ignore[arg-type]
            ok_exit = True
        finally:
            for w in workers:
                self._checkin(w, alive=ok_exit and not w.inflight)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for w in idle:  # ask them all first, then wait: they exit side by side
            try:
                w.send(frame(None))
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for w in idle:
            w.stop(wait=max(0.05, deadline - time.monotonic()), ask=False)

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
