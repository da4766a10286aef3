"""What every typed config block shares: built from its YAML block with unknown keys refused naming the option
(``TypedBlock``), and renamed options whose old spelling keeps working (``take_renamed``)."""

from __future__ import annotations

import sys
from dataclasses import fields

_NOTIFIED: set[str] = set()


class TypedBlock:
    """Mixin of a config block's dataclass. ``PREFIX``: the block's key (``cadft.rewrite``), named in errors;
    ``SECTIONS``: sub-blocks of it that other classes read (skipped here)."""

    PREFIX = ""
    SECTIONS: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, cfg):
        """Build from the block (a dict or OmegaConf node; None: the defaults); an unknown key is an error naming it
        and listing the known ones."""
        if cfg is None:
            return cls()
        if not isinstance(cfg, dict):
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True)
        known = {f.name for f in fields(cls)}
        unknown = [key for key in cfg if key not in known and key not in cls.SECTIONS]
        if unknown:
            raise ValueError(f"{cls.PREFIX}.{unknown[0]}: unknown option; known options: {', '.join(sorted(known))}")
        return cls(**{key: value for key, value in cfg.items() if key in known})


def take_renamed(block: TypedBlock, old: str, new: str, default) -> None:
    """A renamed option: the block keeps the old name as a field that mirrors the new one (in the YAML an
    interpolation, ``momentum: ${.stats_momentum}``, so that ``old=value`` still overrides it on the command line and
    code that reads the old key gets the value in use). An old value that differs from the new one's was set by the
    user: it is taken for the new field with a one-line deprecation notice (once per process), unless the new one was
    changed from its ``default`` too (an error naming both). Called by the dataclass's ``__post_init__``."""
    prefix, value, current = block.PREFIX, getattr(block, old), getattr(block, new)
    if value is not None and value != current:
        if current != default:
            raise ValueError(f"{prefix}.{old} is the deprecated spelling of {prefix}.{new}: set only {prefix}.{new} "
                             f"(got {prefix}.{old}={value!r} and {prefix}.{new}={current!r})")
        key = f"{prefix}.{old}"
        if key not in _NOTIFIED:
            _NOTIFIED.add(key)
            print(f"[cadft-verl] {key} is deprecated: use {prefix}.{new}={value} (taken as that)", file=sys.stderr,
                  flush=True)
        setattr(block, new, value)
    setattr(block, old, getattr(block, new))
