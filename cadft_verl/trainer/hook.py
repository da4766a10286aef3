"""The CADFT hook around verl's SPMD ``TrainingWorker`` (``torchrun -m cadft_verl.trainer.sft``).

verl's SFT trainer calls ``training_client.train_batch(data)`` once per optimizer step. ``CADFTTrainingClient``
wraps that client (everything else is delegated unchanged): it puts the global-batch statistics into the batch
(``CompatibilityController``; the no-grad pre-pass is the scoring forward ``response_nll_sums`` on verl's engine,
plus an all-gather over the data-parallel ranks) and reduces the loss's per-sample lists to the logged metrics after
the step.
"""

from __future__ import annotations

import resource
import time

import torch.distributed as dist

from cadft_verl.losses import STATS_KEY, LossConfig
from cadft_verl.losses.prepass import resolve_prepass_scale

from .controller import CompatibilityController
from .layer_reuse import layer_reuse_of
from .response_nll import response_nll_sums


def _max_rss_gb() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def valid_sample_nll(nll_sum, count) -> list[float]:
    """Length-normalised NLL of every sample with response tokens, in batch order."""
    valid = count > 0
    return (nll_sum[valid] / count[valid]).tolist()


def _sequence_lengths(data):
    """Every sample's token count (prompt and response), as verl's dynamic batching counts it."""
    input_ids = data["input_ids"]
    if input_ids.is_nested:
        return input_ids.offsets().diff()
    return data["attention_mask"].sum(dim=1)


def _setting(data, key, default):
    from verl.utils import tensordict_utils as tu

    value = tu.get_non_tensor_data(data, key, None)
    return default if value is None else value


def one_micro_batch_per_rank(data, engine_config, dp_size: int = 1, dp_group=None) -> bool:
    """Whether verl's engine will train each rank's share of ``data`` as a single micro-batch.

    ``data`` is the whole global batch (``dp_size`` > 1: the Ray driver, which splits it into ``dp_size`` equal
    contiguous shares) or this rank's share (``dp_group``: the SPMD trainer, which agrees with the other ranks through
    one all-reduce). Under dynamic batching verl packs ``ceil(tokens / max_token_len_per_gpu)`` micro-batches per rank
    and takes the maximum over ranks, so one micro-batch means every share fits the token budget."""
    import torch

    if _setting(data, "use_dynamic_bsz", engine_config.use_dynamic_bsz):
        budget = int(_setting(data, "max_token_len_per_gpu", engine_config.max_token_len_per_gpu))
        lengths = _sequence_lengths(data)
        shares = lengths.reshape(dp_size, -1).sum(dim=1) if dp_size > 1 else lengths.sum().reshape(1)
        single = bool((shares <= budget).all())
    else:
        micro = _setting(data, "micro_batch_size_per_gpu", engine_config.micro_batch_size_per_gpu)
        single = micro is not None and data.batch_size[0] <= int(micro) * dp_size
    if dp_group is not None and dist.is_initialized() and dist.get_world_size(dp_group) > 1:
        from verl.utils.device import get_device_name

        flag = torch.tensor([1 if single else 0], device=get_device_name())  # the group's device (NCCL: cuda)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=dp_group)
        single = bool(flag.item())
    return single


def prepass_batch_settings(data, engine_config, scale, dp_size: int = 1, model_config=None) -> dict:
    """Micro-batching of the no-grad pre-pass: ``scale`` times training's micro-batch (the largest divisor of a
    rank's share not above it: verl splits each share into equal micro-batches) or token budget. ``scale`` is
    ``cadft.prepass_micro_batch_scale``: an int, or ``auto`` (picked by memory from ``model_config``:
    ``losses/prepass.py``)."""
    scale = resolve_prepass_scale(scale, model_config, _setting(data, "use_fused_kernels", None))
    if _setting(data, "use_dynamic_bsz", engine_config.use_dynamic_bsz):
        budget = int(_setting(data, "max_token_len_per_gpu", engine_config.max_token_len_per_gpu))
        return {"max_token_len_per_gpu": budget * scale}
    share = data.batch_size[0] // dp_size
    micro = int(_setting(data, "micro_batch_size_per_gpu", engine_config.micro_batch_size_per_gpu))
    size = max(d for d in range(1, min(share, micro * scale) + 1) if share % d == 0)
    return {"micro_batch_size_per_gpu": size}


def refuse_sequence_parallel(sp_size: int, option: str) -> None:
    """CADFT's per-sample statistics are computed on data-parallel ranks; under Ulysses sequence parallelism verl
    returns the log-probs on the first rank of each SP group only. Refuse at start-up rather than fail at step 1."""
    if int(sp_size or 1) > 1:
        raise ValueError(
            f"{option}={sp_size}: the cadft loss does not support Ulysses sequence parallelism yet (per-sample "
            f"statistics need every rank's log-probs); set {option}=1, or use cadft.loss=sft"
        )


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
        scale = self.controller.loss_cfg.prepass_micro_batch_scale
        # each sample's response NLL only: no loss, no entropy, no prompt logits (trainer/response_nll.py)
        tu.assign_non_tensor(probe, **prepass_batch_settings(data, self._inner.engine_config, scale,
                                                             model_config=getattr(self._inner, "model_config", None)))
        keep = layer_reuse_of(self._inner.engine) if self.controller.loss_cfg.prepass_reuse_forward else None
        local = valid_sample_nll(*response_nll_sums(self._inner, probe, keep_layers=keep))
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
            one_micro = one_micro_batch_per_rank(data, self._inner.engine_config,
                                                 dp_group=self._inner.engine.get_data_parallel_group())
            stats = self.controller.stats_for_step(one_micro, lambda: self._prepass(data))
            tu.assign_non_tensor(data, **{STATS_KEY: stats})
        reuse = layer_reuse_of(self._inner.engine)
        with reuse.replay():  # the pre-pass's layer outputs, when it kept them (cadft.prepass_reuse_forward)
            output = self._inner.train_batch(data=data)
        if output is not None:
            metrics, _ = self.controller.after_step(tu.get(output, "metrics"))
            reuse.add_metric(metrics)
            # wall time of the whole optimizer step, the exact-statistics pre-pass included
            metrics["perf/step_time_s"] = time.perf_counter() - start
            # CPU seconds this process (all its threads) spent on the step: robust to other load on the machine
            metrics["perf/step_cpu_s"] = time.process_time() - cpu_start
            # host memory (verl's device-memory metrics read 0 on the CPU platform)
            metrics["perf/max_rss_gb"] = _max_rss_gb()
            metrics["perf/max_rss_growth_gb"] = metrics["perf/max_rss_gb"] - self._rss_base
        return output
