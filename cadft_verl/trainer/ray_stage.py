"""Stage 1 of the one launch: CADFT / DFT / SFT on verl's own FSDP actor workers (Ray worker group).

The driver reads the SFT data (verl's ``MultiTurnSFTDataset``) and, per optimizer step,
- scores the batch with the actors' ``compute_log_prob`` when exact statistics need a pre-pass,
- trains with ``update_actor`` (one mini-batch = the global batch, one epoch), the loss installed with verl's
  ``set_loss_fn`` hook on ``ActorRolloutRefWorker``,
- logs stage-prefixed metrics to verl's tracking backends, and
- checkpoints into ``<stage dir>/global_step_N`` (actor shards + HF export, dataloader state, CADFT state); a rerun
  resumes from the newest one.
On completion it writes ``<stage dir>/COMPLETE.json`` naming the HF model that stage 2 starts from.
"""

from __future__ import annotations

import json
import os
import time

import torch
from omegaconf import OmegaConf, open_dict
from tensordict.tensorclass import NonTensorData
from tqdm import tqdm

from cadft_verl.losses import STATS_KEY, LossConfig, make_loss_fn

from .controller import CompatibilityController
from .hook import valid_sample_nll

TRACKER = "latest_checkpointed_iteration.txt"
COMPLETE = "COMPLETE.json"


def _atomic_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def stage_worker_config(config) -> "OmegaConf":
    """``actor_rollout_ref`` for stage 1: the RL actor settings with the SFT batch sizes and optimiser."""
    cad = config.cadft
    arr = OmegaConf.create(OmegaConf.to_container(config.actor_rollout_ref, resolve=True))
    with open_dict(arr):
        arr.actor.optim = OmegaConf.merge(arr.actor.optim, cad.optim)
        arr.actor.ppo_mini_batch_size = cad.data.train_batch_size
        arr.actor.ppo_micro_batch_size = None
        arr.actor.ppo_micro_batch_size_per_gpu = cad.data.micro_batch_size_per_gpu
        arr.actor.use_dynamic_bsz = cad.data.use_dynamic_bsz
        arr.actor.ppo_max_token_len_per_gpu = cad.data.max_token_len_per_gpu
        arr.actor.use_kl_loss = False
        arr.actor.checkpoint.save_contents = ["model", "optimizer", "extra", "hf_model"]
        arr.actor.checkpoint.load_contents = ["model", "optimizer", "extra"]
        arr.rollout.log_prob_micro_batch_size = None
        arr.rollout.log_prob_micro_batch_size_per_gpu = cad.data.micro_batch_size_per_gpu
        arr.rollout.log_prob_use_dynamic_bsz = cad.data.use_dynamic_bsz
        arr.rollout.log_prob_max_token_len_per_gpu = cad.data.max_token_len_per_gpu
    return arr


