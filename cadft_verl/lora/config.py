"""Typed ``cadft.model`` block: LoRA for stage 1 of the one launch, with verl's meaning of its FSDP engine's
``model.lora_rank`` / ``lora_alpha`` / ``target_modules`` (``verl.workers.config.HFModelConfig``). Its YAML, with the
same comment above every field, is in ``recipes/main.yaml``; ``tests/launcher/test_recipes_on_cpu.py`` keeps the two
equal. Stage 2 keeps verl's own ``actor_rollout_ref.model.lora_rank`` (full fine-tuning by default)."""

from __future__ import annotations

from dataclasses import dataclass

from cadft_verl.config.block import TypedBlock


@dataclass
class LoraOptions(TypedBlock):
    """Stage 1's LoRA: rank 0 is full fine-tuning; rank > 0 trains only a PEFT adapter on verl's FSDP engine, and the
    stage's HF export is the merged model (``cadft_verl.lora.export``)."""

    PREFIX = "cadft.model"

    # LoRA rank of stage 1 (verl's model.lora_rank): 0 = full fine-tuning; > 0 trains only a LoRA adapter
    lora_rank: int = 0

    # LoRA scaling numerator (verl's model.lora_alpha; the adapter's update is scaled by lora_alpha / lora_rank);
    # > 0 when lora_rank > 0, recorded in the adapter's adapter_config.json and lora_train_meta.json
    lora_alpha: int = 16

    # modules that get an adapter (verl's model.target_modules): all-linear, or a list of module names or suffixes
    # (q_proj, v_proj, ...); a name that matches nothing in the model stops the launch before any worker starts
    target_modules: str | list = "all-linear"

    def __post_init__(self):
        self.validate()

    @property
    def enabled(self) -> bool:
        return int(self.lora_rank) > 0

    def validate(self) -> None:
        rank = self.lora_rank
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ValueError(f"cadft.model.lora_rank must be an int >= 0 (0: full fine-tuning), got {rank!r}")
        alpha = self.lora_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise ValueError(f"cadft.model.lora_alpha must be a number, got {alpha!r}")
        if self.enabled and alpha <= 0:
            raise ValueError(f"cadft.model.lora_alpha={alpha}: with cadft.model.lora_rank={rank} it must be > 0 (the "
                             "adapter's update is scaled by lora_alpha / lora_rank: 0 would train nothing)")
        targets = self.target_modules
        if isinstance(targets, str):
            if not targets.strip():
                raise ValueError("cadft.model.target_modules is empty: use all-linear or a list of module names")
        elif not (isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) and t for t in targets)):
            raise ValueError(f"cadft.model.target_modules must be all-linear or a non-empty list of module names, "
                             f"got {targets!r}")

    def peft_kwargs(self) -> dict:
        """The ``peft.LoraConfig`` arguments verl's FSDP engine builds from these options."""
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return {"r": int(self.lora_rank), "lora_alpha": self.lora_alpha, "target_modules": targets, "bias": "none",
                "task_type": "CAUSAL_LM"}
