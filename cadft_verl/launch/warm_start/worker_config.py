"""Stage 1's worker configuration: verl's ``actor_rollout_ref`` for the SFT-style stage (batch sizes, optimiser, the
rollout lengths of the rewrite rounds), and the start-up checks of options verl's workers would only trip over later.
"""

from __future__ import annotations

from omegaconf import OmegaConf, open_dict

from cadft_verl.lora.checks import lora_options
from cadft_verl.rewrite import RewriteConfig
from cadft_verl.trainer.hook import refuse_sequence_parallel


def rewrite_config(config) -> RewriteConfig:
    return RewriteConfig.from_mapping(config.cadft.get("rewrite"))


def stage_worker_config(config) -> "OmegaConf":
    """``actor_rollout_ref`` for stage 1: the RL actor settings with the SFT batch sizes and optimiser (and, for the
    rewrite rounds, the rollout's lengths: prompts up to ``cadft.data.max_length``, answers up to
    ``cadft.rewrite.max_tokens``), and LoRA as ``cadft.model`` says (never stage 2's ``actor_rollout_ref.model``
    LoRA): the rewrite rounds' rollout gets the adapter merged into the weights."""
    cad = config.cadft
    lora = lora_options(config)
    rw = rewrite_config(config)
    arr = OmegaConf.create(OmegaConf.to_container(config.actor_rollout_ref, resolve=True))
    with open_dict(arr):
        arr.actor.optim = OmegaConf.merge(arr.actor.optim, cad.optim)
        arr.actor.ppo_mini_batch_size = cad.data.train_batch_size
        arr.actor.ppo_micro_batch_size = None
        arr.actor.ppo_micro_batch_size_per_gpu = cad.data.micro_batch_size_per_gpu
        arr.actor.use_dynamic_bsz = cad.data.use_dynamic_bsz
        arr.actor.ppo_max_token_len_per_gpu = cad.data.max_token_len_per_gpu
        arr.actor.use_kl_loss = False
        arr.actor.checkpoint.save_contents = ["model", "optimizer", "extra", "hf_model"]
        arr.actor.checkpoint.load_contents = ["model", "optimizer", "extra"]
        arr.rollout.log_prob_micro_batch_size = None
        arr.rollout.log_prob_micro_batch_size_per_gpu = cad.data.micro_batch_size_per_gpu
        arr.rollout.log_prob_use_dynamic_bsz = cad.data.use_dynamic_bsz
        arr.rollout.log_prob_max_token_len_per_gpu = cad.data.max_token_len_per_gpu
        arr.rollout.prompt_length = int(cad.data.max_length)
        arr.rollout.response_length = int(rw.max_tokens or cad.data.max_length)
        arr.rollout.n = 1
        arr.model.lora_rank = int(lora.lora_rank)
        if lora.enabled:
            arr.model.lora_alpha = lora.lora_alpha
            arr.model.target_modules = lora.peft_kwargs()["target_modules"]
            arr.model.lora = OmegaConf.merge(arr.model.get("lora") or {}, {"merge": True})
        if arr.rollout.get("enable_sleep_mode") is None:
            # vLLM's sleep mode is what frees the rollout's memory between rounds; it needs free_cache_engine (and
            # CUDA): where the cache is never freed (CPU profile) there is nothing to sleep
            arr.rollout.enable_sleep_mode = bool(arr.rollout.get("free_cache_engine", True))
    return arr


def check_stage_options(config, loss_name: str) -> None:
    """Options stage 1 cannot run with, refused before any worker starts (naming the option and the fix)."""
    if loss_name != "cadft":
        return
    actor = config.actor_rollout_ref.actor
    refuse_sequence_parallel(actor.get("ulysses_sequence_parallel_size", 1),
                             "actor_rollout_ref.actor.ulysses_sequence_parallel_size")
    refuse_sequence_parallel((actor.get("fsdp_config") or {}).get("ulysses_sequence_parallel_size", 1),
                             "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size")
