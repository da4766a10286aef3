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


def _config_files(value) -> list[str]:
    """A config entry naming one file or a list of files, as a list (empty for null)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def check_config_paths(config, model_key: str, file_keys=()) -> None:
    """Raise naming the key and the path when the model folder or a listed data file does not exist."""
    from omegaconf import OmegaConf

    model = OmegaConf.select(config, model_key)
    if not model or not os.path.exists(os.path.expanduser(str(model))):
        raise FileNotFoundError(f"{model_key}: no model at {model!r}")
    for key in file_keys:
        for path in _config_files(OmegaConf.select(config, key)):
            if not os.path.exists(os.path.expanduser(path)):
                raise FileNotFoundError(f"{key}: no file at {path!r}")
