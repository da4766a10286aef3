"""One optimizer step of stage 1 on the actor workers: the step's samples from the known order, the global-batch
statistics (free from the training forward when each rank holds one micro-batch, else the no-grad pre-pass), verl's
``update_actor`` with the whole batch as one mini-batch, and the step's metrics under the stage's names."""

from __future__ import annotations

import time

from cadft_verl.losses import STATS_KEY
from cadft_verl.trainer.hook import one_micro_batch_per_rank

#: verl's metric names that stage 1 reports under ``train/``
TRAIN_KEYS = ("loss", "grad_norm", "lr")


def scalar_metrics(metrics: dict) -> dict:
    """verl's metrics as floats (a list: its last value), ``loss``/``grad_norm``/``lr`` as ``train/...``."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, list):
            value = value[-1] if value else None
        if isinstance(value, (int, float)):
            out[f"train/{key}" if key in TRAIN_KEYS else key] = float(value)
    return out


def train_step(step: int, order, workers, controller, data_cfg) -> tuple[dict, dict]:
    """Returns (scalar metrics, per-sample arrays of the trained samples)."""
    from verl.utils import tensordict_utils as tu

    start = time.perf_counter()
    data = tu.get_tensordict(tensor_dict=order.batch(step), non_tensor_dict=dict(workers.meta))
    if controller.needs_stats:
        one_micro = one_micro_batch_per_rank(data, data_cfg, workers.dp_size)
        stats = controller.stats_for_step(one_micro, lambda: workers.scorer.prepass(data))
        tu.assign_non_tensor(data, **{STATS_KEY: stats})
    tu.assign_non_tensor(
        data, global_batch_size=order.batch_size, mini_batch_size=order.batch_size, epochs=1, seed=1,
        dataloader_kwargs={"shuffle": False}, compute_loss=True, calculate_entropy=False,
    )
    output = workers.wg.update_actor(data)
    metrics, per_sample = controller.after_step(tu.get(output, "metrics"))
    out = scalar_metrics(metrics)
    out["perf/step_time_s"] = time.perf_counter() - start
    return out, per_sample
