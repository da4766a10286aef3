"""Per-sample compatibility history (METHOD.md section 3): EMA of z and visit counts per dataset index."""

from .history import HISTORY_FILE, CompatibilityHistory

__all__ = ["HISTORY_FILE", "CompatibilityHistory"]
