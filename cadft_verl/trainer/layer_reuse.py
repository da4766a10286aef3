"""The pre-pass's forward, reused by the training step under gradient checkpointing (issue 23's stretch).

With gradient checkpointing a training step runs every decoder layer forward twice: once in the forward (keeping
only the layer's input) and again in the backward (recomputation). The exact-statistics pre-pass has just run the
same layers, with the same weights, on the same micro-batches, without a gradient. ``LayerReuse`` keeps what the
pre-pass's decoder layers took and returned (``record``); during the training step (``replay``) a decoder layer whose
input equals a recorded input returns the recorded output at once, through ``_Replayed``, an autograd function whose
backward recomputes the layer from its input and back-propagates through it: what checkpointing's backward does. The
layers' forward is then computed once per step instead of twice, and the pre-pass costs the logits only.

Exactness: a layer's recorded output is what its forward returns for that input (same weights: the optimizer has not
stepped between the pre-pass and the step), and every replayed input is compared with the recorded one
(``torch.equal``); anything else (another micro-batching, a dropout layer) runs the layer as usual. Memory: the
layer inputs of a rank's whole share (layers x tokens x hidden), which checkpointing keeps for one micro-batch at a
time. It works on the model's own modules (transformers' ``GradientCheckpointingLayer``) under verl's engine and FSDP,
not on verl's code.
"""

from __future__ import annotations

import contextlib

import torch

#: non-tensor entry of a Ray scoring batch: keep the decoder layers' outputs for the next training step
KEEP_LAYERS = "cadft_keep_layers"


def decoder_layers(module) -> list:
    """The model's checkpointable decoder layers (transformers' ``GradientCheckpointingLayer``), in order."""
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # pragma: no cover - older transformers
        return []
    return [m for m in module.modules() if isinstance(m, GradientCheckpointingLayer)]


def _has_dropout(module) -> bool:
    config = getattr(getattr(module, "module", module), "config", None)
    rates = [v for k, v in (vars(config).items() if config is not None else []) if "dropout" in k]
    return any(isinstance(v, (int, float)) and v > 0 for v in rates)


class _Replayed(torch.autograd.Function):
    """Forward: the recorded output. Backward: run the layer again from its input (through its module call, so FSDP
    gathers and reduces as under reentrant checkpointing), back-propagate through it, return the input's gradient."""

    @staticmethod
    def forward(ctx, hidden_in, recorded_out, run):
        ctx.run = run
        ctx.save_for_backward(hidden_in)
        return recorded_out.detach().clone()

    @staticmethod
    def backward(ctx, grad_out):
        (hidden_in,) = ctx.saved_tensors
        hidden = hidden_in.detach().requires_grad_(True)
        with torch.enable_grad():
            out = ctx.run(hidden)
        torch.autograd.backward(out, grad_out)
        return hidden.grad, None, None


def layer_reuse_of(engine) -> "LayerReuse":
    """The ``LayerReuse`` of a verl engine's model (made once, kept on the engine)."""
    reuse = getattr(engine, "_cadft_layer_reuse", None)
    if reuse is None:
        reuse = LayerReuse(engine.module)
        engine._cadft_layer_reuse = reuse
    return reuse


class LayerReuse:
    def __init__(self, module):
        self.layers = decoder_layers(module)
        self.enabled = bool(self.layers) and not _has_dropout(module)
        self._records: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in self.layers]
        self.replayed = 0
        self.computed = 0

    def reused_fraction(self) -> float | None:
        """Share of the last training step's decoder-layer calls that were replayed (None: no layer ran)."""
        total = self.replayed + self.computed
        return self.replayed / total if total else None

    def add_metric(self, metrics: dict) -> None:
        """``perf/prepass_reused``: the share of the last step's decoder-layer forwards taken from the pre-pass
        instead of computed (absent when no layer ran under the replay)."""
        if self.reused_fraction() is not None:
            metrics["perf/prepass_reused"] = self.reused_fraction()

    def _checkpointed(self) -> bool:
        """Whether every decoder layer runs under transformers' gradient checkpointing (else nothing to reuse)."""
        return all(getattr(layer, "gradient_checkpointing", False) and hasattr(layer, "_gradient_checkpointing_func")
                   for layer in self.layers)

    @contextlib.contextmanager
    def record(self):
        """Keep each decoder layer's input and output while the no-grad pre-pass runs."""
        self.clear()
        if not self.enabled or not self._checkpointed():
            yield
            return
        handles = []
        for i, layer in enumerate(self.layers):
            def hook(mod, args, kwargs, output, i=i):
                hidden = args[0] if args else kwargs.get("hidden_states")
                if not isinstance(output, torch.Tensor) or hidden is None:  # a layer returning a tuple: not reused
                    self.enabled = False
                    return
                self._records[i].append((hidden.detach(), output.detach()))
            handles.append(layer.register_forward_hook(hook, with_kwargs=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _find(self, i, hidden):
        """The recorded output for this input (taken out of the records: each is replayed once), or None."""
        records = self._records[i]
        for k, (rec_in, rec_out) in enumerate(records):
            if rec_in.shape == hidden.shape and rec_in.dtype == hidden.dtype and torch.equal(rec_in, hidden.detach()):
                del records[k]
                return rec_out
        return None

    @contextlib.contextmanager
    def replay(self):
        """During the training step: a checkpointed layer whose input was recorded returns the recorded output."""
        self.replayed = self.computed = 0
        if not self.enabled or not any(self._records) or not self._checkpointed():
            try:
                yield
            finally:
                self.clear()
            return
        originals = [layer._gradient_checkpointing_func for layer in self.layers]
        for i, (layer, checkpoint) in enumerate(zip(self.layers, originals)):

            def reuse(call, hidden_states, *args, _i=i, _checkpoint=checkpoint):
                recorded = self._find(_i, hidden_states) if hidden_states.requires_grad else None
                if recorded is None:
                    self.computed += 1
                    return _checkpoint(call, hidden_states, *args)
                self.replayed += 1
                return _Replayed.apply(hidden_states, recorded, lambda h: call(h, *args))

            layer._gradient_checkpointing_func = reuse
        try:
            yield
        finally:
            for layer, checkpoint in zip(self.layers, originals):
                layer._gradient_checkpointing_func = checkpoint
            self.clear()

    def clear(self):
        self._records = [[] for _ in self.layers]
