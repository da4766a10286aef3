"""The SFT / DFT / CADFT loss in the form verl's training engine calls: ``loss_fn(model_output, data, dp_group)``.

verl's engine splits each rank's share of the global batch into micro-batches and calls the loss once per
micro-batch; every micro-batch loss is normalised by the global token count (``batch_num_tokens``, summed over
micro-batches and data-parallel ranks) times ``dp_size`` (FSDP averages gradients over ranks), exactly as verl's
``sft_loss``. Only the per-token weights differ between modes, so ``loss: sft`` reproduces verl's loss.

CADFT needs the location/scale of the per-sample NLL over the *global* batch. The per-step controller
(``cadft_verl.trainer.controller``) provides them in the batch as the non-tensor entry ``cadft_stats``:

- ``{"mode": "given", "loc", "scale", "w_mean"}``: from a no-grad pre-pass over the global batch (``exact``) or the
  EMA of previous batches (``lagged``); ``w_mean`` is the global-batch mean of the weights these statistics give
  (what ``renormalize`` divides by);
- ``{"mode": "in_loss", "single": true}``: each rank's share is one micro-batch, so the exact statistics come from
  this very forward with one all-gather across data-parallel ranks (free). The gathered token counts must add up to
  the global batch's (``batch_num_tokens``): anything else means a rank holds several micro-batches and is an error,
  never silently wrong weights. Optional ``loc``/``scale`` fix the location/scale (``lagged`` with ``renormalize``:
  only the mean weight is taken from the gathered batch).

Without the entry (the loss used alone in a foreign trainer) the statistics are computed ``in_loss`` over the
micro-batch across ranks.

Non-finite log-probabilities on response tokens are agreed on through a collective over the data-parallel group
(one scalar all-reduce per micro-batch): every rank raises the same error, naming every bad sample, instead of one
rank raising while the others wait in their next collective.

Per-sample statistics travel back to the driver in the metrics under ``cadft/_*`` keys (lists), where
``cadft_verl.losses.metrics`` (``pop_private`` / ``summarize``) turns them into the logged metrics. When the batch carries the
samples' dataset positions (``dataset_index``), they are reported too (``cadft/_idx``, same order as ``_c``/``_z``/``_w``)
for the per-sample compatibility history.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .config import LossConfig
from .registry import get_loss_spec
from .stats import exact_batch_stats
from .weights import weights_from_z, z_scores

STATS_KEY = "cadft_stats"
# per-sample dataset position in the batch (added by cadft_verl.rewrite.IndexedSFTCollator)
INDEX_KEY = "dataset_index"


def _non_tensor(data, key, default=None):
    from verl.utils import tensordict_utils as tu

    return tu.get_non_tensor_data(data=data, key=key, default=default)


def flatten_token_batch(log_prob, data):
    """Flat per-token log-probs, the response mask aligned with them, and each token's sample id.

    Handles verl's two layouts: ``no_padding`` (nested jagged tensors; the loss mask is shifted left by one token
    to align with the next-token log-probs, exactly as verl's ``sft_loss``) and padded (``response_mask``).
    """
    from verl.utils.dataset.dataset_utils import DatasetPadMode

    pad_mode = _non_tensor(data, "pad_mode", DatasetPadMode.NO_PADDING)
    if pad_mode == DatasetPadMode.NO_PADDING:
        lp = log_prob.values()
        mask = torch.roll(data["loss_mask"].values(), shifts=-1, dims=0)
        lengths = log_prob.offsets().diff()
        batch = lengths.numel()
    else:
        mask = data["response_mask"]
        batch, width = log_prob.shape
        lengths = torch.full((batch,), width, dtype=torch.long, device=log_prob.device)
        lp = log_prob.reshape(-1)
        mask = mask.reshape(-1)
    seg = torch.repeat_interleave(torch.arange(batch, device=lp.device), lengths.to(lp.device))
    return lp, mask.to(torch.bool), seg, batch


def per_sample_nll(lp: torch.Tensor, mask: torch.Tensor, seg: torch.Tensor, batch: int):
    """(sum of token NLL, token count) per sample, no gradient."""
    with torch.no_grad():
        maskf = mask.to(torch.float32)
        nll_tok = torch.where(mask, -lp.detach().float(), torch.zeros((), device=lp.device))
        nll_sum = torch.zeros(batch, dtype=torch.float32, device=lp.device).index_add_(0, seg, nll_tok)
        count = torch.zeros(batch, dtype=torch.float32, device=lp.device).index_add_(0, seg, maskf)
    return nll_sum, count


def _sample_ids(data, positions):
    """Readable names of the samples at these micro-batch positions (dataset index when the batch carries it)."""
    for key in (INDEX_KEY, "index"):
        if key in data.keys():
            try:
                col = data[key]
                return [f"index={col[p].item() if hasattr(col[p], 'item') else col[p]}" for p in positions]
            except Exception:  # pragma: no cover - purely cosmetic
                break
    return [f"micro-batch position {p}" for p in positions]


def _dp_world(dp_group) -> int:
    if dp_group is None or not dist.is_initialized():
        return 1
    return dist.get_world_size(dp_group)


def _check_finite(lp, mask, seg, data, dp_group=None):
    """Raise the same FloatingPointError on every data-parallel rank when any rank has a non-finite log-prob."""
    bad_tok = mask & ~torch.isfinite(lp.detach())
    local_bad = bool(bad_tok.any())
    world = _dp_world(dp_group)
    if world > 1:
        flag = torch.tensor([1.0 if local_bad else 0.0], device=lp.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=dp_group)
        any_bad = bool(flag.item() > 0)
    else:
        any_bad = local_bad
    if not any_bad:
        return
    names = _sample_ids(data, sorted(set(seg[bad_tok].tolist()))) if local_bad else []
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, (dist.get_rank(), names), group=dp_group)
        names = [f"{n} (rank {r})" for r, part in parts for n in part]
    raise FloatingPointError(
        "cadft loss: non-finite log-probabilities on response tokens of sample(s) "
        + ", ".join(names)
        + " (check the model's numerics / learning rate and the sample's text)"
    )


def _gather_across_dp(values, dp_group) -> list:
    """Every rank's ``values`` (a list), concatenated in rank order."""
    if _dp_world(dp_group) == 1:
        return [values]
    out = [None] * dist.get_world_size(dp_group)
    dist.all_gather_object(out, values, group=dp_group)
    return out


