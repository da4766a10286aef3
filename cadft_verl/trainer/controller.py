"""Per-step CADFT bookkeeping shared by the torchrun (SPMD) stage and the Ray worker-group stage.

Before a step, ``stats_for_step`` decides where the global-batch statistics come from (METHOD.md section 2):
the lagged EMA, the training forward itself (``in_loss``, when each rank has one micro-batch), or a no-grad
pre-pass supplied by the caller. After the step, ``after_step`` turns the loss's private per-sample lists into the
logged metrics and feeds the batch's exact statistics to the EMA.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cadft_verl.losses import LossConfig
from cadft_verl.losses.metrics import pop_private, summarize
from cadft_verl.losses.stats import BatchStatsEMA, exact_batch_stats


class CompatibilityController:
    def __init__(self, loss_cfg: LossConfig):
        self.loss_cfg = loss_cfg
        self.stats = BatchStatsEMA(momentum=loss_cfg.momentum)
        self.last_private: dict[str, list[float]] = {}
        self._prepass_s = 0.0

    @property
    def needs_stats(self) -> bool:
        return self.loss_cfg.loss == "cadft"

    def stats_for_step(self, one_micro_batch_per_rank: bool, prepass: Callable[[], list[float]]) -> dict:
        """The ``cadft_stats`` entry for this step's batch. ``prepass()`` returns every valid sample's NLL."""
        cfg = self.loss_cfg
        if cfg.stats == "lagged" and self.stats.ready:
            return self.stats.as_given()
        if one_micro_batch_per_rank:
            return {"mode": "in_loss"}
        start = time.perf_counter()
        nll = prepass()
        self._prepass_s += time.perf_counter() - start
        return exact_batch_stats(nll, cfg.zscore, cfg.beta, cfg.eps)

    def after_step(self, metrics: dict) -> dict:
        """Replace the private ``cadft/_*`` entries of ``metrics`` by their summary; update the EMA."""
        private = pop_private(metrics)
        metrics.update(summarize(private, self.loss_cfg.zscore))
        # wall time of this step's no-grad scoring pre-pass (0 when the statistics came for free)
        metrics["perf/prepass_time_s"] = self._prepass_s
        self._prepass_s = 0.0
        if private.get("c"):
            cfg = self.loss_cfg
            batch = exact_batch_stats(private["c"], cfg.zscore, cfg.beta, cfg.eps)
            self.stats.update(batch["loc"], batch["scale"], batch["w_mean"])
        self.last_private = private
        return metrics

    def state_dict(self) -> dict:
        return self.stats.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stats.load_state_dict(state)
