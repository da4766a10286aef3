"""Stage 1's Ray actor: verl's ``ActorRolloutRefWorker`` plus the scoring forward (``trainer/response_nll.py``).

verl's ``compute_log_prob`` returns every token's log-prob; CADFT's no-grad passes (the exact-statistics pre-pass,
the rewrite rounds' scoring, validation) need each sample's summed response NLL only. ``response_nll`` computes
them on the actor's engine with the response positions' logits only, and returns two numbers per sample.
"""

from __future__ import annotations

from tensordict import TensorDict
from verl.single_controller.base.decorator import make_nd_compute_dataproto_dispatch_fn, register
from verl.workers.engine_workers import ActorRolloutRefWorker

from cadft_verl.trainer.response_nll import response_nll_sums


class CADFTActorWorker(ActorRolloutRefWorker):
    @register(dispatch_mode=make_nd_compute_dataproto_dispatch_fn(mesh_name="actor"))
    def response_nll(self, data: TensorDict) -> TensorDict | None:
        """Per sample of this rank's share: ``nll_sum`` (summed response NLL) and ``count`` (response tokens)."""
        nll_sum, count = response_nll_sums(self.actor, data)
        if not self.actor.engine.is_mp_src_rank_with_outputs():
            return None
        return TensorDict({"nll_sum": nll_sum, "count": count}, batch_size=[nll_sum.shape[0]])
