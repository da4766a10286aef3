"""The small embedded CPU default dataset: a few hundred GSM8K train rows, in both formats.

The GSM8K file is read from the shared benchmark folder (``$CADFT_BENCHMARKS_DIR``, ``<cwd>/../shared/benchmarks``
or ``<repo>/../shared/benchmarks``); it is never copied into the project, only converted.
"""

from __future__ import annotations

import os

from cadft_verl.data.convert import ConvertConfig, convert
from cadft_verl.data.sources import DataError
from cadft_verl.math.prompts import DEFAULT_TEMPLATE
from cadft_verl.utils.paths import find_benchmarks_dir

DEFAULT_SAMPLE_OUT = os.path.join("outputs", "data", "gsm8k_sample")
DEFAULT_TRAIN = 256
DEFAULT_VAL = 32


def default_gsm8k_train() -> str:
    bench = find_benchmarks_dir()
    if bench is None:
        raise DataError(
            "cannot find the benchmark folder: set CADFT_BENCHMARKS_DIR or pass --gsm8k PATH "
            "(looked for <cwd>/../shared/benchmarks and <repo>/../shared/benchmarks)"
        )
    path = os.path.join(bench, "gsm8k", "train.jsonl")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no GSM8K train file in the benchmark folder; pass --gsm8k PATH")
    return path


def make_sample(
    out: str = DEFAULT_SAMPLE_OUT,
    gsm8k: str | None = None,
    train_size: int = DEFAULT_TRAIN,
    val_size: int = DEFAULT_VAL,
    seed: int = 0,
    template: str = DEFAULT_TEMPLATE,
    **overrides,
) -> dict:
    """Write ``out/{sft,rl}/{train,val}.parquet`` (+ summary.json) from a seeded shuffle of GSM8K train: exactly
    ``train_size`` + ``val_size`` rows that pass validation, dedup and decontamination. Returns the summary."""
    if train_size < 1 or val_size < 0:
        raise DataError(f"sample sizes must be train >= 1, val >= 0 (got {train_size}, {val_size})")
    cfg = ConvertConfig(
        out=out,
        source="gsm8k",
        input=gsm8k or default_gsm8k_train(),
        template=template,
        shuffle=True,
        seed=seed,
        val_size=val_size or None,
        target_rows=train_size + val_size,
        **overrides,
    )
    return convert(cfg)
