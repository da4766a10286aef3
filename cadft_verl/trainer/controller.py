"""Per-step CADFT bookkeeping shared by the torchrun (SPMD) stage and the Ray worker-group stage.

Before a step, ``stats_for_step`` decides where the global-batch statistics come from (METHOD.md section 2):

- ``exact`` (default): the training forward itself (``in_loss``, free) when each rank holds one micro-batch, else a
  no-grad pre-pass over the global batch supplied by the caller;
- ``lagged``: the EMA of previous batches (the first step is exact). With ``renormalize`` the mean weight must still
  be the one of the weights actually applied to *this* batch, so its NLL is needed too: from the training forward
  when each rank holds one micro-batch, else from the pre-pass.

After the step, ``after_step`` turns the loss's private per-sample lists into the logged metrics, returns the
per-sample arrays (dataset index, NLL, z, weight, response tokens) and feeds the batch's exact statistics to the EMA.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from cadft_verl.losses import LossConfig
from cadft_verl.losses.metrics import pop_private, summarize
from cadft_verl.losses.stats import BatchStatsEMA, exact_batch_stats
from cadft_verl.losses.weights import weights_from_z, z_scores

# per-sample arrays the loss reports for every trained sample, in the same order
PER_SAMPLE_KEYS = ("idx", "c", "z", "w", "n")


def _check_prepass(nll: list[float]) -> None:
    bad = [k for k, v in enumerate(nll) if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(
            f"cadft pre-pass: non-finite NLL for {len(bad)} sample(s) of the global batch (positions {bad[:8]}); "
            "check the model's numerics / learning rate and the samples' text"
        )


class CompatibilityController:
    def __init__(self, loss_cfg: LossConfig):
        self.loss_cfg = loss_cfg
        self.stats = BatchStatsEMA(momentum=loss_cfg.stats_momentum)
        # exact location/scale of the last global batch trained on (what history z-scores of no-grad scoring use)
        self.last_exact: dict | None = None
        self._prepass_s = 0.0

    @property
    def needs_stats(self) -> bool:
        return self.loss_cfg.loss == "cadft"

    def stats_for_step(self, one_micro_batch_per_rank: bool, prepass: Callable[[], list[float]]) -> dict:
        """The ``cadft_stats`` entry for this step's batch. ``prepass()`` returns every valid sample's NLL."""
        cfg = self.loss_cfg
        lagged = cfg.stats == "lagged" and self.stats.ready
        if lagged and not cfg.renormalize:
            return {"mode": "given", "loc": self.stats.loc, "scale": self.stats.scale, "w_mean": 1.0}
        if one_micro_batch_per_rank:
            entry = {"mode": "in_loss", "single": True}
            if lagged:
                entry.update(loc=self.stats.loc, scale=self.stats.scale)
            return entry
        start = time.perf_counter()
        nll = prepass()
        self._prepass_s += time.perf_counter() - start
        _check_prepass(nll)
        if not lagged:
            return exact_batch_stats(nll, cfg.zscore, cfg.beta, cfg.eps)
        c = torch.tensor(nll, dtype=torch.float64)
        w = weights_from_z(z_scores(c, self.stats.loc, self.stats.scale, cfg.eps), cfg.beta)
        return {"mode": "given", "loc": self.stats.loc, "scale": self.stats.scale,
                "w_mean": float(w.mean()) if len(nll) else 1.0}

    def after_step(self, metrics: dict) -> tuple[dict, dict[str, list[float]]]:
        """Replace the private ``cadft/_*`` entries of ``metrics`` by their summary and update the EMA.

        Returns ``(metrics, per_sample)``: ``per_sample`` maps ``idx``/``c``/``z``/``w``/``n`` to lists in the same
        sample order (empty for sft/dft, ``idx`` only when the batch carries dataset positions)."""
        private = pop_private(metrics)
        metrics.update(summarize(private, self.loss_cfg.zscore))
        # wall time of this step's no-grad scoring pre-pass (0 when the statistics came for free)
        metrics["perf/prepass_time_s"] = self._prepass_s
        self._prepass_s = 0.0
        if private.get("c"):
            cfg = self.loss_cfg
            batch = exact_batch_stats(private["c"], cfg.zscore, cfg.beta, cfg.eps)
            self.stats.update(batch["loc"], batch["scale"], batch["w_mean"])
            self.last_exact = {"loc": batch["loc"], "scale": batch["scale"]}
        per_sample = {k: private[k] for k in PER_SAMPLE_KEYS if k in private}
        if "idx" in per_sample:
            per_sample["idx"] = [int(i) for i in per_sample["idx"]]
        return metrics, per_sample

    def z_of(self, nll: float) -> float:
        """z-score of a no-grad NLL against the statistics the weights use: the last trained batch's exact ones
        (``exact``) or the EMA (``lagged``)."""
        if self.loss_cfg.stats == "lagged" or self.last_exact is None:
            loc, scale = self.stats.loc, self.stats.scale
        else:
            loc, scale = self.last_exact["loc"], self.last_exact["scale"]
        return (nll - loc) / (scale + self.loss_cfg.eps) if scale > 0 else 0.0

    def state_dict(self) -> dict:
        return {"ema": self.stats.state_dict(), "last_exact": self.last_exact}

    def load_state_dict(self, state: dict) -> None:
        if "ema" not in state:  # checkpoints written before last_exact was kept: the EMA alone
            state = {"ema": state, "last_exact": None}
        self.stats.load_state_dict(state["ema"])
        self.last_exact = state.get("last_exact")
