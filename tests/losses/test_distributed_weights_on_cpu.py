"""CADFT weights do not depend on how the global batch is split over ranks (gloo) and micro-batches."""

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from batches import nested_micro_batch, random_samples

from cadft_verl.losses import make_loss_fn
from cadft_verl.losses.stats import exact_batch_stats

N = 16


def _weights(samples, stats=None, dp_group=None, dp_size=1, total_tokens=None):
    model_output, data, _ = nested_micro_batch(samples, dp_size=dp_size, batch_num_tokens=total_tokens, stats=stats)
    _, metrics = make_loss_fn({"loss": "cadft", "stats": "exact"})(model_output=model_output, data=data, dp_group=dp_group)
    return metrics["cadft/_w"]


def _rank_main(rank, world, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    samples = random_samples(N, seed=11)
    total = int(sum(int(m.sum()) for _, m in samples))
    share = samples[rank * N // world : (rank + 1) * N // world]
    w = _weights(share, stats={"mode": "in_loss"}, dp_group=dist.group.WORLD, dp_size=world, total_tokens=total)
    torch.save(w, f"{out_file}.{rank}")
    dist.barrier()
    dist.destroy_process_group()


def test_one_rank_vs_two_gloo_ranks_same_weights():
    samples = random_samples(N, seed=11)
    single = _weights(samples, stats={"mode": "in_loss"})
    with tempfile.TemporaryDirectory() as tmp:
        init_file, out_file = os.path.join(tmp, "init"), os.path.join(tmp, "w")
        mp.start_processes(_rank_main, args=(2, init_file, out_file), nprocs=2, join=True, start_method="spawn")
        two = torch.load(f"{out_file}.0") + torch.load(f"{out_file}.1")
    assert torch.allclose(torch.tensor(single), torch.tensor(two), atol=1e-6)


@pytest.mark.parametrize("num_micro", [1, 4])
def test_micro_batch_1_vs_4_same_weights(num_micro):
    samples = random_samples(N, seed=12)
    reference = _weights(samples, stats={"mode": "in_loss"})
    # what the trainer hook computes in its no-grad pre-pass over the whole share
    c = []
    for lp, m in samples:
        aligned = m[1:].bool()
        c.append(float(-lp[:-1][aligned].mean()))
    stats = exact_batch_stats(c)
    size = N // num_micro
    split = []
    for i in range(0, N, size):
        split += _weights(samples[i : i + size], stats=stats)
    assert torch.allclose(torch.tensor(reference), torch.tensor(split), atol=1e-6)
