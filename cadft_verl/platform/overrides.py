"""The CPU profile (``cadft_verl/config/profile/cpu.yaml``) as hydra overrides, for verl's own trainers.

Our SFT entry point selects the profile with ``profile=cpu``. verl's ``verl.trainer.sft_trainer`` has no profile
group, so the same settings are passed to it as ``++section.key=value`` overrides, read from that one file.
"""

from __future__ import annotations

import os

PROFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", "profile", "cpu.yaml")


def _render(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_render(v)}" for k, v in value.items()) + "}"
    return str(value)


def cpu_overrides() -> list[str]:
    """``++section.key=value`` for every ``section: {key: value}`` of the CPU profile (dict values inline)."""
    from omegaconf import OmegaConf

    profile = OmegaConf.to_container(OmegaConf.load(PROFILE))
    return [f"++{section}.{key}={_render(value)}" for section, node in profile.items() for key, value in node.items()]
