"""Where the statistics of a step come from (controller + engine loss, no model): renormalisation in every mode,
the guard of the free in-loss path, one-micro-batch detection under dynamic batching, and a NaN on one rank."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from batches import nested_micro_batch, random_samples

from cadft_verl.losses import LossConfig, make_loss_fn
from cadft_verl.trainer.controller import CompatibilityController

N = 16


def _c(samples):
    return [float(-lp[:-1][m[1:].bool()].mean()) for lp, m in samples]


def _step(ctrl, samples, num_micro):
    """One step as the trainer runs it: the controller's statistics, the loss over ``num_micro`` micro-batches."""
    cfg = ctrl.loss_cfg
    total = int(sum(int(m.sum()) for _, m in samples))
    stats = ctrl.stats_for_step(num_micro == 1, lambda: _c(samples))
    loss_fn = make_loss_fn(cfg)
    size = len(samples) // num_micro
    metrics = {}
    for k in range(num_micro):
        part = samples[k * size : (k + 1) * size]
        model_output, data, _ = nested_micro_batch(part, batch_num_tokens=total, stats=stats)
        _, m = loss_fn(model_output=model_output, data=data)
        for key, value in m.items():
            metrics.setdefault(key, []).append(value)
    metrics, per_sample = ctrl.after_step(metrics)
    return metrics, per_sample


@pytest.mark.parametrize("stats", ["exact", "lagged"])
@pytest.mark.parametrize("num_micro", [1, 4])
def test_renormalize_gives_mean_weight_one_over_the_global_batch(stats, num_micro):
    cfg = LossConfig(loss="cadft", stats=stats, renormalize=True)
    ctrl = CompatibilityController(cfg)
    _step(ctrl, random_samples(N, seed=1), num_micro)
    # the next batch is more compatible (NLL falls fast): lagged statistics are off, the mean must still be 1
    second = [(lp * 0.5, m) for lp, m in random_samples(N, seed=2)]
    metrics, per_sample = _step(ctrl, second, num_micro)
    assert sum(per_sample["w"]) / len(per_sample["w"]) == pytest.approx(1.0, abs=1e-6)
    assert metrics["cadft/w_mean"] == pytest.approx(1.0, abs=1e-6)
    if stats == "lagged":
        assert metrics["cadft/stats_loc_used"] != pytest.approx(metrics["cadft/c_loc"])


def test_default_statistics_are_the_current_batch_even_while_the_nll_falls():
    cfg = LossConfig(loss="cadft")
    assert cfg.stats == "exact"
    ctrl = CompatibilityController(cfg)
    for k in range(4):
        batch = [(lp * (0.6 ** k), m) for lp, m in random_samples(N, seed=10 + k)]
        metrics, per_sample = _step(ctrl, batch, num_micro=4)
        assert metrics["cadft/stats_loc_used"] == pytest.approx(metrics["cadft/c_loc"], abs=1e-6)
        assert abs(metrics["cadft/z_mean"]) < 1e-6 and metrics["cadft/z_std"] == pytest.approx(1.0, abs=1e-3)
        assert 0 < metrics["cadft/frac_downweighted"] < 1
        assert len(per_sample["n"]) == N and all(n > 0 for n in per_sample["n"])


def test_in_loss_statistics_refuse_a_rank_with_several_micro_batches():
    samples = random_samples(N, seed=3)
    total = int(sum(int(m.sum()) for _, m in samples))
    model_output, data, _ = nested_micro_batch(samples[:4], batch_num_tokens=total,
                                               stats={"mode": "in_loss", "single": True})
    with pytest.raises(RuntimeError, match="several micro-batches"):
        make_loss_fn({"loss": "cadft"})(model_output=model_output, data=data)


def test_one_micro_batch_detection_under_dynamic_batching():
    from omegaconf import OmegaConf
    from verl.utils import tensordict_utils as tu

    from cadft_verl.trainer.hook import one_micro_batch_per_rank, prepass_batch_settings

    lengths = [30, 50, 20, 40]  # two ranks: 80 and 60 tokens
    ids = torch.nested.as_nested_tensor([torch.ones(n, dtype=torch.long) for n in lengths], layout=torch.jagged)
    cfg = OmegaConf.create({"use_dynamic_bsz": True, "max_token_len_per_gpu": 80, "micro_batch_size_per_gpu": 1})
    data = tu.get_tensordict(tensor_dict={"input_ids": ids}, non_tensor_dict={})
    assert one_micro_batch_per_rank(data, cfg, dp_size=2)  # each share fits the token budget
    assert not one_micro_batch_per_rank(data, OmegaConf.merge(cfg, {"max_token_len_per_gpu": 79}), dp_size=2)
    assert not one_micro_batch_per_rank(data, cfg, dp_size=1)  # one rank: 140 tokens, two micro-batches
    assert prepass_batch_settings(data, cfg, scale=4) == {"max_token_len_per_gpu": 320}
    fixed = OmegaConf.create({"use_dynamic_bsz": False, "micro_batch_size_per_gpu": 1})
    assert one_micro_batch_per_rank(data, OmegaConf.merge(fixed, {"micro_batch_size_per_gpu": 2}), dp_size=2)
    assert not one_micro_batch_per_rank(data, fixed, dp_size=2)
    # the pre-pass micro-batch: the largest divisor of a rank's share (here 4 // 2 = 2) not above 4 x training's
    assert prepass_batch_settings(data, fixed, scale=4, dp_size=2) == {"micro_batch_size_per_gpu": 2}


def _nan_rank(rank, world, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    samples = random_samples(8, seed=5)
    if rank == 1:
        samples[2][0][5] = float("nan")
    total = int(sum(int(m.sum()) for _, m in samples)) * world
    model_output, data, _ = nested_micro_batch(samples, dp_size=world, batch_num_tokens=total,
                                               stats={"mode": "given", "loc": 1.0, "scale": 0.5, "w_mean": 1.0})
    try:
        make_loss_fn({"loss": "cadft"})(model_output=model_output, data=data, dp_group=dist.group.WORLD)
        message = "no error"
    except FloatingPointError as exc:
        message = str(exc)
    with open(f"{out_file}.{rank}", "w") as f:
        f.write(message)
    dist.barrier()  # a rank that did not raise would hang here
    dist.destroy_process_group()


def test_nan_on_one_rank_stops_every_rank_with_the_same_message():
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "msg")
        mp.start_processes(_nan_rank, args=(2, init_file, out_file), nprocs=2, join=True, start_method="spawn")
        messages = [open(f"{out_file}.{r}").read() for r in range(2)]
    assert messages[0] == messages[1]
    assert "non-finite log-probabilities" in messages[0] and "(rank 1)" in messages[0]
