"""Shared fixtures of the data-preparation tests: the real benchmark folder and converted GSM8K / MATH-500 outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadft_verl.data.convert import ConvertConfig, convert
from cadft_verl.utils.paths import find_benchmarks_dir


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    d = find_benchmarks_dir()
    if d is None:
        pytest.skip(
            "benchmark folder not found (CADFT_BENCHMARKS_DIR, <cwd>/../shared/benchmarks, <repo>/../shared/benchmarks)"
        )
    return d


@pytest.fixture(scope="session")
def gsm8k_out(bench_dir, tmp_path_factory) -> Path:
    """GSM8K train (7473) -> train, GSM8K test (1319) -> val, default options."""
    out = tmp_path_factory.mktemp("gsm8k")
    convert(
        ConvertConfig(
            out=str(out),
            source="gsm8k",
            input=str(bench_dir / "gsm8k/train.jsonl"),
            val_input=str(bench_dir / "gsm8k/test.jsonl"),
            progress=False,
            quiet=True,
        )
    )
    return out


@pytest.fixture(scope="session")
def math500_out(bench_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("math500")
    convert(
        ConvertConfig(out=str(out), source="math", input=str(bench_dir / "math/test.jsonl"), progress=False, quiet=True)
    )
    return out
