"""The CADFT hook around verl's SPMD ``TrainingWorker`` (``torchrun -m cadft_verl.trainer.sft``).

verl's SFT trainer calls ``training_client.train_batch(data)`` once per optimizer step. ``CADFTTrainingClient``
wraps that client (everything else is delegated unchanged): it puts the global-batch statistics into the batch
(``CompatibilityController``; the no-grad pre-pass is verl's ``infer_batch`` plus an all-gather over the
data-parallel ranks) and reduces the loss's per-sample lists to the logged metrics after the step.
"""

from __future__ import annotations

import resource
import time

import torch.distributed as dist

from cadft_verl.losses import STATS_KEY, LossConfig
from cadft_verl.losses.engine_loss import flatten_token_batch, per_sample_nll

from .controller import CompatibilityController


def _max_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def valid_sample_nll(log_probs, data) -> list[float]:
    """Length-normalised NLL of every sample with response tokens, in batch order."""
    lp, mask, seg, batch = flatten_token_batch(log_probs, data)
    nll_sum, count = per_sample_nll(lp, mask, seg, batch)
    valid = count > 0
    return (nll_sum[valid] / count[valid]).tolist()


def one_micro_batch_per_rank(data, engine_config, dp_size: int = 1) -> bool:
    from verl.utils import tensordict_utils as tu

    if tu.get_non_tensor_data(data, "use_dynamic_bsz", engine_config.use_dynamic_bsz):
        return False
    micro = tu.get_non_tensor_data(data, "micro_batch_size_per_gpu", None) or engine_config.micro_batch_size_per_gpu
    return micro is not None and data.batch_size[0] <= micro * dp_size


class CADFTTrainingClient:
    def __init__(self, inner, loss_cfg: LossConfig):
        self._inner = inner
        self.controller = CompatibilityController(loss_cfg)
        self._rss_base = None

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _prepass(self, data) -> list[float]:
        from verl.utils import tensordict_utils as tu

        probe = data.clone(recurse=False)
        tu.assign_non_tensor(probe, compute_loss=False)
        local = valid_sample_nll(self._inner.infer_batch(probe)["log_probs"], data)
        group = self._inner.engine.get_data_parallel_group()
        if group is not None and dist.is_initialized() and dist.get_world_size(group) > 1:
            parts = [None] * dist.get_world_size(group)
            dist.all_gather_object(parts, local, group=group)
            local = [v for p in parts for v in p]
        return local

    def train_batch(self, data):
        from verl.utils import tensordict_utils as tu

        if self._rss_base is None:
            self._rss_base = _max_rss_gb()
        start, cpu_start = time.perf_counter(), time.process_time()
        if self.controller.needs_stats:
            one_micro = one_micro_batch_per_rank(data, self._inner.engine_config)
            stats = self.controller.stats_for_step(one_micro, lambda: self._prepass(data))
            tu.assign_non_tensor(data, **{STATS_KEY: stats})
        output = self._inner.train_batch(data=data)
        if output is not None:
            metrics = self.controller.after_step(tu.get(output, "metrics"))
            # wall time of the whole optimizer step, the exact-statistics pre-pass included
            metrics["perf/step_time_s"] = time.perf_counter() - start
            # CPU seconds this process (all its threads) spent on the step: robust to other load on the machine
            metrics["perf/step_cpu_s"] = time.process_time() - cpu_start
            # host memory (verl's device-memory metrics read 0 on the CPU platform)
            metrics["perf/max_rss_gb"] = _max_rss_gb()
            metrics["perf/max_rss_growth_gb"] = metrics["perf/max_rss_gb"] - self._rss_base
        return output