class EngineLoss:
    """Callable loss for verl's engine (``TrainingWorker.set_loss_fn``). Picklable, so it ships to Ray workers."""

    def __init__(self, cfg: LossConfig | dict | None = None):
        self.cfg = cfg if isinstance(cfg, LossConfig) else LossConfig.from_mapping(cfg)
        self.spec = get_loss_spec(self.cfg.loss)

    def __repr__(self) -> str:
        return f"EngineLoss({self.cfg})"

    def __call__(self, model_output, data, dp_group=None, config=None):
        dp_size = data["dp_size"]
        batch_num_tokens = data["batch_num_tokens"]
        if not batch_num_tokens:
            raise ValueError(
                "cadft loss: the global batch has no response tokens (every loss_mask is 0); "
                "check data.max_length/truncation and that the data has assistant turns"
            )
        lp, mask, seg, batch = flatten_token_batch(model_output["log_probs"], data)
        _check_finite(lp, mask, seg, data, dp_group)
        nll_sum, count = per_sample_nll(lp, mask, seg, batch)
        valid = count > 0
        c = nll_sum / count.clamp(min=1.0)

        masked_lp = torch.where(mask, lp, torch.zeros((), dtype=lp.dtype, device=lp.device))
        if not torch.is_grad_enabled():
            # evaluation / validation: report the plain token-mean NLL so that runs with different losses compare
            loss = -masked_lp.sum() / batch_num_tokens * dp_size
            return loss, {}

        metrics = {
            "cadft/_nll_sum": float(nll_sum.sum()),
            "cadft/_tokens": float(count.sum()),
        }
        per_token = -masked_lp
        if self.spec.token_weighted:
            p = torch.exp(masked_lp.detach())
            per_token = per_token * p
            metrics["cadft/_p_sum"] = float((p * mask).sum())
        if self.spec.sample_weighted:
            w, z, stats = self._sample_weights(c, valid, data, dp_group, float(count.sum()))
            per_token = per_token * w.to(per_token.dtype)[seg]
            metrics["cadft/_c"] = c[valid].tolist()
            metrics["cadft/_z"] = z[valid].tolist()
            metrics["cadft/_w"] = w[valid].tolist()
            # response-token count of each sample: which target was trained on (e.g. a rewrite)
            metrics["cadft/_n"] = count[valid].tolist()
            if INDEX_KEY in data.keys():
                # dataset positions of the same samples, for the per-sample compatibility history
                metrics["cadft/_idx"] = data[INDEX_KEY].reshape(-1)[valid.to(data[INDEX_KEY].device)].tolist()
            metrics["cadft/_loc"] = stats["loc"]
            metrics["cadft/_scale"] = stats["scale"]
        loss = per_token.sum() / batch_num_tokens * dp_size
        return loss, metrics

    def _sample_weights(self, c, valid, data, dp_group, local_tokens: float):
        cfg = self.cfg
        stats = _non_tensor(data, STATS_KEY, None) or {"mode": "in_loss"}
        mode = stats.get("mode")
        if mode == "given":
            loc, scale = float(stats["loc"]), float(stats["scale"])
            w_mean = float(stats.get("w_mean", 1.0))
        elif mode == "in_loss":
            parts = _gather_across_dp((c[valid].tolist(), local_tokens), dp_group)
            if stats.get("single"):
                tokens = sum(t for _, t in parts)
                if abs(tokens - float(data["batch_num_tokens"])) > 0.5:
                    raise RuntimeError(
                        "cadft loss: statistics were to come from the training forward (one micro-batch per rank), "
                        f"but this micro-batch holds {tokens:.0f} of the global batch's "
                        f"{float(data['batch_num_tokens']):.0f} response tokens: a rank holds several micro-batches. "
                        "This is a bug in the micro-batch detection; set cadft.stats=exact with a pre-pass by "
                        "lowering data.micro_batch_size_per_gpu, and report it."
                    )
            gathered = [v for part, _ in parts for v in part]
            if stats.get("loc") is not None:
                loc, scale = float(stats["loc"]), float(stats["scale"])
                w_mean = float(weights_from_z(z_scores(torch.tensor(gathered, dtype=torch.float64), loc, scale,
                                                       cfg.eps), cfg.beta).mean()) if gathered else 1.0
            else:
                batch = exact_batch_stats(gathered, cfg.zscore, cfg.beta, cfg.eps)
                loc, scale, w_mean = batch["loc"], batch["scale"], batch["w_mean"]
        else:
            raise ValueError(f"cadft loss: unknown {STATS_KEY} mode {mode!r}")
        z = z_scores(c, loc, scale, cfg.eps)
        w = weights_from_z(z, cfg.beta)
        if cfg.renormalize and w_mean > 0:
            w = w / w_mean
        w = torch.where(valid, w, torch.ones_like(w))
        return w, z, {"loc": loc, "scale": scale}


def make_loss_fn(cfg: LossConfig | dict | None = None) -> EngineLoss:
    """The engine loss for ``cfg`` (``loss: sft | dft | cadft``)."""
    return EngineLoss(cfg)
