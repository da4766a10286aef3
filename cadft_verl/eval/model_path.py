"""What to load for ``--model``: an HF model folder, or a verl FSDP checkpoint merged into one.

Accepted (:func:`resolve_model`):

- an HF model folder (``config.json`` plus ``*.safetensors`` / ``*.bin`` weights), e.g. stage 1's
  ``global_step_N/huggingface`` or stage 2's ``global_step_N/actor/huggingface`` when it was saved with
  ``hf_model`` in ``actor_rollout_ref.actor.checkpoint.save_contents``;
- a verl FSDP checkpoint: ``.../global_step_N`` or ``.../global_step_N/actor`` (``model_world_size_W_rank_R.pt``
  shards plus ``fsdp_config.json`` and ``huggingface/`` with the config and tokenizer), and also its weightless
  ``actor/huggingface`` folder. When the checkpoint holds an HF export with weights, that is used; else the shards
  are merged with verl's own model merger (``verl.model_merger``, FSDP backend) into ``huggingface_merged/`` next
  to them (or into ``fallback_cache`` when that folder is not writable). The merge is cached: it is redone only
  when the shards change;
- a LoRA checkpoint (``cadft_verl.lora.export``): a LoRA run's ``global_step_N`` or its ``huggingface`` export with
  the PEFT model's keys (verl's, before the hand-over merges it), merged into ``huggingface_merged/`` next to it; or
  a PEFT adapter folder (``adapter_config.json``, e.g. ``global_step_N/lora_adapter``), merged into its base model in
  ``merged/`` inside it. Both go to ``fallback_cache`` when that folder is not writable, and are cached the same way;
- a name that is not a local path (a hub model id), passed through unchanged.

Anything else (a missing folder, a folder without weights or shards) raises :class:`ModelPathError` with a one-line
message naming the folder.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

MERGED = "huggingface_merged"
_STAMP = "merged_from.json"
_SHARD_RE = re.compile(r"model_world_size_(\d+)_rank_(\d+)\.pt$")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


class ModelPathError(ValueError):
    """A ``--model`` that cannot be loaded; the message is one line and names the folder."""


def hf_weights(folder: str) -> list[str]:
    """Weight files of an HF model folder (``model*.safetensors``, ``pytorch_model*.bin``, ...); [] if none."""
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.endswith(_WEIGHT_SUFFIXES)
                  and os.path.getsize(os.path.join(folder, f)) > 0)


def is_hf_model(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "config.json")) and bool(hf_weights(folder))


def fsdp_shards(folder: str) -> list[str]:
    """verl FSDP model shards of one checkpoint (``model_world_size_W_rank_R.pt``), all of one world size."""
    if not os.path.isdir(folder):
        return []
    shards = [f for f in os.listdir(folder) if _SHARD_RE.match(f)]
    return sorted(shards, key=lambda f: int(_SHARD_RE.match(f).group(2)))


def actor_dir(path: str) -> str | None:
    """The folder holding a verl FSDP checkpoint's model shards: ``path`` itself, ``path/actor``, or (for the
    weightless ``actor/huggingface`` folder) its parent; None when there is none."""
    path = os.path.abspath(path)
    for cand in (path, os.path.join(path, "actor"), os.path.dirname(path)):
        if fsdp_shards(cand):
            return cand
    return None


def fingerprint(folder: str, names: list[str] | None = None) -> list[list]:
    """(name, size, mtime_ns) of the given files of ``folder`` (default: its weight files and config): what a cache
    or a resumed evaluation compares to tell whether a model changed."""
    names = names if names is not None else hf_weights(folder) + [
        f for f in ("config.json", "fsdp_config.json") if os.path.isfile(os.path.join(folder, f))]
    out = []
    for name in sorted(names):
        st = os.stat(os.path.join(folder, name))
        out.append([name, st.st_size, st.st_mtime_ns])
    return out


def model_fingerprint(path: str) -> dict:
    """What identifies the weights behind ``path`` (an HF folder or a verl checkpoint)."""
    if is_hf_model(path):
        return {"hf": os.path.abspath(path), "files": fingerprint(path)}
    ckpt = actor_dir(path)
    if ckpt is not None:
        return {"fsdp": ckpt, "files": fingerprint(ckpt, fsdp_shards(ckpt) + ["fsdp_config.json"])}
    return {"name": path}


def _writable(folder: str) -> bool:
    return os.access(folder, os.W_OK)


def merge_fsdp_checkpoint(ckpt: str, target: str) -> str:
    """Merge the FSDP shards in ``ckpt`` into an HF model folder ``target`` with verl's model merger (its FSDP
    backend, the code behind ``python -m verl.model_merger merge --backend fsdp``); cached by the shards'
    fingerprint. Returns ``target``."""
    stamp_path = os.path.join(target, _STAMP)
    stamp = {"source": ckpt, "files": fingerprint(ckpt, fsdp_shards(ckpt) + ["fsdp_config.json"])}
    if is_hf_model(target) and os.path.isfile(stamp_path):
        with open(stamp_path, encoding="utf-8") as f:
            if json.load(f) == stamp:
                return target
    hf_config = os.path.join(ckpt, "huggingface")
    if not os.path.isfile(os.path.join(hf_config, "config.json")):
        raise ModelPathError(f"{ckpt}: verl FSDP shards without huggingface/config.json (the model config the "
                             "merger needs); the checkpoint is incomplete")
    if not os.path.isfile(os.path.join(ckpt, "fsdp_config.json")):
        raise ModelPathError(f"{ckpt}: verl FSDP shards without fsdp_config.json; the checkpoint is incomplete")
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    print(f"[cadft_verl.eval] merging the verl FSDP checkpoint {ckpt} into {target} (verl.model_merger)", flush=True)
    try:
        merger = FSDPModelMerger(ModelMergerConfig(operation="merge", backend="fsdp", local_dir=ckpt,
                                                   target_dir=tmp, hf_model_config_path=hf_config))
        merger.merge_and_save()
        merger.cleanup()
    except Exception as exc:  # noqa: BLE001 - reported in one line, naming the checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise ModelPathError(f"{ckpt}: verl's model merger failed ({type(exc).__name__}: {first})") from exc
    with open(os.path.join(tmp, _STAMP), "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _merge_target(folder: str, name: str, fallback_cache: str | None) -> str:
    if _writable(folder):
        return os.path.join(folder, name)
    if fallback_cache is None:
        raise ModelPathError(f"{folder}: a checkpoint to merge in a read-only folder and no other place to merge it into")
    os.makedirs(os.path.dirname(os.path.abspath(fallback_cache)), exist_ok=True)
    return os.path.abspath(fallback_cache)


def merge_lora(source: str, fallback_cache: str | None = None) -> str:
    """A LoRA checkpoint (a PEFT-keyed HF export, or an adapter folder) as a merged HF model folder; cached by the
    source's fingerprint."""
    from cadft_verl.lora.export import is_adapter_folder, merge_adapter_folder, merge_lora_export

    adapter = is_adapter_folder(source)
    step_dir = source if adapter else os.path.dirname(source)
    target = _merge_target(step_dir, "merged" if adapter else MERGED, fallback_cache)
    names = [n for n in os.listdir(source) if n.startswith("adapter_")] if adapter else hf_weights(source)
    stamp = {"source": source, "files": fingerprint(source, names)}
    stamp_path = os.path.join(target, _STAMP)
    if is_hf_model(target) and os.path.isfile(stamp_path):
        with open(stamp_path, encoding="utf-8") as f:
            if json.load(f) == stamp:
                return target
    print(f"[cadft_verl.eval] merging the LoRA checkpoint {source} into {target}", flush=True)
    try:
        out = merge_adapter_folder(source, target) if adapter else merge_lora_export(step_dir, target=target)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelPathError(f"{source}: the LoRA checkpoint cannot be merged ({str(exc).splitlines()[0][:300]})") \
            from exc
    with open(stamp_path, "w", encoding="utf-8") as f:
        json.dump(stamp, f, indent=1)
    return out


