"""Helpers of the data-preparation tests (a plain module: conftest.py is not imported by name)."""

from __future__ import annotations

import json
import os


def write_jsonl(path, rows) -> str:
    """Rows are dicts (dumped as JSON) or raw strings (written as-is, e.g. a malformed line)."""
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


def read_summary(out) -> dict:
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return json.load(f)
