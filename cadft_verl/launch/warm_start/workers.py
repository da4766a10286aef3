"""Stage 1's Ray workers: verl's ``ActorRolloutRefWorker`` group (as ``CADFTActorWorker``, which adds the scoring
forward; the FSDP actor, with the rollout replica when the rewrite rounds generate through it), the loss installed
with verl's ``set_loss_fn``, the no-grad scorer on the same workers, the rewrite generator, and their shutdown."""

from __future__ import annotations

from omegaconf import OmegaConf, open_dict

from cadft_verl.losses import make_loss_fn

from .scoring import ActorScorer


class ActorWorkers:
    def __init__(self, config, arr_config, model_config, loss_cfg, plan):
        import ray
        from verl.single_controller.ray import RayClassWithInitArgs, RayResourcePool, RayWorkerGroup

        from .actor_worker import CADFTActorWorker

        trainer, cad = config.trainer, config.cadft
        gen_cls = plan.generator_class
        hybrid = plan.needs_rollout_workers
        self.resource_pool = RayResourcePool(process_on_nodes=[trainer.n_gpus_per_node] * trainer.nnodes,
                                             max_colocate_count=1)
        cls = RayClassWithInitArgs(ray.remote(CADFTActorWorker), config=arr_config,
                                   role="actor_rollout" if hybrid else "actor")
        self.wg = RayWorkerGroup(resource_pool=self.resource_pool, ray_cls_with_init=cls, device_name=trainer.device)
        self.wg.init_model()
        self.wg.set_loss_fn(make_loss_fn(loss_cfg))
        self.dp_size = self.wg.world_size
        self.meta = {
            "use_remove_padding": arr_config.model.get("use_remove_padding", True),
            "use_dynamic_bsz": cad.data.use_dynamic_bsz,
            "max_token_len_per_gpu": cad.data.max_token_len_per_gpu,
            "micro_batch_size_per_gpu": cad.data.micro_batch_size_per_gpu,
            "temperature": 1.0,
            "global_batch_size": plan.batch_size,
            "pad_mode": cad.data.pad_mode,
            "pad_token_id": model_config.tokenizer.pad_token_id,
        }
        self.scorer = ActorScorer(self.wg, self.meta, cad.data, cad.data, loss_cfg.prepass_micro_batch_scale,
                                  self.dp_size, plan.batch_size, model_config=model_config,
                                  reuse_forward=loss_cfg.prepass_reuse_forward)
        self.generator = None
        if gen_cls is not None:
            gen_config = OmegaConf.create(OmegaConf.to_container(config, resolve=True))
            with open_dict(gen_config):
                gen_config.actor_rollout_ref = arr_config
            extra = (self.resource_pool,) if hybrid else ()
            self.generator = gen_cls(gen_config, self.wg, model_config.tokenizer, *extra)

    def shutdown(self) -> None:
        """Free stage 1's actors and their placement groups, so that stage 2 can place its own workers."""
        import ray
        from ray.util import remove_placement_group

        if self.generator is not None:
            try:  # the rollout replicas' server actors (rewriting)
                self.generator.shutdown()
            except Exception:  # noqa: BLE001 - best effort at the end of the stage
                pass
        for worker in getattr(self.wg, "_workers", []):
            ray.kill(worker)
        for pg in getattr(self.resource_pool, "pgs", None) or []:
            remove_placement_group(pg)