def _looks_local(path: str) -> bool:
    return (os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") != 1
            or os.path.exists(path))


def resolve_model(path: str, fallback_cache: str | None = None) -> str:
    """An HF model folder (or hub id) for ``path``; merges a verl FSDP checkpoint (see the module docstring).

    ``fallback_cache``: where the merged model goes when the checkpoint folder is not writable.
    """
    expanded = os.path.expanduser(str(path))
    if not os.path.exists(expanded):
        if _looks_local(str(path)):
            raise ModelPathError(f"model folder not found: {expanded}")
        return str(path)  # owner/name: a hub model id (transformers / vLLM load it when online)
    if os.path.isfile(expanded):
        raise ModelPathError(f"{expanded} is a file; --model takes a model folder or a verl checkpoint folder")
    from cadft_verl.lora.export import is_adapter_folder, is_peft_export

    folder = os.path.abspath(expanded)
    if is_adapter_folder(folder):
        return merge_lora(folder, fallback_cache)
    if is_hf_model(folder):
        return merge_lora(folder, fallback_cache) if is_peft_export(folder) else folder
    lora_export = os.path.join(folder, "huggingface")
    if is_hf_model(lora_export) and is_peft_export(lora_export):  # a LoRA step folder (shards or not)
        return merge_lora(lora_export, fallback_cache)
    ckpt = actor_dir(folder)
    if ckpt is not None:
        export = os.path.join(ckpt, "huggingface")
        if is_hf_model(export):  # saved with hf_model in save_contents: nothing to merge
            return merge_lora(export, fallback_cache) if is_peft_export(export) else export
        target = os.path.join(ckpt, MERGED)
        if not _writable(ckpt):
            if fallback_cache is None:
                raise ModelPathError(f"{ckpt}: a verl FSDP checkpoint in a read-only folder and no other place "
                                     "to merge it into")
            target = os.path.abspath(fallback_cache)
            os.makedirs(os.path.dirname(target), exist_ok=True)
        return merge_fsdp_checkpoint(ckpt, target)
    if glob.glob(os.path.join(folder, "*", "dist_ckpt")) or os.path.isdir(os.path.join(folder, "dist_ckpt")):
        raise ModelPathError(f"{folder}: a Megatron checkpoint; merge it first with python -m verl.model_merger "
                             "merge --backend megatron --local_dir ... --target_dir ...")
    what = ("a config but no weight files" if os.path.isfile(os.path.join(folder, "config.json"))
            else "no config.json and no weight files")
    raise ModelPathError(f"{folder} holds no model weights ({what}: no *.safetensors / *.bin, and no verl FSDP "
                         "checkpoint shards model_world_size_*_rank_*.pt here, in actor/ or in the parent folder)")


