"""The scoring forward: each sample's summed NLL and token count over its response tokens, no gradient (issue 23).

Every no-grad pass of CADFT (the exact-statistics pre-pass, the rewrite rounds' scoring, stage 1's validation) needs
per-sample sums only, not verl's per-token log-probs of whole sequences. ``response_nll_sums`` runs on a verl
``TrainingWorker`` (the SPMD SFT trainer's, or the actor of the Ray workers) and reuses its engine: the same
micro-batches (``prepare_micro_batches``: micro-batch size or token budget, dynamic batching), the same model inputs
(``prepare_model_inputs``: packed sequences, temperature) under the same eval mode and autocast, the FSDP module's
own forward. What it does not do:

- compute the logits of prompt tokens: the model's lm_head runs on the response positions only (HF's
  ``logits_to_keep`` with an index tensor); on a 32k vocabulary the lm_head is most of a small model's forward;
- hold a float32 copy of the logits: the log-softmax is taken ``CHUNK_TOKENS`` rows at a time, as a logsumexp
  minus the label's logit;
- return per-token tensors through verl's post-processing (nested tensors re-ordered and concatenated).

With ``use_fused_kernels`` the model's forward is verl's fused one (log-probs from the hidden states in chunks, no
logits): its log-probs are read at the response positions. A model whose forward has no ``logits_to_keep`` gets
its full logits, and only their response rows are upcast.
"""

from __future__ import annotations

import inspect
from contextlib import nullcontext

import torch

# rows of logits upcast to float32 at a time (4096 x 151,936 entries: 2.5 GB, under a training micro-batch's logits)
CHUNK_TOKENS = 4096


def _non_tensor(data, key, default=None):
    from verl.utils import tensordict_utils as tu

    return tu.get_non_tensor_data(data=data, key=key, default=default)


def token_nll(logits: torch.Tensor, labels: torch.Tensor, temperature: torch.Tensor | None = None,
              chunk: int = CHUNK_TOKENS) -> torch.Tensor:
    """``-log softmax(logits / t)[label]`` per row of ``logits`` ([n, vocab]), in float32, ``chunk`` rows at a time."""
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    for start in range(0, logits.shape[0], chunk):
        rows = logits[start : start + chunk].float()
        if temperature is not None:
            rows = rows / temperature[start : start + chunk].unsqueeze(-1).float()
        label_logit = rows.gather(-1, labels[start : start + chunk].unsqueeze(-1)).squeeze(-1)
        out[start : start + chunk] = torch.logsumexp(rows, dim=-1) - label_logit
    return out


