"""No-grad passes of stage 1 through the actors' scoring forward (``CADFTActorWorker.response_nll``: each sample's
summed response NLL, ``trainer/response_nll.py``).

- ``prepass``: every valid sample's length-normalised NLL of a training batch (exact statistics);
- ``score``: the NLL of any samples, with their current or a candidate target (rewrite rounds, look-ahead);
- ``validate``: the plain token-mean NLL of a validation set (``val/loss``, comparable across losses).
The passes run at ``cadft.prepass_micro_batch_scale`` times training's micro-batch (default 1; ``auto``: picked by
memory from ``model_config``, else 1: ``losses/prepass.py``): nothing is kept for a backward.
"""

from __future__ import annotations

from cadft_verl.rewrite import IndexedSFTCollator
from cadft_verl.trainer.layer_reuse import KEEP_LAYERS
from cadft_verl.trainer.hook import prepass_batch_settings, valid_sample_nll


class ActorScorer:
    def __init__(self, wg, meta: dict, data_cfg, engine_config, scale, dp_size: int, batch_size: int,
                 model_config=None, reuse_forward: bool = False):
        self.wg = wg
        self.meta = meta
        self.data_cfg = data_cfg
        self.engine_config = engine_config
        self.scale = scale if scale == "auto" else int(scale)
        self.model_config = model_config
        # the pre-pass keeps the decoder layers' outputs for update_actor (cadft.prepass_reuse_forward)
        self.reuse_forward = bool(reuse_forward)
        self.dp_size = int(dp_size)
        self.batch_size = int(batch_size)
        self.collate = IndexedSFTCollator(data_cfg.pad_mode)

    def _settings(self, data):
        from verl.utils import tensordict_utils as tu

        tu.assign_non_tensor(data, **prepass_batch_settings(data, self.engine_config, self.scale, self.dp_size,
                                                            self.model_config))
        return data

    def _sums(self, batch: dict):
        """(summed response NLL, response token count) per sample: the actors' scoring forward."""
        from verl.utils import tensordict_utils as tu

        data = self._settings(tu.get_tensordict(tensor_dict=batch, non_tensor_dict=dict(self.meta)))
        out = self.wg.response_nll(data)
        return out["nll_sum"], out["count"]

    def prepass(self, data) -> list[float]:
        from verl.utils import tensordict_utils as tu

        probe = self._settings(data.clone(recurse=False))
        tu.assign_non_tensor(probe, **{KEEP_LAYERS: self.reuse_forward})
        out = self.wg.response_nll(probe)
        return valid_sample_nll(out["nll_sum"], out["count"])

    def _chunks(self, items: list[dict]):
        """Batches of at most the global batch size, padded (with copies of the first item) to what verl's
        dispatch needs: an equal share per data-parallel rank, whole micro-batches per share."""
        multiple = self.dp_size * (1 if self.data_cfg.use_dynamic_bsz else int(self.data_cfg.micro_batch_size_per_gpu))
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            real = len(chunk)
            chunk = chunk + [dict(chunk[0]) for _ in range(-real % multiple)]
            yield real, self.collate(chunk)

    def score(self, dataset, items: list[tuple[int, str | None]]) -> list[float | None]:
        """Length-normalised NLL of each (index, target text or None for the current target); None: no tokens."""
        out: list[float | None] = []
        samples = [dataset.item_with_target(i, text) for i, text in items]
        for real, batch in self._chunks(samples):
            nll_sum, count = self._sums(batch)
            out += [float(s / c) if c > 0 else None for s, c in zip(nll_sum.tolist()[:real], count.tolist()[:real])]
        return out

    def validate(self, dataset) -> dict[str, float]:
        """``val/loss``: token-mean NLL over the whole validation set (every row once)."""
        total, tokens = 0.0, 0.0
        samples = [dataset[i] for i in range(len(dataset))]
        for real, batch in self._chunks(samples):
            nll_sum, count = self._sums(batch)
            total += float(nll_sum[:real].sum())
            tokens += float(count[:real].sum())
        return {"val/loss": total / tokens if tokens else float("nan"), "val/tokens": tokens}
