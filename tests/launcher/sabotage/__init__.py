"""Test-only sabotage of the RL stage (never part of the product): see negated_advantage.py."""

import os

HERE = os.path.dirname(os.path.abspath(__file__))


def negated_advantage_environment(env: dict) -> dict:
    """``env`` for a launch whose processes all register verl's GRPO advantage negated as ``negated_grpo``
    (select it with ``algorithm.adv_estimator=negated_grpo``): this folder on ``PYTHONPATH`` and
    ``VERL_USE_EXTERNAL_MODULES=negated_advantage`` (verl imports those modules when it is imported)."""
    path = os.pathsep.join(p for p in (HERE, env.get("PYTHONPATH", "")) if p)
    return dict(env, PYTHONPATH=path, VERL_USE_EXTERNAL_MODULES="negated_advantage")
