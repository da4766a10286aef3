"""Turn the loss's per-micro-batch, per-rank ``cadft/_*`` entries into the step's logged metrics.

verl gathers each micro-batch's metrics dict into lists (per micro-batch, then per data-parallel rank), so the
values arrive as nested lists. Everything here is a sum, min or per-sample list, so the reduction is exact for the
global batch.
``cadft/_idx`` (the samples' dataset positions, same order as ``_c``/``_z``/``_w``) is not summarised: the stage
driver reads it from the popped private entries to update the per-sample compatibility history.
"""

from __future__ import annotations

import math

from .weights import batch_location_scale

PRIVATE_PREFIX = "cadft/_"


def _flatten(value) -> list[float]:
    if isinstance(value, (list, tuple)):
        out: list[float] = []
        for v in value:
            out.extend(_flatten(v))
        return out
    if hasattr(value, "tolist"):
        return _flatten(value.tolist())
    return [float(value)]


def pop_private(metrics: dict) -> dict[str, list[float]]:
    """Remove the loss's private ``cadft/_*`` entries from ``metrics``; return them flattened."""
    keys = [k for k in metrics if k.startswith(PRIVATE_PREFIX)]
    return {k[len(PRIVATE_PREFIX) :]: _flatten(metrics.pop(k)) for k in keys}


def summarize(private: dict[str, list[float]], zscore: str = "standard") -> dict[str, float]:
    """Scalar metrics of one global batch from the flattened private entries."""
    out: dict[str, float] = {}
    tokens = sum(private.get("tokens", []))
    if tokens > 0:
        out["cadft/nll"] = sum(private.get("nll_sum", [])) / tokens
        if "p_sum" in private:
            out["cadft/token_weight_mean"] = sum(private["p_sum"]) / tokens
    w = private.get("w")
    if w:
        n = len(w)
        sw, sw2 = sum(w), sum(x * x for x in w)
        out["cadft/w_mean"] = sw / n
        out["cadft/w_min"] = min(w)
        out["cadft/frac_downweighted"] = sum(1 for x in w if x < 1.0) / n
        out["cadft/ess"] = sw * sw / sw2 if sw2 > 0 else 0.0
        out["cadft/ess_frac"] = out["cadft/ess"] / n
        z = private["z"]
        zm = sum(z) / n
        out["cadft/z_mean"] = zm
        out["cadft/z_std"] = math.sqrt(max(sum((x - zm) ** 2 for x in z) / n, 0.0))
        out["cadft/num_samples"] = float(n)
    c = private.get("c")
    if c:
        import torch

        loc, scale = batch_location_scale(torch.tensor(c, dtype=torch.float64), None, zscore)
        out["cadft/c_loc"] = loc
        out["cadft/c_scale"] = scale
    if private.get("loc"):
        out["cadft/stats_loc_used"] = private["loc"][0]
        out["cadft/stats_scale_used"] = private["scale"][0]
    return out
