"""The no-grad pre-pass of ``stats: exact`` (issue 23): its micro-batch scale (1 by default, ``auto`` by memory) and,
on verl's real FSDP2 engine on the CPU, weights equal to those of the in-loss exact statistics at any micro-batch
count."""

import os

import pytest
from tensordict import TensorDict

from cadft_verl.losses import LossConfig
from cadft_verl.losses.prepass import auto_prepass_scale, estimate_bytes_per_token, resolve_prepass_scale
from cadft_verl.trainer.hook import prepass_batch_settings

QWEN_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, vocab_size=151936)
TINY = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, vocab_size=1024)


def test_default_scale_is_the_training_micro_batch_and_auto_is_accepted():
    assert LossConfig().prepass_micro_batch_scale == 1
    assert LossConfig(prepass_micro_batch_scale="auto").prepass_micro_batch_scale == "auto"
    for bad in (0, "4", "big", True, 1.5):
        with pytest.raises(ValueError, match="cadft.prepass_micro_batch_scale"):
            LossConfig(prepass_micro_batch_scale=bad)


@pytest.mark.parametrize("gc", [False, True])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("model", [QWEN_1_5B, TINY, dict(TINY, vocab_size=32768)])
def test_auto_scale_keeps_the_prepass_under_a_training_micro_batch(model, gc, fused):
    train, prepass = estimate_bytes_per_token(model, gradient_checkpointing=gc, fused_kernels=fused)
    scale = auto_prepass_scale(model, gradient_checkpointing=gc, fused_kernels=fused)
    assert 1 <= scale <= 8
    assert scale == 1 or scale * prepass <= train


def test_auto_scale_follows_the_memory_it_needs():
    # the 8-GPU recipe's model under gradient checkpointing: a training micro-batch holds the logits, their float32
    # log-softmax and their gradient, the scoring forward only the response tokens' logits: 3 micro-batches fit
    with_gc = auto_prepass_scale(QWEN_1_5B, gradient_checkpointing=True, fused_kernels=False)
    assert with_gc == 3
    # without checkpointing a training micro-batch keeps every layer's activations: a larger pre-pass fits
    assert auto_prepass_scale(QWEN_1_5B, gradient_checkpointing=False, fused_kernels=False) > with_gc
    # fused kernels never hold the logits: larger still
    assert auto_prepass_scale(QWEN_1_5B, gradient_checkpointing=False, fused_kernels=True) == 8
    # the bench's 1k-vocabulary model (float32) under checkpointing: the layers dominate, the training micro-batch
    assert auto_prepass_scale(TINY, gradient_checkpointing=True, fused_kernels=False, dtype_bytes=4) == 1
    # verl's model config (HFModelConfig-like) and the unknown case
    cfg = type("M", (), {"hf_config": QWEN_1_5B, "enable_gradient_checkpointing": True, "use_fused_kernels": False})
    assert resolve_prepass_scale("auto", cfg) == with_gc
    assert resolve_prepass_scale("auto", None) == 1
    assert resolve_prepass_scale(3, None) == 3


def test_prepass_batch_settings_at_scale_one_is_the_training_micro_batch():
    import torch
    from verl.utils import tensordict_utils as tu

    data = TensorDict({"x": torch.zeros(16, 2)}, batch_size=[16])
    tu.assign_non_tensor(data, micro_batch_size_per_gpu=2, use_dynamic_bsz=False)
    engine = type("E", (), {"use_dynamic_bsz": False, "micro_batch_size_per_gpu": 2, "max_token_len_per_gpu": 512})
    assert prepass_batch_settings(data, engine, 1) == {"micro_batch_size_per_gpu": 2}
    assert prepass_batch_settings(data, engine, 4) == {"micro_batch_size_per_gpu": 8}
    assert prepass_batch_settings(data, engine, "auto", model_config=None) == {"micro_batch_size_per_gpu": 2}
    tu.assign_non_tensor(data, use_dynamic_bsz=True, max_token_len_per_gpu=512)
    assert prepass_batch_settings(data, engine, 1) == {"max_token_len_per_gpu": 512}


