"""Lagged CADFT statistics: EMA of the global batches' NLL location/scale (METHOD.md section 2, ``stats: lagged``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class BatchStatsEMA:
    """EMA (momentum ``m``) of the per-batch location, scale and mean weight of the sample NLL.

    ``update`` is called once per optimizer step with the exact statistics of the batch just trained on; ``ready``
    is False until the first update, so the first step uses exact statistics.
    """

    momentum: float = 0.9
    loc: float = 0.0
    scale: float = 0.0
    w_mean: float = 1.0
    updates: int = 0

    @property
    def ready(self) -> bool:
        return self.updates > 0

    def update(self, loc: float, scale: float, w_mean: float = 1.0) -> None:
        if not self.ready:
            self.loc, self.scale, self.w_mean = loc, scale, w_mean
        else:
            m = self.momentum
            self.loc = m * self.loc + (1 - m) * loc
            self.scale = m * self.scale + (1 - m) * scale
            self.w_mean = m * self.w_mean + (1 - m) * w_mean
        self.updates += 1

    def as_given(self) -> dict:
        return {"mode": "given", "loc": self.loc, "scale": self.scale, "w_mean": self.w_mean}

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def exact_batch_stats(c, zscore: str = "standard", beta: float = 1.0, eps: float = 1e-6) -> dict:
    """Location, scale and mean weight (before renormalisation) of one global batch's valid per-sample NLL."""
    import torch

    from .weights import batch_location_scale, weights_from_z, z_scores

    c = torch.as_tensor(c, dtype=torch.float64)
    loc, scale = batch_location_scale(c, None, zscore)
    w_mean = float(weights_from_z(z_scores(c, loc, scale, eps), beta).mean()) if c.numel() else 1.0
    return {"mode": "given", "loc": loc, "scale": scale, "w_mean": w_mean}
