#!/usr/bin/env bash
# The DFT protocol (METHOD.md section 6) as stage 1, then GRPO, on one node of 8 GPUs.
#   stage 1: Qwen2.5-Math-1.5B, NuminaMath-CoT first 100k rows, 1 epoch, global batch 256, lr 5e-5,
#            AdamW (0.9, 0.95), wd 0.01, warm-up 0.1, cosine, clip 1.0, max length 2048, bf16
#   stage 2: GRPO, lr 1e-6, 256 prompts per step, n = 4 rollouts, warm-up 0.1, 0/1 math-verify reward
# Usage: bash recipes/scripts/qwen2.5_math_1.5b_8gpu.sh [cadft_then_grpo|dft_then_grpo|sft_then_grpo|grpo] [k=v ...]
# Install: the GPU stack, `pip install -r requirements/gpu.txt && pip install --no-deps -e .` (docs/install.md);
# check it with `python -m cadft_verl check`.
# Several nodes: start a Ray cluster first, then add trainer.nnodes=N (docs/multinode.md).
set -euo pipefail
RECIPE="${1:-cadft_then_grpo}"; shift || true
MODEL="${MODEL:-Qwen/Qwen2.5-Math-1.5B}"
DATA="${DATA:-data}"
RUNS="${RUNS:-runs}"

# demonstrations for stage 1 (hub download needs network; any local JSONL/parquet works with --source generic)
[ -f "$DATA/numina/sft/train.parquet" ] || python -m cadft_verl.data convert --source numina \
    --input AI-MO/NuminaMath-CoT --limit 100000 --max-length 2048 --tokenizer "$MODEL" --out "$DATA/numina"
# prompts for stage 2: MATH train with a held-out validation split. MATH_TRAIN: a local MATH train file (JSONL or
# parquet, fields problem/solution); unset: the data CLI's own MATH source on the hub (needs network)
[ -f "$DATA/math/rl/train.parquet" ] || python -m cadft_verl.data convert --source math \
    ${MATH_TRAIN:+--input "$MATH_TRAIN"} --val-size 500 --out "$DATA/math"

python -m verl.trainer.main recipe="$RECIPE" profile=gpu \
    actor_rollout_ref.model.path="$MODEL" \
    cadft.data.train_files="$DATA/numina/sft/train.parquet" \
    cadft.data.train_batch_size=256 cadft.data.micro_batch_size_per_gpu=4 cadft.data.max_length=2048 \
    data.train_files="$DATA/math/rl/train.parquet" data.val_files="$DATA/math/rl/val.parquet" \
    data.train_batch_size=256 data.max_prompt_length=1024 data.max_response_length=3072 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8 actor_rollout_ref.rollout.n=4 \
    trainer.total_epochs=1 trainer.save_freq=50 trainer.test_freq=25 \
    trainer.default_local_dir="$RUNS/$RECIPE" trainer.logger='[console,tensorboard]' "$@"
