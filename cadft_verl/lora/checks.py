"""Start-up checks of stage 1's LoRA (``cadft.model``), run before any worker starts, each naming the option:
options of the launch that cannot take a LoRA stage 1, and target modules that match nothing in the model (checked on
the model's architecture built on the meta device: no weights are read)."""

from __future__ import annotations

from .config import LoraOptions

#: verl's engines whose LoRA is ``model.lora_rank`` (the FSDP engine's; Megatron's is ``model.lora``)
FSDP_STRATEGIES = ("fsdp", "fsdp2")


def lora_options(config) -> LoraOptions:
    """The typed ``cadft.model`` block of a composed launch config (its defaults when absent)."""
    from omegaconf import OmegaConf

    return LoraOptions.from_mapping(OmegaConf.select(config, "cadft.model"))


def check_lora_options(config, runs_stage1: bool) -> LoraOptions:
    """Refuse a LoRA stage 1 together with an option that cannot take it; returns the typed options."""
    from omegaconf import OmegaConf

    lora = lora_options(config)
    if not lora.enabled:
        return lora
    rank = f"cadft.model.lora_rank={lora.lora_rank}"
    if not runs_stage1:
        raise ValueError(f"{rank} configures stage 1 (the warm start), which this launch does not run "
                         f"(stages: {list(config.stages)}); LoRA in verl's RL stage is "
                         "actor_rollout_ref.model.lora_rank")
    strategy = OmegaConf.select(config, "actor_rollout_ref.actor.strategy", default="fsdp")
    if strategy not in FSDP_STRATEGIES:
        raise ValueError(f"{rank} needs verl's FSDP engine, but actor_rollout_ref.actor.strategy={strategy} "
                         "(Megatron's LoRA is actor_rollout_ref.model.lora); set the strategy to fsdp2 or "
                         "cadft.model.lora_rank=0")
    adapter = OmegaConf.select(config, "actor_rollout_ref.model.lora_adapter_path")
    if adapter:
        raise ValueError(f"{rank} trains a fresh adapter in stage 1 and hands a merged model to stage 2, but "
                         f"actor_rollout_ref.model.lora_adapter_path={adapter} would load another adapter on top of "
                         "it: set one of the two")
    return lora


def check_targets_match(lora: LoraOptions, model_path: str, trust_remote_code: bool = False) -> None:
    """Raise naming ``cadft.model.target_modules`` when no module of the model at ``model_path`` matches it. A model
    whose config cannot be read here (a hub name offline) is left to the engine."""
    if not lora.enabled:
        return
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        hf_config = AutoConfig.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001 - the start-model check names a missing model
        return
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config, trust_remote_code=trust_remote_code)
    try:
        get_peft_model(model, LoraConfig(**lora.peft_kwargs()))
    except ValueError as exc:
        linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                         if isinstance(module, torch.nn.Linear)})
        raise ValueError(f"cadft.model.target_modules={lora.target_modules}: no module of the model at {model_path} "
                         f"matches ({exc}); its linear modules are {', '.join(linear)} (or use all-linear)") from None
