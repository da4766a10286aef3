"""The CADFT hook around verl's ``TrainingWorker``: global-batch statistics in, reduced metrics out.

verl's SFT trainer calls ``training_client.train_batch(data)`` once per optimizer step. ``CADFTTrainingClient``
wraps that client (everything else is delegated unchanged) and, for ``loss: cadft``:

- ``stats: exact``: when each rank's share of the global batch is one micro-batch, the loss computes the statistics
  from the training forward itself (``in_loss``, one all-gather). Otherwise a no-grad forward over the rank's share
  (verl's ``infer_batch``) gives every sample's NLL first; their location/scale over all ranks go into the batch.
- ``stats: lagged``: the EMA of previous global batches' statistics goes into the batch (first step: exact).

After the step it reduces the loss's per-sample lists to the logged metrics and updates the EMA.
"""

from __future__ import annotations

import torch.distributed as dist

from cadft_verl.losses import STATS_KEY, LossConfig
from cadft_verl.losses.engine_loss import flatten_token_batch, per_sample_nll
from cadft_verl.losses.metrics import pop_private, summarize
from cadft_verl.losses.stats import BatchStatsEMA, exact_batch_stats


class CADFTTrainingClient:
    def __init__(self, inner, loss_cfg: LossConfig):
        self._inner = inner
        self.loss_cfg = loss_cfg
        self.stats = BatchStatsEMA(momentum=loss_cfg.momentum)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    # ---------------------------------------------------------------------------------------------------------
    def _one_micro_batch_per_rank(self, data) -> bool:
        from verl.utils import tensordict_utils as tu

        use_dynamic = tu.get_non_tensor_data(data, "use_dynamic_bsz", self._inner.engine_config.use_dynamic_bsz)
        if use_dynamic:
            return False
        micro = tu.get_non_tensor_data(data, "micro_batch_size_per_gpu", None)
        if micro is None:
            micro = self._inner.engine_config.micro_batch_size_per_gpu
        return micro is not None and data.batch_size[0] <= micro

    def _dp_group(self):
        return self._inner.engine.get_data_parallel_group()

    def exact_stats(self, data) -> dict:
        """No-grad forward over this rank's share; location/scale over the whole global batch."""
        from verl.utils import tensordict_utils as tu

        probe = data.clone(recurse=False)
        tu.assign_non_tensor(probe, compute_loss=False)
        out = self._inner.infer_batch(probe)
        lp, mask, seg, batch = flatten_token_batch(out["log_probs"], data)
        nll_sum, count = per_sample_nll(lp, mask, seg, batch)
        valid = count > 0
        local = (nll_sum[valid] / count[valid]).tolist()
        group = self._dp_group()
        if group is not None and dist.is_initialized() and dist.get_world_size(group) > 1:
            parts = [None] * dist.get_world_size(group)
            dist.all_gather_object(parts, local, group=group)
            local = [v for p in parts for v in p]
        cfg = self.loss_cfg
        return exact_batch_stats(local, cfg.zscore, cfg.beta, cfg.eps)

    def _stats_for(self, data) -> dict:
        cfg = self.loss_cfg
        if cfg.stats == "lagged" and self.stats.ready:
            return self.stats.as_given()
        if self._one_micro_batch_per_rank(data):
            return {"mode": "in_loss"}
        return self.exact_stats(data)

    # ---------------------------------------------------------------------------------------------------------
    def train_batch(self, data):
        from verl.utils import tensordict_utils as tu

        if self.loss_cfg.loss == "cadft":
            tu.assign_non_tensor(data, **{STATS_KEY: self._stats_for(data)})
        output = self._inner.train_batch(data=data)
        if output is not None:
            metrics = tu.get(output, "metrics")
            private = pop_private(metrics)
            summary = summarize(private, self.loss_cfg.zscore)
            metrics.update(summary)
            if private.get("c"):
                # exact statistics of the batch just trained on feed the lagged EMA
                cfg = self.loss_cfg
                batch = exact_batch_stats(private["c"], cfg.zscore, cfg.beta, cfg.eps)
                self.stats.update(batch["loc"], batch["scale"], batch["w_mean"])
        return output
