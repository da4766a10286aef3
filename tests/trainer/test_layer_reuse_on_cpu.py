"""LayerReuse (``cadft_verl/trainer/layer_reuse.py``) on a plain transformers model under gradient checkpointing: a
replayed step's loss and gradients equal checkpointing's own, and an input the pre-pass did not see is computed.
On verl's engines (FSDP2, one and two ranks): ``tests/losses/test_prepass_on_cpu.py`` and
``tests/launcher/test_launch_stage1_on_cpu.py``."""

import pytest
import torch

from cadft_verl.trainer.layer_reuse import LayerReuse


def _model(dropout=0.0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=2, num_key_value_heads=2, attention_dropout=dropout)
    model = Qwen2ForCausalLM(config)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _step(model, ids, reuse=None, recorded=None):
    """Loss and gradients of one training step; ``recorded``: the ids the no-grad pre-pass saw first."""
    model.zero_grad()
    if reuse is not None:
        model.eval()
        with torch.no_grad(), reuse.record():
            for r in recorded:
                model(input_ids=r)
    model.train()
    ctx = reuse.replay() if reuse is not None else torch.enable_grad()
    with ctx:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_replayed_step_equals_checkpointing_and_skips_the_layer_forwards():
    model = _model()
    ids = torch.randint(0, 97, (2, 12))
    loss, grads = _step(model, ids)
    reuse = LayerReuse(model)
    loss_r, grads_r = _step(model, ids, reuse, recorded=[ids])
    assert (reuse.replayed, reuse.computed) == (3, 0) and reuse.reused_fraction() == 1.0
    assert loss_r == pytest.approx(loss, rel=1e-6)
    for name, g in grads.items():
        assert torch.allclose(grads_r[name], g, atol=1e-6, rtol=1e-5), name
    assert not any(reuse._records), "the records are released after the step"


def test_an_input_the_prepass_did_not_see_is_computed_as_usual():
    model = _model()
    ids, other = torch.randint(0, 97, (2, 12)), torch.randint(0, 97, (2, 12))
    loss, grads = _step(model, ids)
    reuse = LayerReuse(model)
    loss_r, grads_r = _step(model, ids, reuse, recorded=[other])
    assert (reuse.replayed, reuse.computed) == (0, 3)
    assert loss_r == pytest.approx(loss, rel=1e-6)
    for name, g in grads.items():
        assert torch.allclose(grads_r[name], g, atol=1e-6, rtol=1e-5), name


def test_nothing_is_kept_without_checkpointing_or_with_dropout():
    plain = _model()
    plain.gradient_checkpointing_disable()
    reuse = LayerReuse(plain)
    with torch.no_grad(), reuse.record():
        plain(input_ids=torch.randint(0, 97, (1, 8)))
    assert not any(reuse._records)
    assert not LayerReuse(_model(dropout=0.1)).enabled
