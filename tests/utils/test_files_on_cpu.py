"""Files a later run reads, under faults: an interrupted write leaves the old file, a line cut by a kill is dropped
(and cut off before the next append), and one process at a time holds a folder, whatever lock file a dead one left."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from cadft_verl.utils.files import (
    FolderBusyError,
    FolderLock,
    append_jsonl,
    atomic_folder,
    atomic_path,
    lock_holder,
    read_json,
    read_jsonl,
    temp_path,
    write_json,
)


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            f.write('{"v": 2, "cut')
            raise RuntimeError("killed")
    assert read_json(path) == {"v": 1}
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_folder_built_whole_appears_only_when_complete_and_a_killed_build_leaves_nothing(tmp_path):
    out = tmp_path / "cache" / "model"
    with pytest.raises(RuntimeError):
        with atomic_folder(out) as tmp:
            os.makedirs(tmp)
            write_json(os.path.join(tmp, "half.json"), {"v": 0})
            raise RuntimeError("killed while building")
    assert not out.exists() and os.listdir(tmp_path / "cache") == []
    os.makedirs(os.path.join(temp_path(out), "stale"))  # what a killed build of a process with this pid left
    with atomic_folder(out) as tmp:
        assert not os.path.exists(tmp)  # removed first
        os.makedirs(tmp)
        write_json(os.path.join(tmp, "record.json"), {"v": 1})
    assert read_json(out / "record.json") == {"v": 1} and os.listdir(tmp_path / "cache") == ["model"]
    assert os.listdir(out) == ["record.json"]


def test_a_cut_json_file_is_named_or_with_tolerance_ignored(tmp_path):
    path = tmp_path / "eval_key.json"
    path.write_text('{"key": {"model"')
    with pytest.raises(ValueError, match=f"{path}: not valid JSON"):
        read_json(path)
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert read_json(path, tolerant=True) is None
    assert read_json(tmp_path / "missing.json") is None


def test_a_cut_last_line_is_dropped_and_cut_off_before_the_next_append(tmp_path):
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, {"step": 1}, {"step": 2})
    with open(path, "a") as f:
        f.write('{"step": 3, "nll": [0.1, 0.')  # killed mid-append
    with pytest.warns(UserWarning, match="line 3 is cut"):
        assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    append_jsonl(path, {"step": 3, "ok": True})
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}, {"step": 3, "ok": True}]
    assert path.read_text().count("\n") == 3


def test_a_broken_line_before_the_last_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(ValueError, match=f"{path}: line 2 is not valid JSON"):
        read_jsonl(path)


HOLD = textwrap.dedent("""
    import sys, time
    from cadft_verl.utils.files import FolderLock
    lock = FolderLock(sys.argv[1], "launch.lock", what="launch").acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def _holder(folder, seconds=60):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_folder_in_use_is_refused_naming_the_holder_and_freed_when_it_dies(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(FolderBusyError, match=rf"in use by another launch \(pid {proc.pid} on host "):
            FolderLock(tmp_path, "launch.lock", what="launch").acquire()
        assert lock_holder(tmp_path, "launch.lock")["pid"] == proc.pid
    finally:
        proc.kill()  # SIGKILL: no clean-up runs, the lock file stays with its pid in it
        proc.wait()
    assert json.loads((tmp_path / "launch.lock").read_text())["pid"] == proc.pid
    assert lock_holder(tmp_path, "launch.lock") is None  # stale
    with FolderLock(tmp_path, "launch.lock") as lock:
        assert lock_holder(tmp_path, "launch.lock")["pid"] == os.getpid()
    assert lock._fd is None and lock_holder(tmp_path, "launch.lock") is None
    assert not (tmp_path / "launch.lock").exists()  # a release removes the file


def test_an_empty_lock_file_does_not_block(tmp_path):
    (tmp_path / "study.lock").write_text("")
    assert lock_holder(tmp_path, "study.lock") is None
    with FolderLock(tmp_path, "study.lock"):
        pass


def test_of_two_processes_that_find_the_same_stale_lock_exactly_one_takes_it(tmp_path):
    (tmp_path / "launch.lock").write_text(json.dumps({"pid": 999999, "host": "gone"}))
    script = textwrap.dedent("""
        import sys, time
        from cadft_verl.utils.files import FolderBusyError, FolderLock
        time.sleep(float(sys.argv[2]) - time.time())  # both try at the same moment
        try:
            FolderLock(sys.argv[1], "launch.lock").acquire()
            print("took", flush=True)
            time.sleep(2)
        except FolderBusyError:
            print("refused", flush=True)
    """)
    start = str(time.time() + 3)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), start], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["refused", "took"]
