"""Rewriting without a rollout engine: schedule, candidate selection, history, audit, dataset target replacement,
verification, lowest-NLL choice and the failure path (cadft_verl.history, cadft_verl.rewrite)."""

from __future__ import annotations

import json
import math
import os
import sys
import time

import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_generator import FakeGenerator  # noqa: E402

from cadft_verl.history import CompatibilityHistory  # noqa: E402
from cadft_verl.rewrite import (  # noqa: E402
    INDEX_KEY,
    IndexedSFTCollator,
    RewritableSFTDataset,
    RewriteConfig,
    RewriteRound,
    RewriteSchedule,
    draw,
    load_rewrite_state,
    num_candidates,
    read_jsonl,
    resolve_steps,
    save_rewrite_state,
    select_candidates,
)


# ------------------------------------------------------------------------------------------------------ schedule
def test_schedule_fractions_of_total_steps():
    s = RewriteSchedule(0.3, 0.2, total_steps=400)
    assert (s.start, s.every) == (120, 80)
    assert s.rounds() == [120, 200, 280, 360]
    assert not s.due(119) and s.due(120) and not s.due(121) and s.due(360) and not s.due(400)


def test_schedule_int_steps_and_never_at_the_last_step():
    s = RewriteSchedule(3, 2, total_steps=7)
    assert s.rounds() == [3, 5]  # 7 is the last step: nothing would train on the rewrite
    assert RewriteSchedule(3000, 1000, total_steps=400).rounds() == []  # paper values: no round in a short run
    assert RewriteSchedule(0.3, 0.2, total_steps=10, enabled=False).rounds() == []
    assert resolve_steps(0.01, 10) == 1 and resolve_steps(5, 10) == 5 and resolve_steps(5.0, 10) == 5


def test_config_defaults_and_validation():
    cfg = RewriteConfig()
    assert (cfg.enabled, cfg.start, cfg.every, cfg.fraction, cfg.prob) == (True, 0.3, 0.2, 0.005, 0.5)
    # multi-epoch stages need two visits by default; single-pass stages look ahead until the next round
    assert (cfg.min_visits, cfg.visits_needed(), cfg.visits_needed(epochs=2), cfg.lookahead) == (None, 2, 1, None)
    assert RewriteConfig(min_visits=3).visits_needed(epochs=2) == 3
    with pytest.raises(ValueError, match="min_visits"):
        RewriteConfig(min_visits=0)
    with pytest.raises(ValueError, match="lookahead"):
        RewriteConfig(lookahead=0)
    assert (cfg.temperature, cfg.top_p, cfg.verify, cfg.score_unvisited) == (0.7, 0.9, True, False)
    with pytest.raises(ValueError, match="cadft.rewrite.bogus"):
        RewriteConfig.from_mapping({"bogus": 1})
    with pytest.raises(ValueError, match="fraction"):
        RewriteConfig(fraction=0.0)
    with pytest.raises(ValueError, match="every"):
        RewriteConfig(every=0)
    with pytest.raises(ValueError, match="fraction < 1"):
        RewriteConfig(start=1.5)


# ------------------------------------------------------------------------------------------------------ history
def test_history_ema_and_visits():
    h = CompatibilityHistory(4, momentum=0.5)
    h.update([0, 1], [2.0, -1.0], step=1)
    h.update([0], [0.0], step=2)
    h.update([0, 3], [float("nan"), 1.0], step=3)  # non-finite z is not a visit
    assert h.ema_z[0] == pytest.approx(1.0) and h.visits[0] == 2 and h.last_step[0] == 2
    assert h.ema_z[1] == -1.0 and h.ema_z[2] is None and h.visits[3] == 1
    assert h.not_visited_since(2) == [1, 2] and h.visited(2) == [0]
    with pytest.raises(IndexError):
        h.update([4], [0.0], step=1)


def test_history_checkpoint_roundtrip(tmp_path):
    h = CompatibilityHistory(5, momentum=0.5)
    h.update([0, 2, 4], [0.5, 1.5, -2.0], step=7)
    path = str(tmp_path / "cadft_history.json")
    h.save(path)
    h2 = CompatibilityHistory(5)
    h2.load(path)
    assert h2 == h and h2.last_step == [7, -1, 7, -1, 7]
    with pytest.raises(ValueError, match="different training data"):
        CompatibilityHistory(6).load(path)


