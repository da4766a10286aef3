"""Pick verl's platform from a run's config, before verl resolves it (called first by every entry point)."""

from __future__ import annotations

import os


def prepare_device(config) -> None:
    """``trainer.device=cpu`` selects this plugin's ``cpu`` platform; then verl's own ``auto_set_device``."""
    from verl.plugin.platform import platform_manager
    from verl.utils.device import auto_set_device

    if str(config.trainer.get("device", "")).lower() == "cpu":
        from .cpu import PlatformCPU, activate_cpu_platform

        os.environ["VERL_PLATFORM"] = "cpu"
        activate_cpu_platform()
        current = platform_manager._current_platform
        if current is None or current.device_name != "cpu":
            platform_manager.set_platform(PlatformCPU())
    auto_set_device(config)
