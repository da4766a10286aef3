"""Scoring worker process: ``python -m cadft_verl.reward._worker READ_FD WRITE_FD MEM_MB PARENT_PID``.

Started by :mod:`cadft_verl.reward.pool` as a fresh interpreter (no fork of the caller, so it is safe from any
thread and independent of the caller's ``__main__``). Protocol over two pipes:

- worker -> parent (a ``multiprocessing`` connection): ``("ready", pid)`` once imports are done, then
  ``(task_id, correct: bool, error: str | None)`` for each task, in order (small messages: errors are cut to 200
  characters);
- parent -> worker: frames of an 8-byte big-endian length and a pickle (``cadft_verl.reward.pool.frame``), each
  ``(task_id, pred_answer, gold_answer, cpu_seconds)``; ``None`` asks it to exit. The parent writes them from its own
  buffer to a non-blocking pipe, so a worker stuck on one item can never stall the parent, whatever the size of the
  next item.

The parent enforces each item's deadline by killing the worker. The worker never outlives its parent:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills it when its parent dies, even in the middle of
  a comparison that never returns (the pool starts every worker from one long-lived thread, because the signal
  follows the *thread* that started the process);
- while it waits for work, it checks ``os.getppid()`` every second and leaves when the parent is gone (and on EOF);
- during each item, ``RLIMIT_CPU`` is set to the CPU time used so far plus ``cpu_seconds`` (the item's deadline plus
  a margin), so an item still running long after its deadline ends the worker (SIGXCPU) even if nothing else does.
"""

from __future__ import annotations

import os
import pickle
import select
import sys

#: how often (seconds) a waiting worker checks that its parent is still there
PARENT_CHECK_S = 1.0


def _limit_memory(mem_mb: int) -> None:
    if mem_mb <= 0:
        return
    try:
        import resource

        limit = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:  # pragma: no cover - platform without RLIMIT_AS
        pass


def _limit_cpu(seconds: float | None) -> None:
    """CPU-time limit: ``seconds`` more than used so far (``None``: back to the hard limit, i.e. none while idle)."""
    try:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if seconds is None:
            soft = hard
        else:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            soft = int(ru.ru_utime + ru.ru_stime + seconds) + 1
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except Exception:  # pragma: no cover - platform without RLIMIT_CPU
        pass


def _die_with_parent(parent_pid: int | None) -> None:
    """Ask the kernel to kill this process when its parent dies (Linux), and leave now if it already has."""
    import signal

    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU (the CPU limit) must not write a core file
    except Exception:  # pragma: no cover
        pass
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except Exception:  # pragma: no cover - no libc prctl: the getppid check and the CPU limit remain
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the signal was armed


def _parent_gone(parent_pid: int | None) -> bool:
    return parent_pid is not None and os.getppid() != parent_pid


def _read_exact(fd: int, n: int, parent_pid: int | None) -> bytes:
    """``n`` bytes from ``fd``; ``EOFError`` on end of file or when the parent is gone."""
    buf = bytearray()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while len(buf) < n:
        if not poller.poll(int(PARENT_CHECK_S * 1000)):
            if _parent_gone(parent_pid):
                raise EOFError("parent gone")
            continue
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("end of file")
        buf += chunk
    return bytes(buf)


def read_frame(fd: int, parent_pid: int | None = None):
    """The next message written by ``cadft_verl.reward.pool.frame``."""
    from cadft_verl.reward.pool import FRAME_HEADER

    (size,) = FRAME_HEADER.unpack(_read_exact(fd, FRAME_HEADER.size, parent_pid))
    return pickle.loads(_read_exact(fd, size, parent_pid))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parent_pid = int(argv[3]) if len(argv) > 3 else None
    _die_with_parent(parent_pid)
    from multiprocessing.connection import Connection

    rfd = int(argv[0])
    wconn = Connection(int(argv[1]), readable=False)
    _limit_memory(int(argv[2]) if len(argv) > 2 else 0)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    from cadft_verl.reward.core import _math_verify, answers_match

    _math_verify()  # import math-verify / sympy before saying ready
    try:  # and build the LaTeX parser once, so its set-up time never counts against an item's deadline
        answers_match("\\frac{1}{2}", "0.5")
    except Exception:  # noqa: BLE001
        pass
    wconn.send(("ready", os.getpid()))
    while True:
        try:
            task = read_frame(rfd, parent_pid)
        except (EOFError, OSError):
            return 0
        if task is None:
            return 0
        task_id, pred, gold, cpu_s = task
        _limit_cpu(cpu_s)
        try:
            ok = answers_match(pred, gold)
            err = None
        except RecursionError:
            ok, err = False, "RecursionError"
        except MemoryError:
            ok, err = False, "MemoryError"
        except Exception as e:  # noqa: BLE001 - never let one bad item kill the worker
            ok, err = False, f"{type(e).__name__}: {str(e)[:200]}"
        _limit_cpu(None)
        try:
            wconn.send((task_id, bool(ok), err))
        except (BrokenPipeError, OSError):
            return 0


if __name__ == "__main__":
    sys.exit(main())
