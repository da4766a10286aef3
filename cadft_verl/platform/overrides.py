"""The CPU profile as hydra overrides, for verl's own trainers.

Our SFT entry point selects the profile with ``profile=cpu`` (``cadft_verl/config/profile/cpu.yaml``: the one
launch's CPU engine and model settings, ``cadft_verl/config/cpu/*.yaml``, on the SFT trainer's keys). verl's
``verl.trainer.sft_trainer`` has no profile group, so the same settings are passed to it as ``++key=value``
overrides: what composing our SFT config with ``profile=cpu`` changes, so they cannot differ from the profile.
"""

from __future__ import annotations

CONFIG_MODULE = "cadft_verl.config"
SFT_CONFIG = "sft_trainer"


def _render(value) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return "null" if value is None else str(value)


def _diff(base: dict, changed: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in changed.items():
        path = f"{prefix}{key}"
        if key not in base:
            out.append(f"++{path}={_render(value)}")
        elif isinstance(value, dict) and isinstance(base[key], dict):
            out += _diff(base[key], value, f"{path}.")
        elif value != base[key]:
            out.append(f"++{path}={_render(value)}")
    return out


def compose_sft_config(overrides=()) -> dict:
    """Our SFT stage's config (``sft_trainer.yaml``) composed with ``overrides``, as a plain dict (unresolved)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup
    from omegaconf import OmegaConf

    backup = get_gh_backup()  # callable inside a running hydra app too
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
            return OmegaConf.to_container(compose(SFT_CONFIG, overrides=list(overrides)), resolve=False)
    finally:
        restore_gh_from_backup(backup)


def cpu_overrides() -> list[str]:
    """``++key=value`` for every setting the CPU profile changes in verl's SFT trainer config (dict values inline)."""
    return _diff(compose_sft_config(), compose_sft_config(["profile=cpu"]))
