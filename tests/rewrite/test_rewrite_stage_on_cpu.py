"""Stage 1 with rewriting, end to end through the one launch (tiny model, CPU, 2 FSDP workers on Ray).

Part of the training data is deliberately incompatible (noise targets). After the warm-up, rewrite rounds run; the
audit must show that the candidates are among the noisy samples, that verification rejects wrong answers, and training
must go on with the rewritten targets. A kill after a rewrite round and a rerun must give the same history, targets
and weights as an uninterrupted run.

The generator here is a deterministic test generator (``fake_generator.FakeGenerator``, no rollout engine needed);
``test_rewrite_rollout_on_cpu.py`` runs the same path through verl's vLLM rollout replica.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from launch import launch, launch_and_kill_when

HERE = os.path.dirname(__file__)


def rewrite_args(inputs, run_dir, steps=6, generator="fake_generator:FakeGenerator", extra=(), every=2):
    return [
        "recipe=cadft",
        "profile=cpu",
        f"actor_rollout_ref.model.path={inputs['model']}",
        f"cadft.data.train_files={inputs['data_file']}",
        "cadft.data.train_batch_size=16",
        "cadft.data.micro_batch_size_per_gpu=4",
        "cadft.data.max_length=512",
        "cadft.optim.lr=1e-3",
        "cadft.optim.lr_warmup_steps_ratio=0",
        f"cadft.trainer.total_training_steps={steps}",
        "cadft.rewrite.start=3",
        f"cadft.rewrite.every={every}",
        f"cadft.rewrite.fraction={4 / inputs['rows']}",
        "cadft.rewrite.prob=1.0",
        "cadft.rewrite.n=2",
        f"cadft.rewrite.generator={generator}",
        f"trainer.default_local_dir={run_dir}",
        "trainer.logger=[console,file]",
        *extra,
    ]


@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("CADFT_FAKE_GEN", "mixed")


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _audit(stage, step):
    with open(os.path.join(stage, f"global_step_{step}", "rewrite", "audit.jsonl")) as f:
        return [json.loads(line) for line in f]


def _target_tokens(inputs, data_file):
    """index, text -> the response tokens the loss counts for that sample with that target (verl's SFT dataset)."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from cadft_verl.rewrite import RewritableSFTDataset

    tok = AutoTokenizer.from_pretrained(inputs["model"])
    cfg = OmegaConf.create({"pad_mode": "no_padding", "truncation": "right", "max_length": 512})
    ds = RewritableSFTDataset(MultiTurnSFTDataset(data_file, tok, cfg))
    return lambda index, text: int(ds.item_with_target(index, text)["loss_mask"].sum())


def _next_visit(stage, index, after_step):
    """(step, response tokens) of the first training visit of ``index`` after ``after_step`` (samples.jsonl)."""
    with open(os.path.join(stage, "samples.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec["step"] > after_step and index in rec["idx"]:
                return rec["step"], rec["n"][rec["idx"].index(index)]
    return None


def _assert_rewrites_trained_at_next_use(stage, audit, tokens):
    accepted = [r for r in audit if r["accepted"]]
    assert accepted
    for r in accepted:
        visit = _next_visit(stage, r["index"], r["step"])
        assert visit is not None, f"rewrite of {r['index']} after step {r['step']} was never trained on"
        new, old = tokens(r["index"], r["new_text"]), tokens(r["index"], r["old_text"])
        assert new != old and visit[1] == new, (r["index"], visit, new, old)
    # a rewritten sample is not rewritten again in the next round
    rounds = sorted({r["step"] for r in audit})
    for first, second in zip(rounds, rounds[1:]):
        again = {r["index"] for r in audit if r["step"] == second} & {r["index"] for r in accepted if r["step"] == first}
        assert not again, f"rewritten after step {first} and candidates again after step {second}: {again}"


def test_rewrite_rounds_pick_incompatible_samples_verify_and_training_goes_on(tmp_path, noisy_inputs, fake_env):
    run = tmp_path / "run"
    before = _sha(noisy_inputs["data_file"])
    # 12 steps of a 16-step epoch (a single pass); each round looks ahead over the 4-5 steps until the next one
    proc = launch(rewrite_args(noisy_inputs, run, steps=12, every=5))
    stage = run / "stage1_cadft"
    assert "rewrite rounds after steps [3, 8]" in proc.stdout
    assert json.loads((run / "summary.json").read_text())["results"]["stage1"]["steps"] == 12
    audit = _audit(stage, 12)
    assert sorted({r["step"] for r in audit}) == [3, 8]
    chosen = {r["index"] for r in audit}
    assert chosen <= noisy_inputs["noisy"], f"non-noisy samples chosen: {chosen - noisy_inputs['noisy']}"
    for r in audit:
        # one right and one wrong answer per sample: the wrong one is rejected by verification
        assert r["generated"] == 2 and r["verified"] == 1 and r["accepted"], r
        assert "#### " in r["new_text"] and r["old_nll"] > r["new_nll"]
    targets = json.loads((stage / "global_step_12" / "rewrite" / "targets.json").read_text())
    assert set(map(int, targets)) == chosen
    rows = [json.loads(line)["data"] for line in (run / "metrics" / "cadft-verl" / "cadft_stage1.jsonl").open()]
    assert len(rows) == 12
    for step in (3, 8):
        m = rows[step - 1]
        assert m["stage1/rewrite/candidates"] == 4 and m["stage1/rewrite/accepted"] == 4
        assert m["stage1/rewrite/generated"] == 8 and m["stage1/rewrite/verified"] == 4
        assert m["stage1/rewrite/failed"] == 0 and m["stage1/rewrite/nll_after"] < m["stage1/rewrite/nll_before"]
        assert m["stage1/rewrite/lookahead_scored"] == 16 * (5 if step == 3 else 4)
    assert "stage1/rewrite/accepted" not in rows[3]
    assert (stage / "global_step_12" / "rewrite" / "train_rewritten.parquet").exists()
    assert _sha(noisy_inputs["data_file"]) == before  # the original data file is never modified
    # single pass: candidates came from the look-ahead, and each accepted rewrite is
    # the target the loss trained on when the sample's turn came
    assert {r["extra"]["selected_by"] for r in audit} == {"lookahead"}
    _assert_rewrites_trained_at_next_use(stage, audit, _target_tokens(noisy_inputs, noisy_inputs["data_file"]))


def test_two_epoch_stage_rewrites_persistently_incompatible_samples_and_trains_them_next_epoch(
        tmp_path, noisy_inputs, fake_env):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(noisy_inputs["data_file"]).to_pylist()[:48]  # 3 steps of 16 per epoch
    small = tmp_path / "train48.parquet"
    pq.write_table(pa.Table.from_pylist(rows), small)
    noisy = {i for i in noisy_inputs["noisy"] if i < 48}
    inputs = {**noisy_inputs, "data_file": str(small), "rows": 48}
    run = tmp_path / "run"
    proc = launch(rewrite_args(inputs, run, steps=6))
    assert "candidates by history, >= 1 visits" in proc.stdout  # two epochs: one visit, one left to train on
    stage = run / "stage1_cadft"
    audit = _audit(stage, 6)
    assert {r["extra"]["selected_by"] for r in audit} == {"history"}
    first = [r for r in audit if r["step"] == 3]
    # after one visit under a near-random model a clean demonstration can rank among the top z: most do not
    chosen = {r["index"] for r in first}
    assert first and len(chosen & noisy) >= len(chosen) - 1 and all(r["accepted"] for r in first), (chosen, noisy)
    _assert_rewrites_trained_at_next_use(stage, audit, _target_tokens(inputs, str(small)))


def test_failed_round_keeps_originals_and_training_continues(tmp_path, noisy_inputs, fake_env, monkeypatch):
    monkeypatch.setenv("CADFT_FAKE_GEN", "raise")
    run = tmp_path / "run"
    proc = launch(rewrite_args(noisy_inputs, run, steps=4))
    stage = run / "stage1_cadft"
    assert "FAILED" in proc.stdout and "fake rollout engine crashed" in proc.stdout
    audit = _audit(stage, 4)
    assert audit and all(not r["accepted"] and r["reason"].startswith("round failed") for r in audit)
    assert json.loads((stage / "global_step_4" / "rewrite" / "targets.json").read_text()) == {}
    rows = [json.loads(line)["data"] for line in (run / "metrics" / "cadft-verl" / "cadft_stage1.jsonl").open()]
    assert len(rows) == 4 and rows[2]["stage1/rewrite/failed"] == 1 and rows[2]["stage1/rewrite/accepted"] == 0


def test_rewrite_needs_a_rollout_engine_or_rewrite_disabled(tmp_path, noisy_inputs):
    import importlib.util

    # the rollout engine the launch is told to use must be one this environment lacks: vLLM where it is not
    # installed, else SGLang (verl's other rollout engine)
    engine = next((e for e in ("vllm", "sglang") if importlib.util.find_spec(e) is None), None)
    if engine is None:
        pytest.skip("both vLLM and SGLang are installed: no missing rollout engine to report")
    args = rewrite_args(noisy_inputs, tmp_path / "run", generator="rollout")
    proc = launch([*args, f"actor_rollout_ref.rollout.name={engine}"], check=False)
    assert proc.returncode != 0
    assert "cadft.rewrite.enabled=false" in proc.stderr and f"'{engine}' is not installed" in proc.stderr


def test_kill_after_a_rewrite_round_and_resume_equals_uninterrupted(tmp_path, noisy_inputs, fake_env):
    import torch
    from safetensors.torch import load_file

    args_a = rewrite_args(noisy_inputs, tmp_path / "a", extra=["cadft.trainer.save_freq=1"])
    launch(args_a)
    run_b = tmp_path / "b"
    args_b = rewrite_args(noisy_inputs, run_b, extra=["cadft.trainer.save_freq=1"])
    tracker = run_b / "stage1_cadft" / "latest_checkpointed_iteration.txt"

    def after_first_round():
        return tracker.exists() and tracker.read_text().strip() == "4"

    assert launch_and_kill_when(args_b, after_first_round), "run b never reached its step-4 checkpoint"
    proc = launch(args_b)
    assert "stage 1 resumes from" in proc.stdout + proc.stderr and "rewritten targets restored" in proc.stdout
    a, b = tmp_path / "a" / "stage1_cadft", run_b / "stage1_cadft"
    for step in (5, 6):
        ha = json.loads((a / f"global_step_{step}" / "cadft_history.json").read_text())
        hb = json.loads((b / f"global_step_{step}" / "cadft_history.json").read_text())
        assert ha == hb, f"history differs at step {step}"
        assert (a / f"global_step_{step}" / "rewrite" / "targets.json").read_text() == \
            (b / f"global_step_{step}" / "rewrite" / "targets.json").read_text()
        wa = load_file(str(a / f"global_step_{step}" / "huggingface" / "model.safetensors"))
        wb = load_file(str(b / f"global_step_{step}" / "huggingface" / "model.safetensors"))
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"weight {k} differs at step {step}"
    assert _audit(a, 6) == _audit(b, 6)


def test_rewrite_options_that_cannot_work_with_the_stage_fail_at_start_naming_the_option(tmp_path, noisy_inputs,
                                                                                         fake_env):
    # 6 steps of a 16-step epoch (single pass): a look-ahead larger than the epoch
    proc = launch(rewrite_args(noisy_inputs, tmp_path / "a", extra=["cadft.rewrite.lookahead=1000"]), check=False)
    assert proc.returncode != 0 and "cadft.rewrite.lookahead=1000 is larger than an epoch" in proc.stderr
    # two epochs: three visits before a round can never leave a visit to train the rewrite on
    two_epochs = 2 * noisy_inputs["rows"] // 16  # batch 16
    proc = launch(rewrite_args(noisy_inputs, tmp_path / "b", steps=two_epochs, extra=["cadft.rewrite.min_visits=3"]),
                  check=False)
    assert proc.returncode != 0 and "cadft.rewrite.min_visits=3: no sample can have 3 visits" in proc.stderr
    assert "stage 1 (cadft) [" not in proc.stdout + proc.stderr  # no training step started (no progress line)