# step-1 statistics that must not depend on the split (as in tests/trainer/test_sft_stage_on_cpu.py): the weights to
# 1e-6; z_std to 1e-5 (float32 noise in c, amplified by 1/scale of a near-uniform random-init model)
STEP1_WEIGHT_STATS = {"cadft/w_mean": 1e-6, "cadft/w_min": 1e-6, "cadft/ess": 1e-5, "cadft/z_std": 1e-5,
                      "cadft/c_loc": 1e-6, "cadft/c_scale": 1e-6}


def _run(workdir, model, train_file, micro, overrides):
    from cadft_verl.trainer.launch import run_sft

    base = [f"data.train_files={train_file}", f"model.path={model}", "data.train_batch_size=8",
            f"data.micro_batch_size_per_gpu={micro}", "data.use_dynamic_bsz=False", "data.max_length=512",
            "data.truncation=right", "data.num_workers=0", "trainer.total_training_steps=1",
            f"trainer.default_local_dir={os.path.join(workdir, 'ckpt')}", "trainer.logger=[console,file]",
            "profile=cpu", "cadft.loss=cadft", "cadft.stats=exact"]
    rows, proc = run_sft(base + overrides, str(workdir), nproc=1, timeout=600)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return rows[0]


def test_prepass_weights_equal_exact_in_loss_weights_at_4_and_8_micro_batches(tmp_path, tiny_model, sft_parquet):
    runs = {
        "1micro_in_loss": (8, []),  # statistics from the training forward itself: the current exact ones
        "4micro_scale1": (2, ["cadft.prepass_micro_batch_scale=1"]),
        "8micro_auto": (1, ["cadft.prepass_micro_batch_scale=auto"]),
        # the scoring forward's other layouts: verl's fused log-probs, and padded (not packed) sequences
        "4micro_fused": (2, ["model.use_fused_kernels=True"]),
        "4micro_padded": (2, ["model.use_remove_padding=False"]),
    }
    rows = {name: _run(tmp_path / name, tiny_model, sft_parquet, micro, ov) for name, (micro, ov) in runs.items()}
    ref = rows["1micro_in_loss"]
    assert ref["cadft/frac_downweighted"] > 0
    assert ref["perf/prepass_time_s"] == 0
    for name, row in rows.items():
        if name != "1micro_in_loss":
            assert row["perf/prepass_time_s"] > 0, name
        for key, tol in STEP1_WEIGHT_STATS.items():
            assert row[key] == pytest.approx(ref[key], abs=tol), (name, key)
        assert row["train/loss"] == pytest.approx(ref["train/loss"], rel=1e-5), name


@pytest.mark.parametrize("layout", [[], ["data.use_dynamic_bsz=True", "data.max_token_len_per_gpu=1024"]],
                         ids=["micro_batches", "dynamic"])
def test_training_step_reuses_the_prepass_forward_with_identical_steps(tmp_path, tiny_model, sft_parquet, layout):
    """cadft.prepass_reuse_forward in verl's SFT trainer (gradient checkpointing on, verl's default): every decoder
    layer's forward of the training step comes from the pre-pass, and three steps train exactly as without it."""
    from cadft_verl.trainer.launch import run_sft

    rows = {}
    for reuse in (True, False):
        work = tmp_path / f"reuse_{reuse}"
        base = [f"data.train_files={sft_parquet}", f"model.path={tiny_model}", "data.train_batch_size=8",
                "data.micro_batch_size_per_gpu=2", "data.use_dynamic_bsz=False", "data.max_length=512",
                "data.truncation=right", "data.num_workers=0", "trainer.total_training_steps=3",
                f"trainer.default_local_dir={work / 'ckpt'}", "trainer.logger=[console,file]", "profile=cpu",
                "cadft.loss=cadft", f"cadft.prepass_reuse_forward={reuse}", *layout]
        rows[reuse], proc = run_sft(base, str(work), nproc=1, timeout=600)
        assert proc.returncode == 0 and len(rows[reuse]) == 3, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    assert [r["perf/prepass_reused"] for r in rows[True]] == [1.0, 1.0, 1.0]
    assert all(r["perf/prepass_time_s"] > 0 and "perf/prepass_reused" not in r for r in rows[False])
    for with_reuse, without in zip(rows[True], rows[False]):
        for key in ("train/loss", "train/grad_norm", "cadft/w_mean", "cadft/c_loc"):
            assert with_reuse[key] == pytest.approx(without[key], rel=1e-5, abs=1e-7), key
