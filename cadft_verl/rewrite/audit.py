"""Rewrite audit: one JSON record per candidate of every round, and the files written next to a checkpoint.

Record fields: ``step`` (optimizer step after which the round ran), ``index`` (dataset position), ``uid`` /
``source_index`` (from the row's ``extra_info`` when present), ``ema_z`` (history EMA of z at selection), ``visits``,
``old_nll`` / ``new_nll`` (length-normalised NLL of the current target and of the chosen rewrite under the current
policy; null when not computed), ``old_z`` / ``new_z`` (the same NLLs as z-scores against the batch statistics in use),
``accepted`` (bool), ``reason`` (why not, or ``accepted``/``accepted (unverified)``), ``generated`` / ``verified``
(candidate counts), ``old_text`` / ``new_text``.

Files (``<stage dir>/global_step_N/rewrite/``): ``audit.jsonl`` (every round so far), ``targets.json``
(``{index: text}`` of all accepted rewrites: what a resume restores), ``train_rewritten.parquet`` (the whole training
set with the rewritten targets and a ``cadft_rewritten`` flag column). The original data files are never modified.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from cadft_verl.utils.files import atomic_path, read_json, read_jsonl, write_json, write_jsonl

REWRITE_DIR = "rewrite"
AUDIT_FILE = "audit.jsonl"
TARGETS_FILE = "targets.json"
DATASET_FILE = "train_rewritten.parquet"


@dataclass
class AuditRecord:
    step: int
    index: int
    ema_z: float | None = None
    visits: int = 0
    drawn: bool = True
    accepted: bool = False
    reason: str = ""
    generated: int = 0
    verified: int = 0
    old_nll: float | None = None
    new_nll: float | None = None
    old_z: float | None = None
    new_z: float | None = None
    uid: str | None = None
    source_index: int | None = None
    old_text: str = ""
    new_text: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=str)


def save_rewrite_state(folder: str, dataset, audit: list[dict], write_dataset: bool = True) -> str:
    """Write audit, targets and (when anything was rewritten) the rewritten dataset into ``folder/rewrite``."""
    out = os.path.join(folder, REWRITE_DIR)
    os.makedirs(out, exist_ok=True)
    write_jsonl(os.path.join(out, AUDIT_FILE),
                [json.loads(r.to_json()) if isinstance(r, AuditRecord) else r for r in audit])
    targets = {str(k): v for k, v in sorted(dataset.targets().items())}
    write_json(os.path.join(out, TARGETS_FILE), targets, indent=None)
    if write_dataset and targets:
        with atomic_path(os.path.join(out, DATASET_FILE)) as tmp:
            dataset.write_parquet(tmp)
    return out


def load_rewrite_state(folder: str, dataset) -> list[dict]:
    """Restore the rewritten targets into ``dataset``; return the audit so far (empty when no rewrite state)."""
    out = os.path.join(folder, REWRITE_DIR)
    targets_path = os.path.join(out, TARGETS_FILE)
    targets = read_json(targets_path)
    if targets is not None:
        dataset.restore(targets)
    return read_jsonl(os.path.join(out, AUDIT_FILE))
