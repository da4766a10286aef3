"""The one launch's console: what a person reads, while the full logs go to a file in the run folder.

``LaunchConsole(run_dir).open()`` points the process's stdout and stderr (file descriptors 1 and 2, so also what
C code, Ray, vLLM and child processes write) at ``<run dir>/launch.log`` (appended to by each launch into the same
folder) and keeps the terminal for:
- the launch's own summary lines (those starting with ``[cadft-verl]`` or ``[cadft_verl.eval]``, printed anywhere
  in this process: they also go to the log);
- one progress line per stage: ``stage 1 (cadft) [####----] 3/8  loss ... nll ... down-weighted ...%``, redrawn in
  place on a terminal, printed as lines (at most ~20 per stage) otherwise (``progress``);
- ``say(text)``: text for the terminal as it is (the cold-start table).
The log file's path is printed when the console opens and when it closes. ``close()`` restores stdout and stderr
(an error raised by the launch is then reported on the terminal as usual).

``console.verbose=true`` (or ``CADFT_VERL_VERBOSE=1``) leaves everything on the terminal, as verl prints it.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import threading
import time

LOG_FILE = "launch.log"
PREFIXES = ("[cadft-verl]", "[cadft_verl.eval]")
BAR_WIDTH = 20
NON_TTY_LINES = 20  # progress lines per stage when the console is not a terminal

_ACTIVE: "LaunchConsole | None" = None


def active() -> "LaunchConsole | None":
    return _ACTIVE


def progress(label: str, step: int, total: int | None, values: dict) -> None:
    """A stage's progress on the launch console (nothing when no console is open, e.g. outside the launch)."""
    if _ACTIVE is not None:
        _ACTIVE.progress(label, step, total, values)


def say(text: str) -> None:
    """Text for the person at the terminal, as it is (and in the log); a plain print outside the launch."""
    if _ACTIVE is not None:
        _ACTIVE.say(text)
    else:
        print(text, flush=True)


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    if value is None or value != value:
        return "–"
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 10:
        return str(int(value))
    return f"{value:.4g}"


def progress_text(label: str, step: int, total: int | None, values: dict) -> str:
    """``label [####------] step/total  key value ...``; values are ``{name: number or text}``."""
    if total:
        done = min(BAR_WIDTH, int(BAR_WIDTH * step / total))
        head = f"{label} [{'#' * done}{'-' * (BAR_WIDTH - done)}] {step}/{total}"
    else:
        head = f"{label} step {step}"
    tail = "  ".join(f"{k} {_fmt(v)}" for k, v in values.items() if v is not None)
    return f"{head}  {tail}" if tail else head


class _Tee(io.TextIOBase):
    """sys.stdout / sys.stderr while the console is open: everything to the log, summary lines also to the terminal."""

    def __init__(self, log: io.TextIOBase, console: "LaunchConsole"):
        self._log = log
        self._console = console
        self._line = ""
        self._lock = threading.RLock()

    def write(self, s: str) -> int:
        with self._lock:
            self._log.write(s)
            self._line += s
            if "\n" in self._line:
                *lines, self._line = self._line.split("\n")
                for line in lines:
                    if line.lstrip("\r").startswith(PREFIXES):
                        self._log.flush()
                        self._console._terminal(line.lstrip("\r") + "\n")
        return len(s)

    def flush(self) -> None:
        self._log.flush()

    def fileno(self) -> int:
        return self._log.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self):
        return getattr(self._log, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self._log, "errors", "strict")


class LaunchConsole:
    def __init__(self, run_dir: str, verbose: bool = False, log_name: str = LOG_FILE, created: bool | None = None,
                 keep_out: tuple[str, ...] = ("launch.lock",)):
        """``created``: whether this launch made the run folder (default: it does not exist yet when the console
        opens); a failed launch that made it and wrote nothing there but its log (and ``keep_out``) removes it."""
        self.log_path = os.path.join(os.path.abspath(run_dir), log_name)
        self._made = created
        self._keep_out = set(keep_out)
        self.verbose = verbose or os.environ.get("CADFT_VERL_VERBOSE") == "1"
        self._created = False  # open() created the run folder
        self._term = None  # the terminal's stdout (a duplicated file descriptor)
        self._saved = None
        self._open_line = False  # a progress line is drawn in place (terminal) and not yet ended
        self._printed: dict[str, int] = {}
        self._lock = threading.RLock()
        self.tty = False

    # -------------------------------------------------------------------------------------------------------
    def open(self) -> "LaunchConsole":
        global _ACTIVE
        # removed again if nothing else is written
        self._created = self._made if self._made is not None else not os.path.exists(os.path.dirname(self.log_path))
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        if self.verbose:
            self._term = os.dup(1)
            self.tty = os.isatty(self._term)
            _ACTIVE = self
            return self
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, f"\n===== launch {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n".encode())
        self._term = os.dup(1)
        self._term_err = os.dup(2)
        self.tty = os.isatty(self._term)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self)
        sys.stderr = _Tee(sys.stderr, self)
        _ACTIVE = self
        print(f"[cadft-verl] full log (Ray, vLLM, verl): {self.log_path}", flush=True)
        return self

    def close(self, failed: bool = False) -> None:
        global _ACTIVE
        if _ACTIVE is not self:
            return
        self._end_line()
        run_dir = os.path.dirname(self.log_path)
        # a launch that failed before writing anything but its log (bad input): leave no run folder behind
        untouched = failed and self._created and \
            set(os.listdir(run_dir)) <= {os.path.basename(self.log_path), *self._keep_out}
        if self._saved is not None:
            print(f"[cadft-verl] launch failed before any stage started: nothing written to {run_dir}" if untouched
                  else f"[cadft-verl] {'launch failed; ' if failed else ''}full log: {self.log_path}", flush=True)
            sys.stderr.flush()
            sys.stdout, sys.stderr = self._saved
            os.dup2(self._term, 1)
            os.dup2(self._term_err, 2)
            os.close(self._term_err)
        os.close(self._term)
        self._saved = self._term = None
        _ACTIVE = None
        if untouched:
            shutil.rmtree(run_dir, ignore_errors=True)

    def __enter__(self):
        return self.open()

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False

    # -------------------------------------------------------------------------------------------------------
    def _terminal(self, text: str) -> None:
        with self._lock:
            if self._open_line:
                text = "\n" + text
                self._open_line = False
            os.write(self._term, text.encode("utf-8", "replace"))

    def _end_line(self) -> None:
        with self._lock:
            if self._open_line and self._term is not None:
                os.write(self._term, b"\n")
            self._open_line = False

    def say(self, text: str) -> None:
        """Text for the terminal as it is; also in the log."""
        if self.verbose or self._saved is None:
            print(text, flush=True)
            return
        sys.stdout.flush()
        self._saved[0].write(text + "\n")
        self._saved[0].flush()
        self._terminal(text + "\n")

    def progress(self, label: str, step: int, total: int | None, values: dict) -> None:
        text = progress_text(label, step, total, values)
        if self.verbose:
            return  # verl's own bars and metric dumps are on the terminal
        with self._lock:
            if self.tty:
                os.write(self._term, ("\r\033[K" + text).encode("utf-8", "replace"))
                self._open_line = True
                if total and step >= total:
                    self._end_line()
                return
            every = max(1, -(-(total or 1) // NON_TTY_LINES)) if total else 1
            if step % every == 0 or (total and step >= total) or self._printed.get(label) is None:
                self._printed[label] = step
                os.write(self._term, (text + "\n").encode("utf-8", "replace"))
