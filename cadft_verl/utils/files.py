"""Files a later run reads: written whole or not at all, read back tolerantly, and folders taken by one process.

- ``atomic_path`` / ``atomic_folder`` / ``write_json`` / ``write_text`` / ``write_jsonl``: the output goes to a temporary name in the same
  folder (unique per process) and replaces the old file only once it is complete, so a kill leaves either the old
  file or the new one, never a cut one, and two writers never share a temporary file.
- ``read_json``: ``None`` for a missing file; a cut or corrupt one is an error naming the file, or, with
  ``tolerant=True`` (a cache or a marker that can be redone), ``None`` with a warning.
- ``read_jsonl`` / ``append_jsonl``: append-only logs (per-sample log, rewrite audit, metric histories, eval samples).
  A kill during an append leaves a cut last line: the reader drops it with a warning, and the next append first cuts
  it off, so the file never holds a broken line in the middle. A broken line elsewhere is an error naming the file and
  the line.
- ``FolderLock``: one process at a time in a folder (the launch's run folder, the study's folder). It is an
  ``fcntl.flock`` on a lock file: the kernel drops it when the holder dies, so a lock left behind by a killed process,
  an empty lock file or two processes that find the same stale lock at once are all safe. The file records the
  holder's pid and host for the refusal message, and is removed when its holder releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
import warnings


# ------------------------------------------------------------------------------------------------ atomic writes
def temp_path(path: str) -> str:
    """The temporary name (unique per process, hidden, in the same folder) that ``path`` is written under before
    ``os.replace``; the folder is created."""
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on an exception it is removed."""
    path = os.path.abspath(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str):
    """Yields a temporary folder beside ``path`` (one a killed build left is removed first); on success it is renamed
    to ``path`` (which must not exist), on an exception it is removed. For a folder built whole, like a cached model."""
    path = os.path.abspath(path)
    tmp = temp_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_json(path: str, obj, indent: int | None = 2) -> str:
    """``obj`` as JSON (values JSON cannot hold are written as their ``str``), atomically."""
    return write_text(path, json.dumps(obj, indent=indent, default=str, ensure_ascii=False) + "\n")


def write_jsonl(path: str, rows) -> str:
    """One JSON object a line, atomically (rewriting an append-only file, e.g. cut back to a resume's step)."""
    return write_text(path, "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows))


# ------------------------------------------------------------------------------------------------ reading
def read_json(path: str, tolerant: bool = False):
    """The JSON value in ``path``; ``None`` when there is no file. A file that does not parse (cut by a kill, edited
    by hand) raises a ``ValueError`` naming it, or with ``tolerant`` gives ``None`` and a warning."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        if tolerant:
            warnings.warn(f"{path}: not valid JSON ({e}); ignored", stacklevel=2)
            return None
        raise ValueError(f"{path}: not valid JSON ({e}); delete the file to have it written again") from None


def read_jsonl(path: str, warn: bool = True) -> list:
    """The rows of an append-only JSON-lines file (``[]`` when there is none). A cut last line (a kill during an
    append, or a line still being written while another process reads) is dropped, with a warning unless ``warn`` is
    false; a broken line before the last is a ``ValueError`` naming the file and line."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if all(not rest.strip() for rest in lines[number:]):
                if warn:
                    warnings.warn(f"{path}: line {number} is cut (a write was interrupted); dropped", stacklevel=2)
                break
            raise ValueError(f"{path}: line {number} is not valid JSON ({e})") from None
    return rows


def _cut_partial_line(f) -> None:
    """Cut a last line that has no newline (an interrupted append) off an open ``r+b`` file, leaving it at its end."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size == 0:
        return
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return
    keep, chunk = 0, 1 << 16
    pos = size
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        block = f.read(pos - start)
        at = block.rfind(b"\n")
        if at >= 0:
            keep = start + at + 1
            break
        pos = start
    f.truncate(keep)
    f.seek(keep)


def append_jsonl(path: str, *rows) -> None:
    """Append rows to an append-only JSON-lines file, after cutting off a cut last line left by a kill."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with open(path, "a+b") as f:
        _cut_partial_line(f)
        f.write(data)
        f.flush()


# ------------------------------------------------------------------------------------------------ folder lock
class FolderBusyError(RuntimeError):
    """Another live process holds the folder's lock."""


def _holder(path: str) -> dict:
    info = read_json(path, tolerant=True) if os.path.isfile(path) else None
    return info if isinstance(info, dict) else {}


class FolderLock:
    """``with FolderLock(folder, "launch.lock", what="launch"):`` one process at a time in ``folder``.

    A second process is refused with a ``FolderBusyError`` naming the holder's pid and host. The lock is an
    ``fcntl.flock``, so it ends with its holder, however it ends; a release removes the file, a kill leaves it
    behind (harmless: nobody holds it)."""

    def __init__(self, folder: str, name: str, what: str = "process"):
        self.folder = os.path.abspath(folder)
        self.path = os.path.join(self.folder, name)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        os.makedirs(self.folder, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _holder(self.path)
                who = (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}" if holder
                       else "another process")
                raise FolderBusyError(
                    f"{self.folder} is in use by another {self.what} ({who}, lock file {self.path}): wait for it to "
                    "end or stop it, or use another folder") from None
            try:  # the holder before us removes the file as it ends: a lock on a removed file holds nothing
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info + b"\n", 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then drop the lock (a process that opened the file meanwhile sees it removed)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def lock_holder(folder: str, name: str) -> dict | None:
    """``{pid, host, ...}`` of the live process holding ``folder/name``, or ``None`` when nobody holds it (no file, an
    empty one, or one left by a dead process)."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path) or {"pid": None, "host": None}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
