"""Test-only sabotage of the RL update: GRPO's advantages with their sign flipped, registered in verl's advantage
estimator registry as ``negated_grpo``. Never part of the product.

A launch uses it with ``algorithm.adv_estimator=negated_grpo`` and the environment of
``sabotage.negated_advantage_environment``: this folder on ``PYTHONPATH`` and
``VERL_USE_EXTERNAL_MODULES=negated_advantage``. verl imports those modules in every process that imports verl, so
the estimator is registered in the driver, where verl computes advantages
(``verl.trainer.ppo.ray_trainer.compute_advantage``). The RL-learns test shows its check fails on such a run.
"""

from verl.trainer.ppo import core_algos

NAME = "negated_grpo"


@core_algos.register_adv_est(NAME)
def negated_grpo(token_level_rewards, response_mask, index, config=None, **kwargs):
    """verl's GRPO outcome advantage, negated: the update pushes the rewarded answers down."""
    norm = True if config is None else config.get("norm_adv_by_std_in_grpo", True)
    advantages, returns = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=token_level_rewards, response_mask=response_mask, index=index,
        norm_adv_by_std_in_grpo=norm)
    return -advantages, -returns

