"""``python -m cadft_verl.data``: convert math datasets to verl's SFT and RL parquet formats.

python -m cadft_verl.data convert --source gsm8k --input train.jsonl --val-input test.jsonl --out DIR
python -m cadft_verl.data arith --out DIR           # the embedded arithmetic task (the CPU default's data)
python -m cadft_verl.data sample --out DIR          # 256 + 32 GSM8K train rows

--source names a task of cadft_verl.tasks (or an alias: math = math500). The conversion owns --out: a rerun into it
removes the files the previous conversion wrote there and this one does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from cadft_verl.data.convert import FORMATS, ConvertConfig, DataError, convert, format_summary
from cadft_verl.data.sample import (
    ARITH_RL,
    ARITH_SFT,
    ARITH_VAL,
    DEFAULT_ARITH_OUT,
    DEFAULT_SAMPLE_OUT,
    DEFAULT_TRAIN,
    DEFAULT_VAL,
    make_arith,
    make_sample,
)
from cadft_verl.math.ngrams import DEFAULT_N, DEFAULT_THRESHOLD
from cadft_verl.math.prompts import DEFAULT_TEMPLATE, TEMPLATES, chat_templates
from cadft_verl.tasks import TASKS, get_task

#: the parser's options that are ConvertConfig's (every subcommand hands them on by name)
CONFIG_OPTIONS = frozenset(f.name for f in dataclasses.fields(ConvertConfig))


def _val_size(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if v < 0 or (v >= 1 and v != int(v)):
        raise argparse.ArgumentTypeError(f"use a row count (>= 1) or a fraction in [0, 1): {text!r}")
    return v


def _task(text: str) -> str:
    try:
        return get_task(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _formats(text: str) -> tuple[str, ...]:
    out = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"formats are a comma list of {FORMATS}, got {text!r}")
    return out


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("prompt and filters")
    g.add_argument(
        "--template",
        default=DEFAULT_TEMPLATE,
        choices=chat_templates(),
        help="prompt of the SFT user turn and the RL prompt (the same objects evaluation uses): "
        + "; ".join(f"{k}: {TEMPLATES[k].description}" for k in chat_templates()),
    )
    g.add_argument("--seed", type=int, default=0, help="seed of --shuffle and of the --val-size draw (default 0)")
    g.add_argument("--max-length", type=int, help="drop rows whose chat-templated prompt+response is longer (tokens)")
    g.add_argument("--tokenizer", help="tokenizer folder or hub name used by --max-length")
    g.add_argument("--no-dedup", dest="dedup", action="store_false", help="keep rows with a duplicate problem")
    g.add_argument(
        "--no-decontaminate",
        dest="decontaminate",
        action="store_false",
        help="do not drop training rows whose problem is in an evaluation benchmark",
    )
    g.add_argument(
        "--decontaminate-dir",
        help="benchmark folder (default: $CADFT_BENCHMARKS_DIR, else "
        "<cwd>/../shared/benchmarks, else <repo>/../shared/benchmarks); every *.jsonl except train*",
    )
    g.add_argument(
        "--decontaminate-ngram",
        type=int,
        default=DEFAULT_N,
        metavar="N",
        help=f"n of the n-gram overlap test on normalised tokens (default {DEFAULT_N}; 0 = exact/normalised match "
        "only)",
    )
    g.add_argument(
        "--decontaminate-threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        metavar="F",
        help="drop a row when shared n-grams cover at least this fraction of a benchmark problem's tokens and it "
        f"has all of that problem's numbers (default {DEFAULT_THRESHOLD:g})",
    )
    g.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first bad row (exit 2, naming file:line) instead of skipping it",
    )
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None)
    g.add_argument("--quiet", action="store_true", help="no warnings and no summary on stdout")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cadft_verl.data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser(
        "convert",
        help="convert a dataset to SFT + RL parquet",
        description="Writes OUT/sft/{train,val}.parquet, OUT/rl/{train,val}.parquet, OUT/summary.json (which records "
        "them); a rerun into OUT removes the files of the previous conversion that it no longer writes.",
    )
    c.add_argument(
        "--source",
        required=True,
        type=_task,
        metavar="TASK",
        help="the dataset: " + "; ".join(
            f"{t.name}{' (also ' + ', '.join(t.aliases) + ')' if t.aliases else ''}: {t.description}"
            for t in TASKS.values()),
    )
    c.add_argument(
        "--input",
        help="training data: .jsonl/.json/.parquet file or hub name (default: the task's hub "
        "dataset: " + ", ".join(f"{t.name}={t.hub_name}" for t in TASKS.values() if t.hub_name) + ")",
    )
    c.add_argument("--val-input", help="held-out validation file or hub name (e.g. GSM8K test)")
    c.add_argument("--out", required=True, help="output folder (the conversion owns it, see above)")
    c.add_argument("--split", help="hub split of --input (default: the task's training split, train)")
    c.add_argument("--val-split", help="hub split of --val-input (default: the task's held-out split, test)")
    c.add_argument("--hub-config", help="hub config name (default: the task's, e.g. gsm8k 'main')")
    c.add_argument("--question-field", help="field holding the problem")
    c.add_argument("--response-field", help="field holding the demonstration (SFT response)")
    c.add_argument("--answer-field", help="field holding the reference answer (else extracted from the response)")
    c.add_argument(
        "--formats", type=_formats, default=FORMATS, help="sft,rl (default both); with only rl no response is needed"
    )
    c.add_argument("--data-source", help="data_source column (default cadft/<task>)")
    c.add_argument("--limit", type=int, help="use only the first N input rows (after --shuffle)")
    c.add_argument("--shuffle", action="store_true", help="shuffle the input rows with --seed before --limit")
    c.add_argument("--val-size", type=_val_size, help="hold out a validation split of --input: count or fraction")
    c.add_argument(
        "--no-append-boxed",
        dest="append_boxed",
        action="store_false",
        help="do not add a final \\boxed{answer} line to SFT responses that have none",
    )
    _common(c)

    a = sub.add_parser("arith", help="the embedded arithmetic task (the CPU default's data), both formats")
    a.add_argument("--out", default=DEFAULT_ARITH_OUT, help=f"output folder (default {DEFAULT_ARITH_OUT})")
    a.add_argument("--sft-size", type=int, default=ARITH_SFT, help="demonstrations (30%% of them incompatible)")
    a.add_argument("--rl-size", type=int, default=ARITH_RL, help="RL training prompts (other problems)")
    a.add_argument("--val-size", type=int, default=ARITH_VAL, help="validation problems (held-out benchmark arith)")
    _common(a)

    s = sub.add_parser("sample", help="a small GSM8K dataset (GSM8K train rows, both formats)")
    s.add_argument(
        "--out",
        default=DEFAULT_SAMPLE_OUT,
        help=f"output folder (default {DEFAULT_SAMPLE_OUT}, relative to the current directory)",
    )
    s.add_argument("--gsm8k", help="GSM8K train.jsonl (default <benchmarks>/gsm8k/train.jsonl)")
    s.add_argument("--train-size", type=int, default=DEFAULT_TRAIN)
    s.add_argument("--val-size", type=int, default=DEFAULT_VAL)
    _common(s)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k in CONFIG_OPTIONS}
    try:
        if args.command == "arith":
            summary = make_arith(sft_size=args.sft_size, rl_size=args.rl_size, **options)
            print(f"arith: {summary['kinds']} demonstrations; outputs in {args.out}")
            summary = summary["sft"]
        elif args.command == "sample":
            summary = make_sample(gsm8k=args.gsm8k, train_size=args.train_size, **options)
        else:
            summary = convert(ConvertConfig(**options))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
