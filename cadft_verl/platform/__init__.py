"""verl platform support this project adds (the CPU platform)."""

from .cpu import PLATFORM_NAME, PlatformCPU, activate_cpu_platform, cpu_platform_selected
from .overrides import cpu_overrides

__all__ = ["PLATFORM_NAME", "PlatformCPU", "activate_cpu_platform", "cpu_overrides", "cpu_platform_selected"]
