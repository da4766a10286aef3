"""A ``torch.cuda``-shaped module for the CPU, returned by the CPU platform's ``device_module``.

verl calls ``get_torch_device().<fn>()`` for memory stats, RNG state, streams and device selection. ``torch.cpu``
has only part of that surface, so this module fills the rest with the CPU's honest equivalents: one device, no
separate device memory (memory stats report 0; use process RSS for host memory), the global CPU RNG.
"""

from __future__ import annotations

import contextlib
import types

import psutil
import torch


class _CPUDeviceModule(types.ModuleType):
    def __init__(self):
        super().__init__("cadft_verl.platform.cpu_device_module")

    # device selection -------------------------------------------------------------------------
    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        return 1

    def current_device(self) -> str:
        return "cpu"

    def set_device(self, device=None) -> None:
        return None

    def get_device_name(self, device=None) -> str:
        return "cpu"

    def synchronize(self, device=None) -> None:
        return None

    # memory: the CPU has no separate device memory pool ----------------------------------------
    def empty_cache(self) -> None:
        return None

    def ipc_collect(self) -> None:
        return None

    def memory_allocated(self, device=None) -> int:
        return 0

    def memory_reserved(self, device=None) -> int:
        return 0

    def max_memory_allocated(self, device=None) -> int:
        return 0

    def max_memory_reserved(self, device=None) -> int:
        return 0

    def reset_peak_memory_stats(self, device=None) -> None:
        return None

    def set_per_process_memory_fraction(self, fraction, device=None) -> None:
        return None

    def mem_get_info(self, device=None) -> tuple[int, int]:
        vm = psutil.virtual_memory()
        return vm.available, vm.total

    # RNG ---------------------------------------------------------------------------------------
    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def get_rng_state(self, device=None) -> torch.Tensor:
        return torch.get_rng_state()

    def set_rng_state(self, state, device=None) -> None:
        torch.set_rng_state(state)

    # streams and events: CPU ops are synchronous ------------------------------------------------
    def current_stream(self, device=None):
        return torch.cpu.current_stream()

    def stream(self, stream=None):
        return contextlib.nullcontext()

    Stream = torch.cpu.Stream

    class Event:
        def __init__(self, *args, **kwargs):
            pass

        def record(self, stream=None):
            return None

        def synchronize(self):
            return None

        def wait(self, stream=None):
            return None

        def query(self):
            return True

    def __getattr__(self, name):
        # anything else torch.cpu provides (amp, is_initialized, ...)
        return getattr(torch.cpu, name)


cpu_device_module = _CPUDeviceModule()