class RayCADFTStage:
    def __init__(self, config, stage_dir: str, tracking=None):
        from verl.utils.config import omega_conf_to_dataclass

        self.config = config
        self.stage_dir = stage_dir
        self.loss_cfg = LossConfig.from_mapping(config.cadft)
        self.controller = CompatibilityController(self.loss_cfg)
        self.tracking = tracking
        self.arr_config = stage_worker_config(config)
        self.model_config = omega_conf_to_dataclass(self.arr_config.model)
        self._build_data()
        with open_dict(self.arr_config):
            self.arr_config.actor.optim.total_training_steps = self.total_steps
        self.global_step = 0

    # ---------------------------------------------------------------------------------------------------------
    def _build_data(self):
        from torchdata.stateful_dataloader import StatefulDataLoader
        from verl.trainer.sft_trainer import create_sft_dataset
        from verl.utils.dataset.dataset_utils import SFTTensorCollator

        cad = self.config.cadft
        tokenizer = self.model_config.tokenizer
        self.dataset = create_sft_dataset(cad.data.train_files, cad.data, tokenizer, self.model_config.processor)
        self.batch_size = int(cad.data.train_batch_size)
        if len(self.dataset) < self.batch_size:
            raise ValueError(
                f"cadft.data.train_batch_size={self.batch_size} is larger than the training set "
                f"({len(self.dataset)} rows in {cad.data.train_files})"
            )
        generator = torch.Generator().manual_seed(int(cad.data.get("seed", 1)))
        sampler = torch.utils.data.RandomSampler(self.dataset, generator=generator)
        self.dataloader = StatefulDataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, drop_last=True, num_workers=0,
            collate_fn=SFTTensorCollator(cad.data.pad_mode),
        )
        self.steps_per_epoch = len(self.dataloader)
        steps = cad.trainer.get("total_training_steps")
        self.total_steps = int(steps) if steps else self.steps_per_epoch * int(cad.trainer.total_epochs)

    def _build_workers(self):
        import ray
        from verl.single_controller.ray import RayClassWithInitArgs, RayResourcePool, RayWorkerGroup
        from verl.workers.engine_workers import ActorRolloutRefWorker

        trainer = self.config.trainer
        pool = RayResourcePool(process_on_nodes=[trainer.n_gpus_per_node] * trainer.nnodes, max_colocate_count=1)
        cls = RayClassWithInitArgs(ray.remote(ActorRolloutRefWorker), config=self.arr_config, role="actor")
        self.wg = RayWorkerGroup(resource_pool=pool, ray_cls_with_init=cls, device_name=trainer.device)
        self.wg.init_model()
        self.wg.set_loss_fn(make_loss_fn(self.loss_cfg))
        self.dp_size = self.wg.world_size

    # ---------------------------------------------------------------------------------------------------------
    def _latest_step(self) -> int:
        path = os.path.join(self.stage_dir, TRACKER)
        if not os.path.exists(path):
            return 0
        with open(path) as f:
            return int(f.read().strip())

    def _step_dir(self, step: int) -> str:
        return os.path.join(self.stage_dir, f"global_step_{step}")

    def save(self, step: int) -> str:
        folder = self._step_dir(step)
        os.makedirs(folder, exist_ok=True)
        self.wg.save_checkpoint(local_path=os.path.join(folder, "actor"), global_step=step)
        torch.save(self.dataloader.state_dict(), os.path.join(folder, "data.pt"))
        _atomic_json(os.path.join(folder, "cadft_state.json"), {"step": step, "batch_stats": self.controller.state_dict()})
        tracker = os.path.join(self.stage_dir, TRACKER)
        with open(tracker + ".tmp", "w") as f:
            f.write(str(step))
        os.replace(tracker + ".tmp", tracker)
        return folder

    def resume(self) -> int:
        step = self._latest_step()
        if step == 0:
            return 0
        folder = self._step_dir(step)
        state_file = os.path.join(folder, "cadft_state.json")
        if not os.path.exists(state_file):
            raise FileNotFoundError(f"stage 1 checkpoint {folder} is incomplete: {state_file} is missing")
        self.wg.load_checkpoint(local_path=os.path.join(folder, "actor"))
        self.dataloader.load_state_dict(torch.load(os.path.join(folder, "data.pt"), weights_only=False))
        with open(state_file) as f:
            self.controller.load_state_dict(json.load(f)["batch_stats"])
        print(f"[cadft-verl] stage 1 resumes from {folder}")
        return step

    # ---------------------------------------------------------------------------------------------------------
    def _meta(self) -> dict:
        cad = self.config.cadft
        return {
            "use_remove_padding": self.arr_config.model.get("use_remove_padding", True),
            "use_dynamic_bsz": cad.data.use_dynamic_bsz,
            "max_token_len_per_gpu": cad.data.max_token_len_per_gpu,
            "micro_batch_size_per_gpu": cad.data.micro_batch_size_per_gpu,
            "temperature": 1.0,
            "global_batch_size": self.batch_size,
            "pad_mode": cad.data.pad_mode,
            "pad_token_id": self.model_config.tokenizer.pad_token_id,
        }

    def _prepass(self, data) -> list[float]:
        from verl.utils import tensordict_utils as tu

        probe = data.clone(recurse=False)
        tu.assign_non_tensor(probe, compute_loss=False, calculate_entropy=False)
        return valid_sample_nll(self.wg.compute_log_prob(probe)["log_probs"], data)

    def train_step(self, batch) -> dict:
        from verl.utils import tensordict_utils as tu

        from .hook import one_micro_batch_per_rank

        start = time.perf_counter()
        data = tu.get_tensordict(tensor_dict=batch, non_tensor_dict=self._meta())
        if self.controller.needs_stats:
            one_micro = one_micro_batch_per_rank(data, self.config.cadft.data, self.dp_size)
            tu.assign_non_tensor(data, **{STATS_KEY: self.controller.stats_for_step(one_micro, lambda: self._prepass(data))})
        tu.assign_non_tensor(
            data, global_batch_size=self.batch_size, mini_batch_size=self.batch_size, epochs=1, seed=1,
            dataloader_kwargs={"shuffle": False}, compute_loss=True, calculate_entropy=False,
        )
        output = self.wg.update_actor(data)
        raw = tu.get(output, "metrics")
        metrics = self.controller.after_step(raw)
        out = {}
        for key, value in metrics.items():
            if isinstance(value, list):
                value = value[-1] if value else None
            if isinstance(value, (int, float)):
                out[key] = float(value)
        for key in ("loss", "grad_norm", "lr"):
            if key in out:
                out[f"train/{key}"] = out.pop(key)
        out["perf/step_time_s"] = time.perf_counter() - start
        return out

    def fit(self) -> dict:
        os.makedirs(self.stage_dir, exist_ok=True)
        complete = os.path.join(self.stage_dir, COMPLETE)
        if os.path.exists(complete):
            with open(complete) as f:
                return json.load(f)
        self._build_workers()
        step = self.resume()
        save_freq = int(self.config.cadft.trainer.get("save_freq", -1) or -1)
        last = {}
        bar = tqdm(total=self.total_steps, initial=step, desc=f"stage 1 ({self.loss_cfg.loss})")
        epoch = step // self.steps_per_epoch
        while step < self.total_steps:
            for batch in self.dataloader:
                step += 1
                last = self.train_step(batch)
                if self.tracking is not None:
                    self.tracking.log({f"stage1/{k}": v for k, v in last.items()}, step=step)
                bar.update(1)
                bar.set_postfix(loss=f"{last.get('train/loss', float('nan')):.4f}")
                if step >= self.total_steps or (save_freq > 0 and step % save_freq == 0):
                    self.save(step)
                if step >= self.total_steps:
                    break
            epoch += 1
        bar.close()
        folder = self._step_dir(step)
        hf_model = os.path.join(folder, "actor", "huggingface")
        result = {"stage": "cadft", "loss": self.loss_cfg.loss, "steps": step, "checkpoint": folder,
                  "hf_model": hf_model, "final_metrics": last}
        _atomic_json(complete, result)
        return result

    def shutdown(self):
        import ray

        for worker in getattr(self.wg, "_workers", []):
            ray.kill(worker)
