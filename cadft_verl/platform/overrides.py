"""Config overrides that verl needs to train on the CPU platform (hydra dotlist form)."""

from __future__ import annotations

# Each entry: why it is needed on CPU.
CPU_SFT_OVERRIDES: list[str] = [
    # verl defaults to the 'cuda' device for tensors and the engine lookup
    "trainer.device=cpu",
    # FSDP1 needs an accelerator; FSDP2's fully_shard works on CPU with gloo
    "engine.strategy=fsdp2",
    # flash-attention is CUDA-only; sdpa runs everywhere
    "+model.override_config.attn_implementation=sdpa",
    # CPU kernels are fp32; bf16 autocast on CPU is slow and changes the numerics under test
    "+engine.mixed_precision={param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}",
]


def cpu_overrides() -> list[str]:
    return list(CPU_SFT_OVERRIDES)
