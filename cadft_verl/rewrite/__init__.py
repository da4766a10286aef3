"""Delayed, low-frequency, compatibility-guided rewriting of training targets (METHOD.md section 4).

- :class:`RewriteConfig` (``cadft.rewrite``), :class:`RewriteSchedule` (when rounds run);
- :func:`select_candidates` / :func:`draw` (which samples);
- :class:`RewritableSFTDataset` / :class:`IndexedSFTCollator` (indices in batches, replaceable targets);
- :class:`RewriteRound` (one round: generate, verify, score, replace, audit);
- generators: :class:`VerlRolloutGenerator` (verl's rollout replicas) or any ``module:Class``;
- audit files: :func:`save_rewrite_state` / :func:`load_rewrite_state`.
See docs/rewriting.md.
"""

from .audit import AuditRecord, load_rewrite_state, read_jsonl, save_rewrite_state
from .config import RewriteConfig
from .dataset import INDEX_KEY, IndexedSFTCollator, RewritableSFTDataset
from .generator import GenerationError, GenRequest, RewriteGenerator, VerlRolloutGenerator, generator_class
from .round import RewriteRound
from .schedule import RewriteSchedule, resolve_steps
from .selection import LookaheadSelector, PersistentSelector, draw, num_candidates, select_candidates

__all__ = [
    "INDEX_KEY",
    "AuditRecord",
    "GenRequest",
    "GenerationError",
    "IndexedSFTCollator",
    "LookaheadSelector",
    "PersistentSelector",
    "RewritableSFTDataset",
    "RewriteConfig",
    "RewriteGenerator",
    "RewriteRound",
    "RewriteSchedule",
    "VerlRolloutGenerator",
    "draw",
    "generator_class",
    "load_rewrite_state",
    "num_candidates",
    "read_jsonl",
    "resolve_steps",
    "save_rewrite_state",
    "select_candidates",
]
