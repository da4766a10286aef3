"""The embedded CPU default run: real GSM8K sample -> tiny local model -> CADFT SFT on verl's engine (CPU platform).

    python -m cadft_verl.cpu_default [--out outputs/cpu_default] [--loss cadft] [--nproc 2] [--steps N]

Builds everything it needs locally (nothing is downloaded): the data sample from ../shared/benchmarks (GSM8K train,
converted by ``cadft_verl.data``), a tiny Qwen2 model with a tokenizer trained on that sample, then runs the SFT stage
with ``torchrun`` on ``--nproc`` gloo ranks, and prints where the checkpoints, the HF export and the metrics are.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd


def build_inputs(out: str) -> tuple[str, str]:
    """(data dir, model dir); reuses what an earlier run built."""
    from cadft_verl.data.sample import make_sample
    from cadft_verl.utils.tiny_model import build_tiny_model

    data_dir = os.path.join(out, "data")
    if not os.path.exists(os.path.join(data_dir, "sft", "train.parquet")):
        make_sample(out=data_dir)
    model_dir = os.path.join(out, "model")
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        frame = pd.read_parquet(os.path.join(data_dir, "sft", "train.parquet"))
        texts = [m["content"] for msgs in frame["messages"] for m in msgs]
        build_tiny_model(model_dir, texts=texts, vocab_size=1024, hidden_size=128, num_heads=4, num_layers=2,
                         intermediate_size=256)
    return data_dir, model_dir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join("outputs", "cpu_default"))
    ap.add_argument("--loss", default="cadft", choices=["sft", "dft", "cadft"])
    ap.add_argument("--nproc", type=int, default=2, help="gloo ranks (data-parallel FSDP2 workers)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps (default: one epoch)")
    ap.add_argument("overrides", nargs="*", help="extra hydra overrides for the SFT stage")
    args = ap.parse_args(argv)

    from cadft_verl.trainer.launch import sft_command

    out = os.path.abspath(args.out)
    data_dir, model_dir = build_inputs(out)
    run_dir = os.path.join(out, f"sft_{args.loss}")
    overrides = [
        "profile=cpu",
        f"model.path={model_dir}",
        f"data.train_files={os.path.join(data_dir, 'sft', 'train.parquet')}",
        f"data.val_files={os.path.join(data_dir, 'sft', 'val.parquet')}",
        "data.train_batch_size=32",
        "data.micro_batch_size_per_gpu=8",
        "data.use_dynamic_bsz=False",
        "data.max_length=1024",
        "data.truncation=right",
        "trainer.total_epochs=1",
        "optim.lr=1e-3",
        f"cadft.loss={args.loss}",
        f"trainer.default_local_dir={os.path.join(run_dir, 'checkpoints')}",
        "trainer.logger=[console,file]",
    ]
    if args.steps:
        overrides.append(f"trainer.total_training_steps={args.steps}")
    os.makedirs(run_dir, exist_ok=True)
    metrics = os.path.join(run_dir, "metrics.jsonl")
    env = dict(os.environ, VERL_PLATFORM="cpu", VERL_FILE_LOGGER_PATH=metrics)
    import subprocess

    rc = subprocess.call(sft_command(args.nproc, overrides + list(args.overrides)), env=env)
    if rc != 0:
        print(f"[cadft-verl] the SFT stage failed (exit {rc}); partial outputs in {run_dir}", file=sys.stderr)
        return rc
    print(f"[cadft-verl] outputs: data {data_dir} | base model {model_dir} | run {run_dir} (metrics: {metrics})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
