"""Stage 2's signal: the share of prompt groups whose rewards are not all equal (what verl's trainer logs at every
step through cadft_verl.integration.group_signal), its place on the console's progress line, and the one warning
when it stays under 10% for 3 steps in a row."""

import json

import pytest

from cadft_verl.integration.group_signal import GROUPS_KEY, SHARE_KEY, signal_share, with_group_signal
from cadft_verl.launch.progress import STAGE2_KEYS, HistoryWatcher, SignalAlarm


def test_the_share_counts_groups_whose_rewards_differ():
    uids = ["a", "a", "a", "b", "b", "c", "c", "d"]
    rewards = [1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    # a: mixed; b: all right; c: all wrong; d: one response (never mixed: rollout.n = 1 gives 0 by construction)
    assert signal_share(uids, rewards) == (0.25, 4)
    assert signal_share(["x", "x"], [0.5, 0.25]) == (1.0, 1)  # any difference counts, not only right/wrong
    assert signal_share(["p", "q"], [1.0, 0.0]) == (0.0, 2)  # n = 1: no group can be mixed
    assert signal_share([], []) == (0.0, 0)


def test_the_trainer_logs_the_share_in_the_steps_metrics_then_computes_verls_advantage(monkeypatch):
    calls = []

    class Trainer:  # stands in for verl's v1 PPOTrainer: its advantage hook gets the step's metrics dict
        def _compute_advantage(self, batch, metrics):
            calls.append(dict(metrics))
            return "advantages of " + batch

    monkeypatch.setattr("cadft_verl.integration.group_signal.batch_signal",
                        lambda batch: {SHARE_KEY: 0.5, GROUPS_KEY: 8})
    cls = with_group_signal(Trainer)
    metrics = {"actor/entropy": 0.1}
    assert issubclass(cls, Trainer) and cls().\
        _compute_advantage("the batch", metrics) == "advantages of the batch"
    assert metrics == {"actor/entropy": 0.1, SHARE_KEY: 0.5, GROUPS_KEY: 8} and calls == [metrics]


def test_verls_trainer_registry_entry_is_extended_in_place_once():
    pytest.importorskip("transfer_queue")
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    from cadft_verl.integration.group_signal import install

    original = TRAINER_REGISTRY["sync"]
    try:
        cls = install("sync")
        assert TRAINER_REGISTRY["sync"] is cls and issubclass(cls, original) and cls.logs_group_signal
        assert install("sync") is cls  # not wrapped twice
    finally:
        TRAINER_REGISTRY["sync"] = original


@pytest.mark.parametrize("shares, warn_at", [
    ([0.05, 0.0, 0.09], 3),  # 3 steps under 10%
    ([0.05, 0.0, 0.25, 0.0, 0.05, 0.0], 6),  # a step at 25% starts the count again
    ([0.05, 0.1, 0.0, 0.05], None),  # 10% is not under 10%
    ([0.0, 0.0], None),
])
def test_the_warning_comes_once_after_three_steps_in_a_row_under_ten_percent(shares, warn_at):
    alarm = SignalAlarm()
    said = [step for step, share in enumerate(shares + [0.0, 0.0, 0.0] * (warn_at is not None), 1)
            if alarm.update(step, share)]
    assert said == ([warn_at] if warn_at else [])


def test_the_warning_names_the_levers_and_a_step_seen_again_counts_once():
    alarm = SignalAlarm()
    assert alarm.update(1, 0.0) is None and alarm.update(1, 0.0) is None and alarm.update(2, 0.05) is None
    text = alarm.update(3, 0.0)
    for lever in ("actor_rollout_ref.rollout.n", "actor_rollout_ref.rollout.temperature", "prompt difficulty",
                  "actor_rollout_ref.actor.optim.lr", "0%, 5%, 0%", "steps 1-3"):
        assert lever in text


def test_the_progress_line_shows_share_and_entropy_and_the_watcher_warns_once(tmp_path, capsys):
    history = tmp_path / "stage2.jsonl"
    rows = [{"step": 0, "data": {"val-core/arith/acc/mean@1": 0.3}}]
    rows += [{"step": s, "data": {"critic/score/mean": 0.1, SHARE_KEY: 0.0, "actor/entropy": 0.08}} for s in (1, 2, 3, 4)]
    history.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert STAGE2_KEYS["signal"] == SHARE_KEY and STAGE2_KEYS["entropy"] == "actor/entropy"
    watcher = HistoryWatcher(str(history), "stage 2 (grpo)", 4, STAGE2_KEYS, alarm=SignalAlarm())
    watcher.poll()
    watcher.poll()
    out = capsys.readouterr().out
    assert out.count("warning: stage 2 has almost no signal") == 1 and "steps 1-3" in out
