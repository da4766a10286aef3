"""Scoring worker process: ``python -m cadft_verl.reward._worker READ_FD WRITE_FD [MEM_MB]``.

Started by :mod:`cadft_verl.reward.pool` as a fresh interpreter (no fork of the caller, so it is safe from any
thread and independent of the caller's ``__main__``). Protocol over two pipes (``multiprocessing`` connections):

- worker -> parent: ``("ready", pid)`` once imports are done;
- parent -> worker: ``(task_id, pred_answer, gold_answer)``; ``None`` asks it to exit;
- worker -> parent: ``(task_id, correct: bool, error: str | None)`` for each task, in order.

The worker exits when the parent goes away (EOF on its pipe). The parent enforces the deadline by killing it.
"""

from __future__ import annotations

import os
import sys


def _limit_memory(mem_mb: int) -> None:
    if mem_mb <= 0:
        return
    try:
        import resource

        limit = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except Exception:  # pragma: no cover - platform without RLIMIT_AS
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from multiprocessing.connection import Connection

    rconn = Connection(int(argv[0]), writable=False)
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
            task = rconn.recv()
        except (EOFError, OSError):
            return 0
        if task is None:
            return 0
        task_id, pred, gold = task
        try:
            ok = answers_match(pred, gold)
            err = None
        except RecursionError:
            ok, err = False, "RecursionError"
        except MemoryError:
            ok, err = False, "MemoryError"
        except Exception as e:  # noqa: BLE001 - never let one bad item kill the worker
            ok, err = False, f"{type(e).__name__}: {str(e)[:200]}"
        try:
            wconn.send((task_id, bool(ok), err))
        except (BrokenPipeError, OSError):
            return 0


if __name__ == "__main__":
    sys.exit(main())
