"""verl platform support this project adds (the CPU platform, vLLM's CPU weight-sync fix).

Names resolve lazily: ``cpu.py`` imports verl, and ``import verl`` loads this project's plugin, so an eager import
here would be circular when something (vLLM's plugin loader, a user) imports ``cadft_verl.platform`` first.
"""

import importlib

_EXPORTS = {
    "PLATFORM_NAME": ".cpu",
    "PlatformCPU": ".cpu",
    "activate_cpu_platform": ".cpu",
    "cpu_platform_selected": ".cpu",
    "cpu_overrides": ".overrides",
    "prepare_device": ".select",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
