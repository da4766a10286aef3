"""The hand-over of a LoRA stage 1: its HF export made a plain, merged model.

verl's FSDP engine saves a LoRA actor's HF export (``global_step_N/huggingface``) with the PEFT model's keys
(``base_model.model....q_proj.base_layer.weight``, ``...lora_A.default.weight``): transformers loads such a folder as
the base architecture with its weights missing (verl issue 2195: "Unrecognized model", or a model of random weights).
``merge_lora_export`` rewrites that folder in place into the merged model (W + lora_alpha / r · B A, through PEFT's
``merge_and_unload``), keeping verl's config, tokenizer and generation config (the base's), and saves the adapter
beside it (``global_step_N/lora_adapter``: PEFT's ``adapter_model.safetensors`` and ``adapter_config.json`` with the
run's rank and lora_alpha, never 0: verl issues 6380/5326). ``huggingface/lora_merged.json`` records what was merged.
It is idempotent and safe to rerun after a kill: the weights are written to a temporary folder and moved in last.
"""

from __future__ import annotations

import glob
import os
import shutil

from cadft_verl.utils.files import read_json, write_json

ADAPTER_DIR = "lora_adapter"
MERGED_FILE = "lora_merged.json"
TRAIN_META = "lora_train_meta.json"  # verl's, beside the shards of a LoRA checkpoint
PEFT_PREFIX = "base_model.model."