# ------------------------------------------------------------------------------------------------------ selection
def test_candidates_are_the_top_fraction_by_ema_z_with_min_visits():
    h = CompatibilityHistory(200)
    h.update(range(200), [0.01 * i for i in range(200)], step=1)  # z grows with the index
    h.update([199], [-5.0], step=2)  # 199 now has a lower EMA (1.99 -> -1.505)
    assert num_candidates(0.005, 200) == 1 and num_candidates(0.02, 200) == 4
    assert select_candidates(h, 0.02) == [198, 197, 196, 195]
    assert select_candidates(h, 0.02, min_visits=2) == [199]  # only 199 was visited twice
    fresh = CompatibilityHistory(10)
    assert select_candidates(fresh, 0.5) == []  # nothing visited, nothing selected


def test_draw_is_bernoulli_and_reproducible():
    cands = list(range(2000))
    a = draw(cands, 0.5, seed=0, step=10)
    assert a == draw(cands, 0.5, seed=0, step=10) and a != draw(cands, 0.5, seed=0, step=11)
    assert 0.45 < sum(a) / len(a) < 0.55
    assert all(draw(cands, 1.0, 0, 1)) and not any(draw(cands, 0.0, 0, 1))


# ------------------------------------------------------------------------------------------------------ dataset
@pytest.fixture(scope="module")
def sft_dataset(default_inputs):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    tok = AutoTokenizer.from_pretrained(default_inputs["model"])
    cfg = OmegaConf.create({"pad_mode": "no_padding", "truncation": "right", "max_length": 1024})
    path = os.path.join(default_inputs["data"], "sft", "train.parquet")

    def make():
        return RewritableSFTDataset(MultiTurnSFTDataset(path, tok, cfg))

    return make, tok, path


def test_dataset_serves_the_rewritten_target_and_keeps_the_file(sft_dataset, tmp_path):
    make, tok, path = sft_dataset
    before = open(path, "rb").read()
    ds = make()
    assert ds[5][INDEX_KEY] == 5
    old_ids = ds[5]["input_ids"]
    old_target = ds.target(5)
    assert ds.ground_truth(5) is not None and ds.extra_info(5)["index"] is not None
    ds.set_target(5, "A new answer.\n#### 42")
    item = ds[5]
    text = tok.decode(item["input_ids"])
    assert "A new answer." in text and old_target not in text and not (item["input_ids"].shape == old_ids.shape
                                                                        and bool((item["input_ids"] == old_ids).all()))
    # the loss mask covers the new answer
    masked = tok.decode(item["input_ids"][item["loss_mask"].bool()])
    assert "A new answer." in masked
    assert ds.original_target(5) == old_target and ds.targets() == {5: "A new answer.\n#### 42"}
    # a probe of another target leaves the state alone
    probe = ds.item_with_target(6, "probe")
    assert "probe" in tok.decode(probe["input_ids"]) and ds.target(6) != "probe"
    # the collator carries the index as a (batch,) tensor next to verl's nested tensors
    batch = IndexedSFTCollator("no_padding")([ds[5], ds[9], ds[2]])
    assert batch[INDEX_KEY].tolist() == [5, 9, 2] and batch["input_ids"].is_nested
    # persisted next to the checkpoint, restored on resume; the original file is untouched
    out = save_rewrite_state(str(tmp_path), ds, [{"step": 3, "index": 5}])
    frame = pd.read_parquet(os.path.join(out, "train_rewritten.parquet"))
    assert list(frame["cadft_rewritten"]).count(True) == 1 and frame["messages"].iloc[5][-1]["content"].startswith("A new")
    ds2 = make()
    audit = load_rewrite_state(str(tmp_path), ds2)
    assert audit == [{"step": 3, "index": 5}] and ds2.targets() == ds.targets() and ds2.target(5) == ds.target(5)
    assert open(path, "rb").read() == before


# ------------------------------------------------------------------------------------------------------ rounds
class _Scorer:
    """NLL by text: 'step by step' answers are cheap, wrong ones costlier, the originals costliest."""

    def __init__(self, ds):
        self.ds = ds
        self.calls = 0

    def __call__(self, items):
        self.calls += 1
        out = []
        for i, text in items:
            text = self.ds.target(i) if text is None else text
            out.append(1.0 if "step by step" in text else 2.0 if "The result" in text else 5.0 + 0.001 * i)
        return out


