"""verl platform for machines without an accelerator (registered as ``cpu``, selected with ``VERL_PLATFORM=cpu``).

verl 0.9.1 ships platforms for NVIDIA, Ascend and ROCm only and otherwise falls back to ``nvidia``. This platform is
added through verl's own ``PlatformRegistry`` (no edit to verl) and is never auto-detected: it is used only when the
user asks for it. ``activate_cpu_platform()`` does the remaining wiring that the CPU needs:

- the FSDP/FSDP2 language-model engines are registered for device ``cpu`` in verl's ``EngineRegistry``
  (verl registers them for cuda/npu only);
- ``torch.distributed.init_process_group`` gets a plain ``gloo`` backend: verl builds
  ``f"cpu:gloo,{device}:{backend}"``, which is ``"cpu:gloo,cpu:gloo"`` here and which torch rejects
  ("Duplicate device type cpu").

Model-side settings that the CPU needs (``sdpa`` attention, ``engine.strategy=fsdp2``, ``trainer.device=cpu``)
are config: the profile ``cadft_verl/config/profile/cpu.yaml`` (``cpu_overrides()`` for verl's own trainers).
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Optional

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

from .cpu_device import cpu_device_module

PLATFORM_NAME = "cpu"


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """The host CPU as verl's device: gloo collectives, torch's CPU kernels, no device memory pool."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return cpu_device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        # Never auto-detected: a machine without a GPU should say so explicitly (VERL_PLATFORM=cpu).
        return False

    def current_device(self) -> str:
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        with torch.profiler.record_function(msg):
            yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # Ray's "GPU" resource is faked on CPU (ray_init.num_gpus) so that verl's resource pools place workers.
        return "GPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        return {
            "VLLM_TARGET_DEVICE": "cpu",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        }

    def cudart(self) -> Any:
        return None


def _normalise_backend(backend: Any) -> Any:
    """``"cpu:gloo,cpu:gloo"`` -> ``"gloo"``; every other value unchanged."""
    if not isinstance(backend, str) or "," not in backend:
        return backend
    parts = [p.strip() for p in backend.split(",") if p.strip()]
    names = {p.split(":", 1)[-1] for p in parts}
    devices = [p.split(":", 1)[0] for p in parts if ":" in p]
    if names == {"gloo"} and set(devices) <= {"cpu"}:
        return "gloo"
    return backend


def _patch_init_process_group() -> None:
    import torch.distributed as dist

    original = dist.init_process_group
    if getattr(original, "_cadft_cpu_patched", False):
        return

    @functools.wraps(original)
    def init_process_group(*args, **kwargs):
        if "backend" in kwargs:
            kwargs["backend"] = _normalise_backend(kwargs["backend"])
        elif args:
            args = (_normalise_backend(args[0]),) + tuple(args[1:])
        return original(*args, **kwargs)

    init_process_group._cadft_cpu_patched = True
    dist.init_process_group = init_process_group


def _load_value_model_sdpa(local_path, torch_dtype, model_config, trust_remote_code):
    """verl's ``load_valuehead_model`` (a token-classification head of one label on the causal LM) with ``sdpa``
    attention: verl's own asks for ``flash_attention_2``, which is CUDA-only, so a PPO critic could not load on CPU."""
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(
        pretrained_model_name_or_path=local_path, torch_dtype=torch_dtype, config=model_config,
        attn_implementation="sdpa", trust_remote_code=trust_remote_code)


def _cpu_value_engine():
    """verl's FSDP value-head engine (a PPO critic) whose model loads with ``sdpa`` attention on the CPU platform."""
    import verl.utils.model as verl_model
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithValueHead

    class CPUFSDPEngineWithValueHead(FSDPEngineWithValueHead):
        def _build_module(self):
            original = verl_model.load_valuehead_model
            verl_model.load_valuehead_model = _load_value_model_sdpa  # verl imports it at call time
            try:
                return super()._build_module()
            finally:
                verl_model.load_valuehead_model = original

    return CPUFSDPEngineWithValueHead


def _register_cpu_engines() -> None:
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    for model_type, cls in (("language_model", FSDPEngineWithLMHead), ("value_model", _cpu_value_engine())):
        for backend in ("fsdp", "fsdp2"):
            registered = EngineRegistry._engines.get(model_type, {}).get(backend, {})
            if PLATFORM_NAME not in registered:
                EngineRegistry.register(model_type=model_type, backend=backend, device=PLATFORM_NAME)(cls)


def cpu_platform_selected() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


_ACTIVATED = False


def activate_cpu_platform() -> None:
    """Wire verl for the CPU (idempotent). Called by the plugin when ``VERL_PLATFORM=cpu``."""
    global _ACTIVATED
    if _ACTIVATED:
        return
    _patch_init_process_group()
    _register_cpu_engines()
    _ACTIVATED = True
