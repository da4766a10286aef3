"""The scoring pool never blocks on a worker and leaves none behind.

- a worker stuck on an item while the next item is larger than a pipe holds (4-byte characters): every deadline
  holds within about 1 s (the pool once blocked in the pipe write for good);
- two stuck items on two workers time out side by side, not one after the other;
- answers are capped in UTF-8 bytes, not characters;
- a parent killed (SIGKILL) during a slow item takes its worker with it; a worker started from a short-lived thread
  does not die with that thread; a worker stuck in an item ends on its CPU-time limit; a waiting worker whose parent
  is gone leaves.

The fault scenarios run in a child process in its own session, so that a regression fails the test (timeout) instead
of hanging it, and the whole session is killed afterwards, leaving nothing behind either way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOW = "10^{10^{10^{10}}}"  # sympy evaluates the power tower: never finishes
# 19,000 characters (under a 20,000-character cap), 76,000 UTF-8 bytes (more than a pipe's 64 KiB)
BIG = '"\\U0001F600" * 19_000'
# every worker started and ready before the clock starts (two calls at once check out two workers)
WARM = """
from concurrent.futures import ThreadPoolExecutor
def warm(pool, n):
    with ThreadPoolExecutor(n) as ex:
        assert all(s.correct for s in ex.map(lambda _: pool.verify("1/2", "0.5"), range(n)))
    return pool