def _round(ds, history, gen, **cfg):
    tok = ds.inner.tokenizer
    cfg.setdefault("min_visits", 1)
    return RewriteRound(RewriteConfig(**cfg), ds, history, tok, gen, _Scorer(ds), z_fn=lambda v: v - 3.0,
                        max_length=1024)


def _history_with_bad(ds, bad):
    h = CompatibilityHistory(len(ds))
    h.update(range(len(ds)), [3.0 if i in bad else 0.0 for i in range(len(ds))], step=1)
    return h


def test_round_verifies_and_takes_the_lowest_nll_candidate(sft_dataset):
    make, _, _ = sft_dataset
    ds = make()
    bad = {3, 17, 40, 41}
    h = _history_with_bad(ds, bad)
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    records, m = _round(ds, h, gen, fraction=4 / len(ds), prob=1.0, n=2).run(step=4)
    assert {r.index for r in records} == bad and all(r.drawn for r in records)
    assert gen.prepared == [4] and gen.released == 1
    assert m["rewrite/candidates"] == 4 and m["rewrite/generated"] == 8
    assert m["rewrite/verified"] == 4 and m["rewrite/accepted"] == 4 and m["rewrite/failed"] == 0
    for r in records:
        assert r.accepted and r.reason == "accepted" and r.verified == 1 and "step by step" in r.new_text
        assert r.old_nll > 5 and r.new_nll == 1.0 and r.new_z == pytest.approx(-2.0)
        assert ds.target(r.index) == r.new_text
    assert m["rewrite/nll_before"] > 5 and m["rewrite/nll_after"] == 1.0
    # an accepted sample starts a fresh history, pending until trained on with its new target
    assert h.visits[3] == 0 and h.ema_z[3] is None and h.pending == bad
    records, m = _round(ds, h, gen, fraction=4 / len(ds), prob=1.0, n=2).run(step=6)
    assert not {r.index for r in records} & bad  # not rewritten again in the next round
    h.update([3], [4.0], step=7)  # trained on with the new target
    assert 3 not in h.pending and select_candidates(h, 1 / len(ds), min_visits=1) == [3]


def test_verification_rejects_wrong_answers(sft_dataset, monkeypatch):
    make, _, _ = sft_dataset
    ds = make()
    h = _history_with_bad(ds, {8, 9})
    monkeypatch.setenv("CADFT_FAKE_GEN", "wrong")
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    before = {i: ds.target(i) for i in (8, 9)}
    records, m = _round(ds, h, gen, fraction=2 / len(ds), prob=1.0, n=3).run(step=2)
    assert m["rewrite/generated"] == 6 and m["rewrite/verified"] == 0 and m["rewrite/accepted"] == 0
    for r in records:
        assert not r.accepted and "verifies" in r.reason and r.new_text is not None
        assert ds.target(r.index) == before[r.index]
    assert ds.targets() == {}
    # the paper's unverified replacement takes the lowest-NLL answer even though it is wrong
    records, m = _round(ds, h, gen, fraction=2 / len(ds), prob=1.0, n=3, verify=False).run(step=3)
    assert m["rewrite/accepted"] == 2 and all(r.reason == "accepted (unverified)" for r in records)


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_failed_generation_keeps_the_originals_and_training_goes_on(sft_dataset, monkeypatch, mode):
    make, _, _ = sft_dataset
    ds = make()
    h = _history_with_bad(ds, {1, 2})
    monkeypatch.setenv("CADFT_FAKE_GEN", mode)
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    before = {i: ds.target(i) for i in (1, 2)}
    start = time.time()
    records, m = _round(ds, h, gen, fraction=2 / len(ds), prob=1.0, generation_timeout=0.5).run(step=5)
    assert time.time() - start < 20
    assert m["rewrite/failed"] == 1 and m["rewrite/accepted"] == 0 and "rewrite/time_s" in m
    assert all(r.reason.startswith("round failed") and not r.accepted for r in records)
    assert "crashed" in records[0].reason if mode == "raise" else "did not finish" in records[0].reason
    assert {i: ds.target(i) for i in (1, 2)} == before and ds.targets() == {}
    assert gen.released == 1  # the rollout memory is released even after a failure