def _weight_files(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.safetensors")))


def export_keys(hf_dir: str) -> list[str]:
    from safetensors import safe_open

    keys = []
    for path in _weight_files(hf_dir):
        with safe_open(path, "pt") as f:
            keys += list(f.keys())
    return keys


def is_peft_export(hf_dir: str) -> bool:
    """Whether ``hf_dir`` holds a PEFT model's state dict (verl's HF export of a LoRA actor) rather than a plain one."""
    return any(k.startswith(PEFT_PREFIX) and (".lora_" in k or ".base_layer." in k) for k in export_keys(hf_dir))


def lora_meta(step_dir: str, options=None) -> dict:
    """rank, lora_alpha and target modules of a LoRA checkpoint: the run's options, else verl's lora_train_meta.json
    (whose lora_alpha is 0 when verl's SFT trainer ran without one: refused, it would merge nothing)."""
    if options is not None:
        return {"r": int(options.lora_rank), "lora_alpha": options.lora_alpha,
                "target_modules": options.peft_kwargs()["target_modules"]}
    path = os.path.join(step_dir, TRAIN_META)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{step_dir}: a LoRA export without {TRAIN_META}: its rank and lora_alpha are unknown")
    meta = read_json(path)
    if not meta.get("lora_alpha"):
        raise ValueError(f"{path}: lora_alpha is {meta.get('lora_alpha')!r} (verl saves 0 when model.lora_alpha was "
                         "not set): the adapter's scale is unknown, so it cannot be merged")
    return {"r": int(meta["r"]), "lora_alpha": meta["lora_alpha"], "target_modules": None}


def _targets_of(state_dict: dict) -> list[str]:
    """The module names that carry an adapter in a PEFT state dict."""
    names = set()
    for key in state_dict:
        if ".lora_A." in key:
            names.add(key.split(".lora_A.")[0].rsplit(".", 1)[-1])
    return sorted(names)


def merge_lora_export(step_dir: str, options=None, base_model: str | None = None, target: str | None = None) -> str:
    """Make ``step_dir/huggingface`` the merged model (or write it to ``target``, leaving the checkpoint as it is)
    and save the adapter in ``step_dir/lora_adapter`` (in ``target``'s ``lora_adapter`` then); returns the merged HF
    folder. An export that is already plain is returned as it is."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    hf_dir = os.path.join(step_dir, "huggingface")
    if not is_peft_export(hf_dir):
        return hf_dir
    state = {}
    for path in _weight_files(hf_dir):
        state.update(load_file(path))
    meta = lora_meta(step_dir, options)
    targets = meta["target_modules"] or _targets_of(state)
    if targets == "all-linear":  # the adapter's own list: what PEFT resolved all-linear to
        targets = _targets_of(state)
    dtype = next(v.dtype for k, v in state.items() if ".base_layer." in k)
    config = AutoConfig.from_pretrained(hf_dir)
    with torch.device("cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    peft_model = get_peft_model(model, LoraConfig(r=meta["r"], lora_alpha=meta["lora_alpha"],
                                                  target_modules=targets, bias="none", task_type="CAUSAL_LM"))
    missing, unexpected = peft_model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if getattr(config, "tie_word_embeddings", False) \
        else set()
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"{hf_dir}: the LoRA export does not fit its config (missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]})")
    # the base the adapter belongs to (None when unknown: never the PEFT-keyed export it was read from)
    peft_model.peft_config["default"].base_model_name_or_path = str(base_model) if base_model else None
    if target is not None:
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(hf_dir):  # config, tokenizer, generation config: the base's, as verl saved them
            if not name.endswith((".safetensors", ".safetensors.index.json")) and \
                    os.path.isfile(os.path.join(hf_dir, name)):
                shutil.copy2(os.path.join(hf_dir, name), os.path.join(target, name))
    out_dir = target or hf_dir
    adapter_dir = os.path.join(target, ADAPTER_DIR) if target is not None else os.path.join(step_dir, ADAPTER_DIR)
    tmp_adapter = adapter_dir + ".tmp"
    shutil.rmtree(tmp_adapter, ignore_errors=True)
    peft_model.save_pretrained(tmp_adapter)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    os.replace(tmp_adapter, adapter_dir)

    merged = peft_model.merge_and_unload()
    tmp = out_dir.rstrip("/") + ".merging"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    new_weights = [f for f in os.listdir(tmp) if f.endswith(".safetensors") or f.endswith(".safetensors.index.json")]
    for path in _weight_files(out_dir) + glob.glob(os.path.join(out_dir, "*.safetensors.index.json")):
        if os.path.basename(path) not in new_weights:
            os.remove(path)
    for name in new_weights:
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    shutil.rmtree(tmp, ignore_errors=True)
    write_json(os.path.join(out_dir, MERGED_FILE),
               {"lora_rank": meta["r"], "lora_alpha": meta["lora_alpha"], "target_modules": targets,
                "adapter": os.path.relpath(adapter_dir, out_dir), "base_model": base_model})
    return out_dir


def is_adapter_folder(folder: str) -> bool:
    """A PEFT LoRA adapter folder (``adapter_config.json`` and its weights), e.g. stage 1's ``lora_adapter``."""
    return os.path.isfile(os.path.join(folder, "adapter_config.json")) and any(
        os.path.isfile(os.path.join(folder, n)) for n in ("adapter_model.safetensors", "adapter_model.bin"))


def merge_adapter_folder(adapter_dir: str, target: str) -> str:
    """The adapter at ``adapter_dir`` merged into its base model (``base_model_name_or_path`` of its config), saved
    with the base's tokenizer as an HF model folder ``target``; returns ``target``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = read_json(os.path.join(adapter_dir, "adapter_config.json"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_dir}: adapter_config.json names no base_model_name_or_path to merge it into")
    if not config.get("lora_alpha"):
        raise ValueError(f"{adapter_dir}/adapter_config.json: lora_alpha is {config.get('lora_alpha')!r} (verl saves "
                         "0 when model.lora_alpha was not set): the adapter's scale is unknown")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter_dir)
    tmp = target.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.merge_and_unload().save_pretrained(tmp)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    write_json(os.path.join(tmp, MERGED_FILE), {"lora_rank": config.get("r"), "lora_alpha": config["lora_alpha"],
                                                "adapter": os.path.abspath(adapter_dir), "base_model": base})
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target
