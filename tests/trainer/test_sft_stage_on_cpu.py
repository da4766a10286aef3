"""The drop-in SFT stage on verl's real FSDP2 engine, on the CPU platform (gloo), 1 and 2 ranks."""

import os

import pytest
import torch
from runner import run_sft

# step-1 statistics that must not depend on the split: the weights to 1e-6; z_std to 1e-5, since the no-grad pre-pass
# runs larger micro-batches than training (float32 noise in c, amplified by 1/scale: on this random-init model every
# c is near log(vocab) and the batch std is ~0.07)
STEP1_WEIGHT_STATS = {"cadft/w_mean": 1e-6, "cadft/w_min": 1e-6, "cadft/ess": 1e-5, "cadft/z_std": 1e-5,
                      "cadft/c_loc": 1e-6, "cadft/c_scale": 1e-6}


def test_verl_own_sft_trainer_runs_on_cpu_platform_and_sft_loss_matches_it(tmp_path, tiny_model, sft_parquet):
    verl_rows, _ = run_sft("verl.trainer.sft_trainer", tmp_path / "verl", tiny_model, sft_parquet, nproc=2, steps=2)
    ours, _ = run_sft("cadft_verl.trainer.sft", tmp_path / "ours", tiny_model, sft_parquet, nproc=2, steps=2,
                      overrides=["cadft.loss=sft"])
    assert len(verl_rows) == len(ours) == 2
    for a, b in zip(verl_rows, ours):
        assert a["train/loss"] == pytest.approx(b["train/loss"], abs=1e-6)
        assert a["train/grad_norm"] == pytest.approx(b["train/grad_norm"], rel=1e-5)
    # sft's loss is the token-mean NLL, which our metrics report independently
    assert ours[0]["cadft/nll"] == pytest.approx(ours[0]["train/loss"], rel=1e-5)


def test_exact_weights_independent_of_ranks_and_micro_batches(tmp_path, tiny_model, sft_parquet):
    exact = ["cadft.loss=cadft", "cadft.stats=exact"]
    runs = {
        "1rank_1micro": dict(nproc=1, micro=8),  # statistics from the training forward (in_loss)
        "1rank_4micro": dict(nproc=1, micro=2),  # no-grad pre-pass
        "2rank_4micro": dict(nproc=2, micro=1),  # pre-pass + all-gather over gloo
    }
    first = {}
    for name, kw in runs.items():
        rows, _ = run_sft("cadft_verl.trainer.sft", tmp_path / name, tiny_model, sft_parquet, steps=1,
                          overrides=exact, **kw)
        first[name] = rows[0]
    ref = first["1rank_1micro"]
    assert ref["cadft/frac_downweighted"] > 0
    for name, row in first.items():
        for key, tol in STEP1_WEIGHT_STATS.items():
            assert row[key] == pytest.approx(ref[key], abs=tol), (name, key)
        assert row["train/loss"] == pytest.approx(ref["train/loss"], rel=1e-5), name


def test_dft_and_cadft_train_and_export_a_loadable_hf_model(tmp_path, tiny_model, sft_parquet):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # default options, a high learning rate (the NLL falls fast) and 4 micro-batches per rank (no-grad pre-pass)
    rows, proc = run_sft("cadft_verl.trainer.sft", tmp_path / "cadft", tiny_model, sft_parquet, nproc=1, steps=3,
                         overrides=["optim.lr=5e-3", "optim.lr_warmup_steps_ratio=0"])
    assert rows[-1]["cadft/nll"] < rows[0]["cadft/nll"] - 0.2
    for r in rows:  # every step is weighted against its own global batch
        assert r["cadft/stats_loc_used"] == pytest.approx(r["cadft/c_loc"], abs=1e-5)
        assert abs(r["cadft/z_mean"]) < 1e-4 and r["cadft/z_std"] == pytest.approx(1.0, abs=1e-3)
        assert 0 < r["cadft/frac_downweighted"] < 1 and r["cadft/w_mean"] < 1.0
        assert r["perf/prepass_time_s"] > 0
    hf = tmp_path / "cadft" / "ckpt" / "global_step_3" / "huggingface"
    assert f"HF model (usable as model.path): {hf}" in proc.stdout
    model = AutoModelForCausalLM.from_pretrained(hf)
    tok = AutoTokenizer.from_pretrained(hf)
    ids = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], add_generation_prompt=True, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    # weights changed from the initial model
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert not torch.equal(base.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_resume_restores_lagged_statistics(tmp_path, tiny_model, sft_parquet):
    common = ["cadft.loss=cadft", "cadft.stats=lagged", "trainer.save_freq=1"]
    full, _ = run_sft("cadft_verl.trainer.sft", tmp_path / "full", tiny_model, sft_parquet, steps=3, overrides=common)
    part, _ = run_sft("cadft_verl.trainer.sft", tmp_path / "resumed", tiny_model, sft_parquet, steps=2, overrides=common)
    assert os.path.exists(tmp_path / "resumed" / "ckpt" / "global_step_2" / "cadft_state.json")
    resumed, _ = run_sft("cadft_verl.trainer.sft", tmp_path / "resumed", tiny_model, sft_parquet, steps=3,
                         overrides=common)
    assert len(resumed) == 1  # only step 3 ran
    for key in ("cadft/stats_loc_used", "cadft/stats_scale_used", "cadft/w_mean", "train/loss"):
        assert resumed[0][key] == pytest.approx(full[2][key], rel=1e-5), key


def test_bad_config_fails_before_training_naming_the_option(tmp_path, tiny_model, sft_parquet):
    _, proc = run_sft("cadft_verl.trainer.sft", tmp_path / "bad", tiny_model, sft_parquet, steps=1,
                      overrides=["cadft.loss=sfft"], check=False)
    assert proc.returncode != 0 and "cadft.loss: unknown loss 'sfft'" in proc.stderr
    _, proc = run_sft("cadft_verl.trainer.sft", tmp_path / "bad2", str(tmp_path / "nope"), sft_parquet, steps=1,
                      check=False)
    assert proc.returncode != 0 and "model.path: no model at" in proc.stderr