def test_prob_and_missing_reference(sft_dataset):
    make, _, _ = sft_dataset
    ds = make()
    h = _history_with_bad(ds, set(range(20)))
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    records, m = _round(ds, h, gen, fraction=20 / len(ds), prob=0.0).run(step=2)
    assert m["rewrite/drawn"] == 0 and gen.calls == [] and all("not drawn" in r.reason for r in records)
    ds.inner.dataframe["extra_info"] = [None] * len(ds)  # no reference answers: nothing can be verified
    records, m = _round(ds, h, gen, fraction=20 / len(ds), prob=1.0).run(step=3)
    assert m["rewrite/drawn"] == 0 and all("no reference" in r.reason for r in records)


def test_score_unvisited_scores_only_samples_not_seen_since_the_last_round(sft_dataset):
    make, _, _ = sft_dataset
    ds = make()
    h = CompatibilityHistory(len(ds))
    h.update([0, 1], [0.0, 0.0], step=4)
    h.update([2], [0.0], step=1)
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    rnd = _round(ds, h, gen, fraction=1 / len(ds), prob=0.0, score_unvisited=True)
    records, m = rnd.run(step=6, previous_round=3)
    assert m["rewrite/scored_unvisited"] == len(ds) - 2
    assert h.visits[0] == 1 and h.visits[2] == 2 and all(v >= 1 for v in h.visits)


def test_audit_records_are_json_lines(tmp_path, sft_dataset):
    make, _, _ = sft_dataset
    ds = make()
    h = _history_with_bad(ds, {4})
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    records, _ = _round(ds, h, gen, fraction=1 / len(ds), prob=1.0, n=2).run(step=9)
    save_rewrite_state(str(tmp_path), ds, [json.loads(r.to_json()) for r in records])
    rows = read_jsonl(str(tmp_path / "rewrite" / "audit.jsonl"))
    assert len(rows) == 1
    row = rows[0]
    assert {"step", "index", "old_nll", "new_nll", "old_z", "new_z", "accepted", "reason", "old_text", "new_text",
            "ema_z", "visits", "uid"} <= set(row)
    assert row["step"] == 9 and row["index"] == 4 and row["accepted"] and math.isfinite(row["old_nll"])
    assert json.loads((tmp_path / "rewrite" / "targets.json").read_text()) == {"4": row["new_text"]}
    # a resume after a kill that cut the audit's last line: the cut record is dropped with a warning
    with open(tmp_path / "rewrite" / "audit.jsonl", "a") as f:
        f.write('{"step": 14, "index": 2, "old_')
    with pytest.warns(UserWarning, match="line 2 is cut"):
        audit = load_rewrite_state(str(tmp_path), make())
    assert [r["index"] for r in audit] == [4]


def test_rejected_candidates_keep_their_history_and_scoring_is_not_training(sft_dataset, monkeypatch):
    make, _, _ = sft_dataset
    ds = make()
    h = _history_with_bad(ds, {8, 9})
    monkeypatch.setenv("CADFT_FAKE_GEN", "wrong")
    gen = FakeGenerator(gold=[ds.ground_truth(i) for i in range(len(ds))])
    _round(ds, h, gen, fraction=2 / len(ds), prob=1.0, n=2).run(step=2)
    assert h.visits[8] == 2 and h.pending == set()  # the originals' scoring pass is a visit
    h.reset(8)
    h.update([8], [1.0], step=3, trained=False)  # a no-grad score does not end the pending state
    assert 8 in h.pending and select_candidates(h, 1.0, min_visits=1).count(8) == 0


def test_lookahead_selector_ranks_the_samples_still_to_come(sft_dataset):
    from cadft_verl.rewrite import LookaheadSelector

    make, _, _ = sft_dataset
    ds = make()
    h = CompatibilityHistory(len(ds))
    window = list(range(10, 40))
    nll = {i: (9.0 if i in (12, 33) else 1.0 + 0.01 * i) for i in window}
    scored = []

    def score(items):
        scored.append([i for i, _ in items])
        return [nll[i] for i, _ in items]

    sel = LookaheadSelector(h, 2 / len(ds), upcoming=lambda step: window, score=score)
    picked = sel(5)
    assert [i for i, _ in picked] == [12, 33] and all(z > 2 for _, z in picked)
    assert scored == [window] and sel.last_window == 30
    h.reset(12)  # rewritten: pending, so left out of the next look-ahead
    assert [i for i, _ in sel(6)][0] == 33 and 12 not in scored[-1]
