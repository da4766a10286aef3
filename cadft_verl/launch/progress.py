"""What the launch shows and records of a stage's metric history (``cadft_verl.integration.metrics_history``'s file):
the console's progress lines while verl's trainer writes it (``HistoryWatcher``) and ``summary.json``'s digest of
it (``history_summary``), both over the few metrics that matter (``STAGE1_KEYS``, ``STAGE2_KEYS``), and stage 2's
one warning when it has almost no signal to learn from (``SignalAlarm``)."""

from __future__ import annotations

from cadft_verl.console import progress as show_progress
from cadft_verl.console import say
from cadft_verl.integration import metrics_history
from cadft_verl.integration.group_signal import SHARE_KEY


def history_summary(path: str, keys: dict[str, str]) -> dict:
    """What ``summary.json`` records of a stage's metric history: the file, its steps, and the first and last value
    of the metrics that matter (``keys``: name -> metric key, or a prefix ending in ``*``)."""
    rows = metrics_history.read_history(path)
    out = {"file": path, "steps": [r["step"] for r in rows]}
    for name, key in keys.items():
        values = [(r["step"], v) for r in rows for v in [pick(r["data"], key)] if v is not None]
        if values:
            out[name] = {"first": {"step": values[0][0], "value": values[0][1]},
                         "last": {"step": values[-1][0], "value": values[-1][1]}}
    return out


def pick(data: dict, key: str):
    """``data[key]``; a key ending in ``*`` is a prefix: the first metric (by name) that starts with it."""
    if not key.endswith("*"):
        return data.get(key)
    found = sorted(k for k in data if k.startswith(key[:-1]))
    return data[found[0]] if found else None


STAGE1_KEYS = {"loss": "stage1/train/loss", "nll": "stage1/cadft/nll",
               "down-weighted": "stage1/cadft/frac_downweighted", "val loss": "stage1/val/loss"}
STAGE2_KEYS = {"reward": "critic/score/mean", "signal": SHARE_KEY, "entropy": "actor/entropy", "val acc": "val-core/*"}


class SignalAlarm:
    """One console warning when the share of prompt groups with unequal rewards (``SHARE_KEY``) stays under
    ``threshold`` for ``steps`` steps in a row: GRPO then learns from almost nothing. It names the levers."""

    def __init__(self, threshold: float = 0.10, steps: int = 3):
        self.threshold, self.steps = threshold, steps
        self.shares: dict[int, float] = {}
        self.warned = False

    def update(self, step: int, share) -> str | None:
        """Record a step's share (a step seen again keeps its first value); the warning's text, the first time the
        last ``steps`` consecutive steps are all under the threshold, else None."""
        if share is None or self.warned or step in self.shares:
            return None
        self.shares[step] = float(share)
        run = [self.shares.get(s) for s in range(step - self.steps + 1, step + 1)]
        if any(v is None or v >= self.threshold for v in run):
            return None
        self.warned = True
        shown = ", ".join(f"{100 * v:.0f}%" for v in run)
        return (f"[cadft-verl] warning: stage 2 has almost no signal: the share of prompt groups whose rewards are "
                f"not all equal (the groups GRPO learns from) was under {100 * self.threshold:.0f}% for "
                f"{self.steps} steps in a row ({shown}, steps {step - self.steps + 1}-{step}). Levers: more "
                "responses per prompt (actor_rollout_ref.rollout.n), a higher rollout temperature "
                "(actor_rollout_ref.rollout.temperature), RL prompts the model solves only sometimes (prompt "
                "difficulty, data.train_files), the learning rate (actor_rollout_ref.actor.optim.lr)")


class HistoryWatcher:
    """Shows a stage's progress on the console from its metric history, as verl's trainer (in a Ray actor) writes
    it: one progress update per new step."""

    def __init__(self, path: str, label: str, total: int | None, keys: dict[str, str], after: int = 0,
                 interval: float = 2.0, alarm: SignalAlarm | None = None):
        import threading

        self.path, self.label, self.total, self.keys, self.alarm = path, label, total, keys, alarm
        self.shown = after - 1  # the validation before the first (or the resumed) step too
        self._keys = float("inf")  # metrics in the row shown last (a later row of that step adds some: shown again)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cadft-history-watcher")

    def poll(self) -> None:
        for row in metrics_history.read_history(self.path):
            if row["step"] > self.shown or (row["step"] == self.shown and len(row["data"]) > self._keys):
                self.shown, self._keys = row["step"], len(row["data"])
                show_progress(self.label, row["step"], self.total,
                              {name: pick(row["data"], key) for name, key in self.keys.items()})
                warning = self.alarm.update(row["step"], row["data"].get(SHARE_KEY)) if self.alarm else None
                if warning:
                    say(warning)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the console must never stop the run
                pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.poll()
        except Exception:  # noqa: BLE001
            pass
        return False