"""
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, PR_SET_PDEATHSIG")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run_child(code: str, timeout: float) -> dict:
    """Run ``code`` in a new session; its last stdout line is JSON. The session is killed at the end regardless."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        out, err = proc.communicate()
        pytest.fail(f"the scoring child was still running after {timeout:.0f} s (blocked on a worker?)\n{err[-3000:]}")
    finally:
        _kill_session(proc.pid)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _kill_session(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat and int(stat[1]) == pid:
                out.append(int(entry))
    return out


def _stat(pid: int) -> list[str] | None:
    """[state, ppid, ...] of /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie is dead, only not yet reaped


_BATCH = WARM + """
import json, sys, time
from cadft_verl.reward import ScoringPool

SLOW, BIG, TIMEOUT, PREFETCH = {slow!r}, {big}, {timeout!r}, {prefetch!r}
kw = {{}} if PREFETCH is None else {{"prefetch": PREFETCH}}
with warm(ScoringPool(num_workers=2, timeout=TIMEOUT, **kw), 2) as pool:
    stamps = {{}}
    t0 = time.monotonic()
    pairs = [(SLOW, "5"), (BIG, "5"), (SLOW, "6"), (BIG, "6"), ("2", "5")]
    out = pool.verify_many(pairs, on_result=lambda i, s: stamps.__setitem__(i, time.monotonic() - t0))
    total = time.monotonic() - t0
print(json.dumps({{"stamps": stamps, "total": total, "timed_out": [s.timed_out for s in out],
                  "errors": [s.error for s in out], "stats": pool.stats}}))
"""


@pytest.mark.parametrize("prefetch", [None, 2])
def test_stuck_worker_and_a_large_next_item_never_block(prefetch):
    """Two workers, each stuck on an item whose gold answer it shares with a 76 KB next item."""
    timeout = 3.0
    r = _run_child(_BATCH.format(slow=SLOW, big=BIG, timeout=timeout, prefetch=prefetch), timeout=90)
    stamps = {int(k): v for k, v in r["stamps"].items()}
    assert r["timed_out"] == [True, False, True, False, False], r
    for i in (0, 2):  # both stuck items started at once: each is scored a timeout within ~1 s of its deadline
        assert timeout <= stamps[i] <= timeout + 1.0, r
    assert not any(r["errors"][i] for i in (1, 3, 4)), r  # the large items were compared, not refused
    # the rest waits for a stuck item's deadline and a worker start-up at most (loose: start-ups are slow under load)
    assert r["total"] < 2 * timeout + 15.0, r


def test_two_stuck_items_on_two_workers_time_out_together():
    code = WARM + f"""
import json, time
from cadft_verl.reward import ScoringPool
with warm(ScoringPool(num_workers=2, timeout=3), 2) as pool:
    t0 = time.monotonic()
    stamps = {{}}
    pool.verify_many([({SLOW!r}, "5"), ({SLOW!r}, "6")],
                     on_result=lambda i, s: stamps.__setitem__(i, (time.monotonic() - t0, s.timed_out)))
print(json.dumps(stamps))
"""
    stamps = _run_child(code, timeout=60)
    assert [v[1] for v in stamps.values()] == [True, True]
    assert max(v[0] for v in stamps.values()) <= 4.0, stamps  # was 6+ s: the second waited behind the first


def test_item_behind_a_stuck_one_on_one_worker():
    """One worker, a stuck item first: a standby worker, started before the deadline, takes the others. They were
    served only after the kill, by a replacement started then (deadline + a start-up: 11.4 s for a 10 s deadline)."""
    timeout = 4.0
    code = WARM + f"""
import json, time
from cadft_verl.reward import ScoringPool
t = time.monotonic()
with warm(ScoringPool(num_workers=1, timeout={timeout}), 1) as pool:
    startup = time.monotonic() - t  # one worker's start-up on this machine now
    t0 = time.monotonic()
    stamps = {{}}
    out = pool.verify_many([({SLOW!r}, "5"), ("2+3", "5"), ("4", "5")],
                           on_result=lambda i, s: stamps.__setitem__(i, time.monotonic() - t0))
print(json.dumps({{"stamps": stamps, "correct": [s.correct for s in out], "timed_out": [s.timed_out for s in out],
                  "stats": pool.stats, "startup": startup}}))
"""
    r = _run_child(code, timeout=90)
    stamps = {int(k): v for k, v in r["stamps"].items()}
    assert r["correct"] == [False, True, False] and r["timed_out"] == [True, False, False], r
    assert timeout <= stamps[0] <= timeout + 1.0, r
    assert r["stats"]["timeouts"] == 1 and r["stats"]["standby_started"] == 1, r
    # before the deadline where a start-up is quick; in any case sooner than a replacement started at the kill
    assert max(stamps[1], stamps[2]) <= max(timeout + 1.0, stamps[0] + 0.8 * r["startup"]), r


def test_answers_are_capped_in_bytes():
    from cadft_verl.reward import ScoringPool, score_batch
    from cadft_verl.reward.pool import MAX_MESSAGE_BYTES
    from cadft_verl.reward.scorer import MAX_ANSWER_BYTES

    wide = "\U0001F600" * (MAX_ANSWER_BYTES // 4 + 10)  # few characters, too many bytes
    assert len(wide) < MAX_ANSWER_BYTES < len(wide.encode())
    out = score_batch([("\\boxed{" + wide + "}", "5"), ("\\boxed{" + wide + "}", wide)], num_workers=0)
    assert out[0]["error"] == "answer too long" and out[0]["score"] == 0.0
    assert out[1]["score"] == 1.0  # literally equal: right without math-verify
    with ScoringPool(num_workers=1, timeout=5) as pool:
        huge = "\U0001F600" * (MAX_MESSAGE_BYTES // 4)
        s = pool.verify_many([(huge, "5")])[0]
        assert not s.correct and s.error.startswith("answer too long") and pool.stats["workers_started"] <= 1
        assert pool.verify(huge, "5").error.startswith("answer too long")


@linux_only
def test_killed_parent_leaves_no_worker():
    child = subprocess.Popen(
        [sys.executable, "-c", WARM + textwrap.dedent(f"""
            from cadft_verl.reward import ScoringPool
            pool = warm(ScoringPool(num_workers=1, timeout=600), 1)
            print("ready", flush=True)
            pool.verify({SLOW!r}, "5")
        """)],
        stdout=subprocess.PIPE, text=True, env=_env(), start_new_session=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        workers = _children(child.pid)
        assert len(workers) == 1 and _alive(workers[0])
        time.sleep(1.5)  # the worker is deep in the slow item
        assert _alive(workers[0])
        child.kill()
        child.wait(10)
        t0 = time.monotonic()
        while _alive(workers[0]) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        lived = time.monotonic() - t0
        assert not _alive(workers[0]), f"the worker {workers[0]} outlived its killed parent by {lived:.1f} s"
    finally:
        _kill_session(child.pid)


@linux_only
def test_worker_started_from_a_short_lived_thread_survives_it():
    """PR_SET_PDEATHSIG follows the thread that started a process: the pool starts workers from a long-lived one."""
    import threading

    from cadft_verl.reward import ScoringPool

    with ScoringPool(num_workers=1, timeout=10) as pool:
        th = threading.Thread(target=lambda: pool.verify("1/2", "0.5"))
        th.start()
        th.join(120)
        (w,) = pool._idle
        time.sleep(0.5)
        assert w.proc.poll() is None, "the worker died with the thread that started it"
        assert pool.verify("2/4", "0.5").correct
        assert pool.stats["workers_started"] == 1


def test_worker_stuck_in_an_item_ends_on_its_cpu_limit():
    from multiprocessing.connection import Connection

    from cadft_verl.reward.pool import frame

    c_read, p_write = os.pipe()
    p_read, c_write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "cadft_verl.reward._worker", str(c_read), str(c_write), "0",
                             str(os.getpid())], pass_fds=(c_read, c_write), env=_env())
    os.close(c_read)
    os.close(c_write)
    recv = Connection(p_read, writable=False)
    try:
        assert recv.poll(120) and recv.recv()[0] == "ready"
        os.write(p_write, frame((1, SLOW, "5", 1.0)))  # 1 CPU second for this item (wall time: more under load)
        rc = proc.wait(timeout=120)
        assert rc == -signal.SIGXCPU, rc
    finally:
        proc.kill()
        proc.wait()
        os.close(p_write)
        recv.close()


def test_waiting_worker_leaves_when_its_parent_is_gone():
    """The fallback for a parent-death signal that did not arrive: the idle wait checks ``os.getppid()``."""
    from cadft_verl.reward._worker import PARENT_CHECK_S, read_frame

    r, w = os.pipe()  # the write end stays open: no EOF to notice
    try:
        t0 = time.monotonic()
        with pytest.raises(EOFError, match="parent gone"):
            read_frame(r, parent_pid=os.getppid() + 1_000_000)  # not our parent: as if ours had died
        assert time.monotonic() - t0 < PARENT_CHECK_S + 1.0
    finally:
        os.close(r)
        os.close(w)
