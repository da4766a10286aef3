"""Stage 2's learning signal, logged by verl's own trainer at every step: the share of prompt groups whose rewards
are not all equal (``SHARE_KEY``).

GRPO's advantage is a response's reward minus its group's mean (a group: the ``actor_rollout_ref.rollout.n``
responses to one prompt, one ``uid``), so a group whose rewards are all equal (all right or all wrong) gives every
response a zero advantage and teaches nothing. The share of the other groups is the part of a step's batch GRPO
learns from. PPO gets the same share (groups by the same uid): with ``rollout.n`` = 1 every group has one response,
so the share is 0 by construction and says nothing (PPO's advantage comes from its critic, not from a group).

How it is logged, without editing verl: verl's v1 trainers are looked up by name in its ``TRAINER_REGISTRY``
(``trainer.v1.trainer_mode``). ``task_runner(TaskRunnerV1)`` is verl's TaskRunner whose ``run`` first puts, under
the configured mode's name, ``with_group_signal(<that trainer>)`` in the registry of its own process (a fresh Ray
actor; the mode's name stays, since verl's trainer checks it), then runs as verl's: the same trainer, whose
``_compute_advantage`` (the step's hook that holds the step's metrics dict and the batch's uids and scores) also
adds ``SHARE_KEY`` and ``GROUPS_KEY`` to the step's metrics. verl's metrics after the step (``compute_data_metrics``)
see no uid, so the share is computed where verl computes the advantage itself. The entropy is verl's own
``actor/entropy`` (the policy's mean per-token entropy on the step's rollouts, at the rollout temperature).
"""

from __future__ import annotations

from collections.abc import Sequence

#: metric keys in stage 2's history
SHARE_KEY = "cadft/group_signal_share"
GROUPS_KEY = "cadft/groups"


def signal_share(uids: Sequence, rewards: Sequence[float]) -> tuple[float, int]:
    """(share of groups whose rewards are not all equal, number of groups); a group is the responses with one uid.
    A group of one response counts as all equal. No response: (0.0, 0)."""
    groups: dict = {}
    for uid, reward in zip(uids, rewards, strict=True):
        groups.setdefault(uid, []).append(float(reward))
    if not groups:
        return 0.0, 0
    mixed = sum(1 for values in groups.values() if max(values) != min(values))
    return mixed / len(groups), len(groups)


def batch_signal(batch) -> dict:
    """The signal metrics of a v1 trainer's step batch (its ``KVBatchMeta``): uids and summed scores fetched from
    verl's TransferQueue, padding rows left out."""
    import transfer_queue as tq

    # as verl's own _compute_advantage reads them
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["uid", "rm_scores"])
    data = data.to_padded_tensor()
    uids = list(data.pop("uid").tolist())
    rewards = data["rm_scores"].sum(-1).tolist()
    keep = [not (tag or {}).get("is_padding", False) for tag in (batch.tags or [{}] * len(uids))]
    uids = [u for u, k in zip(uids, keep, strict=True) if k]
    rewards = [r for r, k in zip(rewards, keep, strict=True) if k]
    share, groups = signal_share(uids, rewards)
    return {SHARE_KEY: share, GROUPS_KEY: groups}


def with_group_signal(trainer_cls: type) -> type:
    """``trainer_cls`` (a verl v1 ``PPOTrainer``) whose advantage step also logs the signal metrics."""

    class GroupSignalTrainer(trainer_cls):
        def _compute_advantage(self, batch, metrics: dict):
            metrics.update(batch_signal(batch))
            return super()._compute_advantage(batch, metrics=metrics)

    GroupSignalTrainer.__name__ = GroupSignalTrainer.__qualname__ = f"{trainer_cls.__name__}WithGroupSignal"
    GroupSignalTrainer.logs_group_signal = True
    return GroupSignalTrainer


def install(mode: str) -> type:
    """In this process, verl's trainer registry's entry ``mode`` logs the signal metrics too (once); returns it."""
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    cls = get_trainer_cls(mode)
    if not getattr(cls, "logs_group_signal", False):
        cls = TRAINER_REGISTRY[mode] = with_group_signal(cls)
    return cls


def task_runner(base):
    """verl's TaskRunner actor class ``base`` (``TaskRunnerV1``) whose ``run`` trains with the signal metrics."""
    import ray

    class TaskRunnerWithGroupSignal(base.__ray_actor_class__):
        def run(self, config):
            install(str(config.trainer.v1.trainer_mode))
            return super().run(config)

    return ray.remote(TaskRunnerWithGroupSignal)
