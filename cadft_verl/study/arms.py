"""What a study compares: arms (a launch recipe plus overrides) and the overrides each seed sets.

An arm is named on the command line. The built-in arms are the cold-start comparison of the paper (SFT, DFT and
CADFT warm starts, each followed by GRPO, and GRPO from the base model) and the rewriting-off ablation of CADFT.
Any other launch recipe (``recipes/recipe/*.yaml``, e.g. ``cadft_then_ppo``) is an arm too, under
its own name, with no extra overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Arm:
    name: str
    #: the launch recipe (``recipe=<name>``)
    recipe: str
    #: hydra overrides on top of the study's, before the seed's
    overrides: tuple[str, ...] = field(default_factory=tuple)
    #: one line for the table's legend
    about: str = ""


ARMS = {a.name: a for a in (
    Arm("sft_then_grpo", "sft_then_grpo", about="SFT warm start, then GRPO"),
    Arm("dft_then_grpo", "dft_then_grpo", about="DFT warm start, then GRPO"),
    Arm("cadft_then_grpo", "cadft_then_grpo", about="CADFT warm start (with verified rewriting), then GRPO"),
    Arm("cadft_no_rewrite", "cadft_then_grpo", ("cadft.rewrite.enabled=false",),
        about="ablation: CADFT's weights without rewriting, then GRPO"),
    Arm("grpo", "grpo", about="GRPO from the base model (no warm start)"),
)}

#: the study's arms when none are named
DEFAULT_ARMS = ("sft_then_grpo", "dft_then_grpo", "cadft_then_grpo", "cadft_no_rewrite", "grpo")


def seed_overrides(seed: int) -> list[str]:
    """What a seed changes in a launch: the demonstrations' order, the rewrite rounds' draws and sampling, the RL
    prompts' order and verl's rollout sampling. The base model, the data and every size stay the same."""
    return [f"cadft.data.seed={seed}", f"cadft.rewrite.seed={seed}", f"data.seed={seed}",
            f"actor_rollout_ref.rollout.seed={seed}"]


def launch_recipes() -> list[str]:
    """The one launch's recipes (``cadft_verl/recipes/recipe/*.yaml``)."""
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "recipe")
    return sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".yaml"))


def resolve_arms(names) -> list[Arm]:
    """The arms named (built-in arms, or launch recipes by their own name); an error lists what exists."""
    names = list(names)
    if not names:
        raise ValueError(f"--recipes: empty; choose from {known_arms()}")
    recipes = launch_recipes()
    unknown = [n for n in names if n not in ARMS and n not in recipes]
    if unknown:
        raise ValueError(f"--recipes: unknown {unknown}; choose from {known_arms()}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"--recipes: {dup} named twice")
    return [ARMS.get(n) or Arm(n, n, about=f"recipe {n}") for n in names]


def known_arms() -> list[str]:
    return [*ARMS, *(r for r in launch_recipes() if r not in ARMS)]
