"""Registry of loss modes: what each multiplies the token NLL by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LossSpec:
    name: str
    # multiply each token's NLL by sg(p_t) (DFT)
    token_weighted: bool
    # multiply each sample's tokens by its compatibility weight w_i (CADFT)
    sample_weighted: bool
    description: str


_LOSSES: dict[str, LossSpec] = {}


def register_loss(spec: LossSpec) -> LossSpec:
    _LOSSES[spec.name] = spec
    return spec


def get_loss_spec(name: str) -> LossSpec:
    try:
        return _LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(_LOSSES)}") from None


def loss_names() -> tuple[str, ...]:
    return tuple(_LOSSES)


register_loss(LossSpec("sft", False, False, "verl's token-mean NLL"))
register_loss(LossSpec("dft", True, False, "DFT: token NLL x sg(p_t)"))
register_loss(LossSpec("cadft", True, True, "CADFT: DFT x sample weight from the batch z-score of the NLL"))