def check_start_model(path: str, key: str, chat_template: bool) -> None:
    """Refuse, naming ``key``, the folder and the fix, a model a launch cannot start from: a GGUF file, a folder
    without ``config.json`` or weights, an architecture transformers cannot load as a causal LM, or (when the
    stages apply one) a tokenizer without a chat template. A name that is not a local path (a hub id) is left to
    the loader."""
    path = os.path.expanduser(str(path))
    if not os.path.exists(path):
        return
    if os.path.isfile(path):
        kind = "a GGUF file" if path.endswith(".gguf") else "a file"
        raise ModelPathError(
            f"{key}={path} is {kind}, not a Hugging Face model folder: load it with transformers "
            "(AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)) and save_pretrained it into a folder "
            "with its tokenizer, then give that folder")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ModelPathError(f"{key}={path}: no config.json, not a Hugging Face model folder (give the folder "
                             "that save_pretrained wrote)")
    if not hf_weights(path) and not fsdp_shards(path):
        raise ModelPathError(f"{key}={path}: the folder has config.json but no weights (*.safetensors or *.bin): "
                             "save the model's weights there (save_pretrained) or give another folder")
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        architectures = json.load(f).get("architectures") or []
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    known = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if architectures and not any(a in known for a in architectures):
        raise ModelPathError(f"{key}={path}: architecture {architectures} is not a causal language model "
                             "transformers can load (AutoModelForCausalLM); use a causal LM checkpoint")
    if chat_template and not _has_chat_template(path):
        raise ModelPathError(f"{key}={path}: the tokenizer has no chat template, and the stages apply one to every "
                             "prompt and demonstration: add one (tokenizer.chat_template, saved with "
                             "save_pretrained) or start from the instruct/chat variant of the model")


def _has_chat_template(folder: str) -> bool:
    if any(os.path.isfile(os.path.join(folder, n)) for n in ("chat_template.jinja", "chat_template.json")):
        return True
    config = os.path.join(folder, "tokenizer_config.json")
    if not os.path.isfile(config):
        return False
    with open(config, encoding="utf-8") as f:
        return bool(json.load(f).get("chat_template"))
