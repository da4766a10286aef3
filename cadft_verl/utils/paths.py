"""Locate the shared benchmark folder (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CADFT_BENCHMARKS_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]


def benchmark_dir_candidates() -> list[Path]:
    cands = []
    if os.environ.get(ENV_VAR):
        cands.append(Path(os.environ[ENV_VAR]))
    cands.append(Path.cwd() / ".." / "shared" / "benchmarks")
    cands.append(REPO_ROOT / ".." / "shared" / "benchmarks")
    return cands


def find_benchmarks_dir() -> Path | None:
    """``$CADFT_BENCHMARKS_DIR``, else ``<cwd>/../shared/benchmarks``, else ``<repo root>/../shared/benchmarks``;
    the first that exists (resolved), or None. An explicitly set env var that does not exist wins no fallback."""
    if os.environ.get(ENV_VAR):
        p = Path(os.environ[ENV_VAR])
        return p.resolve() if p.is_dir() else None
    for p in benchmark_dir_candidates():
        if p.is_dir():
            return p.resolve()
    return None