def _accepts_logits_to_keep(module) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (by name, or through ``**kwargs`` as PEFT's wrapper
    passes it on); a forward that takes it but ignores it is caught by the logits' shape."""
    forward = getattr(getattr(module, "module", module), "forward", None)
    try:
        params = inspect.signature(forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "logits_to_keep" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _micro_batch_sums(engine, micro_batch, fused: bool, keep_arg: bool):
    """(nll sum, token count) per sample of one micro-batch (no_padding layout: verl's SFT and RL batches)."""
    from verl.utils.device import get_device_id, get_device_name

    micro_batch = micro_batch.to(get_device_id())
    remove_padding = _non_tensor(micro_batch, "use_remove_padding", True)
    model_inputs, output_args = engine.prepare_model_inputs(micro_batch=micro_batch)
    input_ids = micro_batch["input_ids"]
    offsets = input_ids.offsets()
    n = offsets.numel() - 1
    # log-prob t predicts token t+1: the response mask shifted left by one, as verl's sft_loss and our loss align it
    mask = torch.roll(micro_batch["loss_mask"].values(), shifts=-1, dims=0).to(torch.bool)
    keep = torch.nonzero(mask, as_tuple=False).squeeze(-1)
    seg = torch.repeat_interleave(torch.arange(n, device=keep.device), offsets.diff())[keep]
    nll_sum = torch.zeros(n, dtype=torch.float32, device=keep.device)
    count = torch.bincount(seg, minlength=n).to(torch.float32)
    if keep.numel() == 0:
        return nll_sum, count
    # (row, column) of each kept token in the model's output: one packed row, or the padded batch
    row, col = (torch.zeros_like(keep), keep) if remove_padding else (seg, keep - offsets[seg])
    labels = output_args["input_ids_rmpad_rolled"][keep]  # both layouts: the packed tokens rolled left by one
    if keep_arg and not fused and remove_padding:  # the lm_head runs on the kept positions only
        model_inputs["logits_to_keep"] = keep
    autocast_dtype = getattr(engine, "_autocast_dtype", torch.bfloat16)
    autocast = (nullcontext() if autocast_dtype == torch.float32
                else torch.autocast(device_type=get_device_name(), dtype=autocast_dtype))
    with autocast:
        output = engine.module(**model_inputs, use_cache=False)
    if fused:
        nll = -output.log_probs[row, col].float()
    else:
        logits = output.logits
        if hasattr(logits, "full_tensor"):  # tensor parallelism: logits sharded on the vocabulary
            logits = logits.full_tensor()
        temperature = micro_batch["temperature"]
        temps = None
        if isinstance(temperature, torch.Tensor) and temperature.numel() > 1:
            temps = temperature.to(logits.device)[seg]
        elif float(temperature) != 1.0:
            temps = torch.full((keep.numel(),), float(temperature), device=logits.device)
        # trimmed to the kept positions (their rows, in order), or the whole sequence's logits
        trimmed = "logits_to_keep" in model_inputs and logits.shape[-2] == keep.numel()
        nll = token_nll(logits[0] if trimmed else logits[row, col], labels, temps)
    nll_sum.index_add_(0, seg, nll)
    return nll_sum, count


def response_nll_sums(worker, data, keep_layers=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed response NLL, response token count) of every sample of ``data`` (this rank's share), in its order.

    ``worker`` is verl's ``TrainingWorker`` (``engine``, ``engine_config``, ``model_config``); ``data`` carries what
    verl's ``infer_batch`` reads (micro-batching, ``use_remove_padding``, ``temperature``, ``pad_mode``). Runs on
    every rank of the data-parallel group together (FSDP gathers parameters in the forward). ``keep_layers``: a
    ``LayerReuse`` that keeps the decoder layers' inputs and outputs for the training step that follows."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine.utils import prepare_micro_batches

    engine = worker.engine
    defaults = dict(use_remove_padding=worker.model_config.get("use_remove_padding", False),
                    use_dynamic_bsz=worker.engine_config.use_dynamic_bsz,
                    max_token_len_per_gpu=worker.engine_config.infer_max_token_len_per_gpu,
                    micro_batch_size_per_gpu=worker.engine_config.infer_micro_batch_size_per_gpu,
                    use_fused_kernels=worker.engine_config.use_fused_kernels)
    for key, value in defaults.items():
        if key not in data.keys():
            tu.assign_non_tensor(data, **{key: value})
    tu.assign_non_tensor(data, sp_size=getattr(engine, "ulysses_sequence_parallel_size", 1))
    fused = bool(_non_tensor(data, "use_fused_kernels", False))
    keep_arg = _accepts_logits_to_keep(engine.module)
    sums, counts = [], []
    with engine.eval_mode(), torch.no_grad(), (keep_layers.record() if keep_layers is not None else nullcontext()):
        micro_batches, indices = prepare_micro_batches(data=data, dp_group=engine.get_data_parallel_group(),
                                                       same_micro_num_in_dp=True)
        for micro_batch in micro_batches:
            s, c = _micro_batch_sums(engine, micro_batch, fused, keep_arg)
            sums.append(s.cpu())
            counts.append(c.cpu())
    return in_batch_order(torch.cat(sums), indices), in_batch_order(torch.cat(counts), indices)


def in_batch_order(values: torch.Tensor, indices) -> torch.Tensor:
    """Per-sample values in micro-batch order back in the batch's order: ``indices`` is verl's
    ``prepare_micro_batches`` regrouping (each micro-batch's batch positions; None: the batch's own order)."""
    if indices is None:
        return values
    order = torch.tensor([i for group in indices for i in group], dtype=torch.long)
    return torch.empty_like(values).index_copy_(0, order, values)
