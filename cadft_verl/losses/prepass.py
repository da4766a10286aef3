"""Micro-batch size of the no-grad pre-pass of ``stats: exact`` (issue 23).

The pre-pass needs each sample's summed NLL and token count only. It runs the scoring forward
(``cadft_verl/trainer/response_nll.py``) on verl's engine: training's micro-batching, the logits of the response
tokens only, upcast to float32 in chunks (with ``model.use_fused_kernels``: verl's fused log-probs, no logits).
``cadft.prepass_micro_batch_scale`` multiplies training's micro-batch (or token budget) for it:

- an int: that many times (the default 1: the pre-pass never holds the logits of more tokens than a training
  micro-batch does, and on the measured CPU runs a larger micro-batch was slower, not faster: docs/performance.md);
- ``auto``: the largest scale (at most ``AUTO_MAX_SCALE``) whose estimated no-grad peak stays under the estimated
  peak of one training micro-batch (``estimate_bytes_per_token``), so the pre-pass adds no peak memory.
"""

from __future__ import annotations

AUTO = "auto"
AUTO_MAX_SCALE = 8
# bytes of a float32 log-softmax / cross-entropy working row (verl upcasts the logits in training)
_FP32 = 4


def _get(cfg, *names, default=None):
    for name in names:
        value = getattr(cfg, name, None)
        if value is None and isinstance(cfg, dict):
            value = cfg.get(name)
        if value is not None:
            return value
    return default


def estimate_bytes_per_token(hf_config, *, gradient_checkpointing: bool, fused_kernels: bool,
                             dtype_bytes: int = 2) -> tuple[float, float]:
    """(training, pre-pass) peak bytes per token of one micro-batch, beyond the weights and optimizer state.

    Training keeps every layer's activations for the backward (with gradient checkpointing only each layer's input,
    plus one layer recomputed at a time) and, without fused kernels, the logits, their float32 log-softmax and the
    logits' gradient. The no-grad pre-pass holds one layer's working set and the logits of the response tokens
    (counted for every token, to be safe); their float32 upcast is a fixed number of rows at a time
    (``response_nll.CHUNK_TOKENS``), not a per-token cost. A rough model (SwiGLU transformer: about 8 hidden-size and
    3 intermediate-size values per token and layer) that only needs to order the two; ``auto`` picks from it."""
    h = int(_get(hf_config, "hidden_size", "n_embd", default=1024))
    inter = int(_get(hf_config, "intermediate_size", "ffn_hidden_size", default=4 * h))
    layers = int(_get(hf_config, "num_hidden_layers", "n_layer", default=1))
    vocab = int(_get(hf_config, "vocab_size", default=32000))
    layer_work = (8 * h + 3 * inter) * dtype_bytes
    saved = layers * h * dtype_bytes + layer_work if gradient_checkpointing else layers * layer_work
    if fused_kernels:  # chunked lm_head + log-prob: no vocabulary-sized tensor per token in either pass
        return float(saved + h * dtype_bytes), float(layer_work)
    train = saved + vocab * (2 * dtype_bytes + _FP32)
    prepass = layer_work + vocab * dtype_bytes
    return float(train), float(prepass)


def auto_prepass_scale(hf_config, *, gradient_checkpointing: bool, fused_kernels: bool, dtype_bytes: int = 2,
                       max_scale: int = AUTO_MAX_SCALE) -> int:
    """The largest pre-pass scale whose estimated peak is at most one training micro-batch's (>= 1)."""
    train, prepass = estimate_bytes_per_token(hf_config, gradient_checkpointing=gradient_checkpointing,
                                              fused_kernels=fused_kernels, dtype_bytes=dtype_bytes)
    return max(1, min(int(max_scale), int(train // prepass)))


def resolve_prepass_scale(option, model_config=None, fused_kernels: bool | None = None) -> int:
    """The int scale for ``cadft.prepass_micro_batch_scale``: an int as is; ``auto`` from the model's config (verl's
    ``HFModelConfig``: ``hf_config``, ``enable_gradient_checkpointing``, ``use_fused_kernels``; or a bare HF
    config), 1 when no model config is known."""
    if option != AUTO:
        return int(option)
    if model_config is None:
        return 1
    hf_config = _get(model_config, "hf_config", default=model_config)
    gc = bool(_get(model_config, "enable_gradient_checkpointing", default=False))
    fused = bool(_get(model_config, "use_fused_kernels", default=False)) if fused_kernels is None else fused_kernels
    dtype = str(_get(hf_config, "torch_dtype", "dtype", default="bfloat16"))
    dtype_bytes = 4 if "32" in dtype else 2
    return auto_prepass_scale(hf_config, gradient_checkpointing=gc, fused_kernels=fused, dtype_bytes=dtype_bytes)
