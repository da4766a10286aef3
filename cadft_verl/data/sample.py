"""The small embedded datasets, in both of verl's formats.

- :func:`make_arith`: the CPU default's data, the embedded arithmetic task (:mod:`cadft_verl.tasks.arith`), generated
  from a seed (nothing read from disk): the SFT training mix (with its incompatible demonstrations, ``kind`` in
  ``extra_info``), RL training prompts, and RL validation prompts from the held-out benchmark ``arith``. Its two
  conversions (demonstrations, prompts) are written into the folder as one.
- :func:`make_sample`: a few hundred GSM8K train rows, read from the shared benchmark folder
  (``$CADFT_BENCHMARKS_DIR``, ``<cwd>/../shared/benchmarks`` or ``<repo>/../shared/benchmarks``); never copied into
  the project, only converted.
"""

from __future__ import annotations

import json
import os

from cadft_verl.data.convert import ConvertConfig, Converter, DataError, check_out, convert
from cadft_verl.data.writer import AtomicOutputs, publish
from cadft_verl.math.prompts import DEFAULT_TEMPLATE
from cadft_verl.tasks import arith
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


DEFAULT_ARITH_OUT = os.path.join("outputs", "data", "arith")
ARITH_SFT = 512
ARITH_RL = 256
ARITH_VAL = 48


def make_arith(
    out: str = DEFAULT_ARITH_OUT,
    sft_size: int = ARITH_SFT,
    rl_size: int = ARITH_RL,
    val_size: int = ARITH_VAL,
    seed: int = 0,
    mix: dict[str, float] | None = None,
    template: str = DEFAULT_TEMPLATE,
    **overrides,
) -> dict:
    """Write ``out/sft/train.parquet`` (the demonstration mix), ``out/rl/train.parquet`` (prompts of other training
    problems), the validation files ``out/{sft,rl}/val.parquet`` (the first ``val_size`` problems of the held-out
    benchmark ``arith``, with clean solutions in the SFT one) and
    ``out/raw/*.jsonl`` (the generated GSM8K-schema rows they were converted from). Returns the summary."""
    if sft_size < 1 or rl_size < 1 or not 0 <= val_size <= arith.TEST_SIZE:
        raise DataError(f"arith sizes must be sft >= 1, rl >= 1, 0 <= val <= {arith.TEST_SIZE} "
                        f"(got {sft_size}, {rl_size}, {val_size})")
    check_out(out)
    try:
        rows = arith.train_rows(sft_size + rl_size, seed=seed, mix=mix)
    except ValueError as e:
        raise DataError(str(e)) from None
    prompts = [{k: v for k, v in r.items() if k != "kind"} for r in rows[sft_size:]]  # RL rows have no demonstration
    raw = {f"raw/{name}.jsonl": part
           for name, part in (("sft", rows[:sft_size]), ("rl", prompts), ("val", arith.test_rows()[:val_size]))}
    with AtomicOutputs() as w:  # the inputs of the two conversions
        for rel, part in raw.items():
            w.text(os.path.join(out, rel), "".join(json.dumps(r) + "\n" for r in part))
        w.commit()
    val = os.path.join(out, "raw/val.jsonl") if val_size else None  # clean held-out solutions: sft/val = val/loss
    common = dict(out=out, source="arith", template=template, seed=seed, val_input=val, **overrides)
    files, summary = {}, {"task": "arith", "seed": seed}
    for fmt in ("sft", "rl"):
        parts, summary[fmt] = Converter(ConvertConfig(input=os.path.join(out, f"raw/{fmt}.jsonl"), formats=(fmt,),
                                                      **common)).collect()
        files.update(parts)
    summary["kinds"] = {k: sum(r["kind"] == k for r in rows[:sft_size]) for k in arith.KINDS}
    return publish(out, files, summary, also=tuple(raw))

