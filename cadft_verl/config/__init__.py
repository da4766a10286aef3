"""This project's config, laid out as verl's own ``verl/trainer/config``: hydra YAML with a comment above every field,
and the typed dataclass each block is read into.

YAML in this folder (on the hydra search path as ``pkg://cadft_verl.config``; the one launch's root, recipes and
profiles are ``recipes/``, shipped as ``cadft_verl.recipes``):

- ``cadft/loss.yaml``: the loss options of the ``cadft:`` block, included by both entry points (``recipes/main.yaml``
  and ``sft_trainer.yaml``): their one definition;
- ``cpu/engine.yaml``, ``cpu/model.yaml``: verl's FSDP engine and HF model on the CPU, which both CPU profiles
  (``recipes/profile/cpu.yaml`` and ``profile/cpu.yaml``) put on their own keys;
- ``sft_trainer.yaml`` and ``profile/cpu.yaml``: the drop-in SFT stage's root config and its CPU profile.

Typed blocks (``BLOCKS``): each a dataclass with a comment above every field, validated when built, an unknown key
refused naming the option. ``tests/launcher/test_recipes_on_cpu.py`` keeps every YAML block's keys and defaults equal
to its dataclass's, for both entry points.

Nothing here imports verl or torch: the classes load on first use.
"""

from __future__ import annotations

import importlib

#: each typed block of a config: its key -> ``module:Class`` (a dataclass with ``from_mapping(block)``)
BLOCKS = {
    "cadft": "cadft_verl.losses.config:LossConfig",
    "cadft.history": "cadft_verl.history.config:HistoryConfig",
    "cadft.rewrite": "cadft_verl.rewrite.config:RewriteConfig",
    "cadft.model": "cadft_verl.lora.config:LoraOptions",
    "eval": "cadft_verl.eval.config:EvalConfig",
}

_EXPORTS = {path.rsplit(":", 1)[1]: path for path in BLOCKS.values()}
__all__ = sorted(["BLOCKS", "block_class", "load_block", "load_blocks", *_EXPORTS])


def block_class(key: str) -> type:
    """The dataclass of the block at ``key`` (``BLOCKS``)."""
    module, name = BLOCKS[key].split(":")
    return getattr(importlib.import_module(module), name)


def load_block(config, key: str):
    """The block at ``key`` of a composed config, typed and validated (its defaults when the config has none)."""
    from omegaconf import OmegaConf

    return block_class(key).from_mapping(OmegaConf.select(config, key) if config is not None else None)


def load_blocks(config, keys=None) -> dict:
    """``{key: typed block}`` for ``keys`` (default: every block in ``BLOCKS`` the config has)."""
    from omegaconf import OmegaConf

    if keys is None:
        keys = [k for k in BLOCKS if OmegaConf.select(config, k) is not None]
    return {key: load_block(config, key) for key in keys}


def __getattr__(name: str):
    path = _EXPORTS.get(name)
    if path is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)
