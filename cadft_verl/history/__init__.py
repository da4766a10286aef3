"""Per-sample compatibility history (METHOD.md section 3): EMA of z and visits per sample (``CompatibilityHistory``),
configured by the typed ``cadft.history`` block (``HistoryConfig``)."""

from .config import HistoryConfig
from .history import HISTORY_FILE, CompatibilityHistory

__all__ = ["HISTORY_FILE", "CompatibilityHistory", "HistoryConfig"]
