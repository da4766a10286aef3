"""The losses on a PEFT (LoRA) model, as stage 1 runs them with cadft.model.lora_rank > 0: for the same log-probs
(the adapter's model and its merged full-weight twin, in float64), CADFT's batch statistics, z-scores, sample weights, loss and
per-token gradients are those of full fine-tuning; the gradient reaches only the adapter."""

import copy

import pytest
import torch
from batches import nested_micro_batch

from cadft_verl.losses import make_loss_fn


def _tiny_model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return Qwen2ForCausalLM(config).double().eval()  # float64: the merge's rounding far below the checks'


def _lora_and_merged(rank=4, alpha=8):
    """A LoRA model with a non-zero adapter (as after training) and the full model with that adapter merged in."""
    from peft import LoraConfig, get_peft_model

    base = _tiny_model()
    torch.manual_seed(1)
    lora = get_peft_model(copy.deepcopy(base), LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear",
                                                          init_lora_weights=False, task_type="CAUSAL_LM"))
    merged = copy.deepcopy(lora).merge_and_unload()
    for p in merged.parameters():
        p.requires_grad_(True)  # full fine-tuning trains every weight
    return base, lora, merged


def _samples(model, seed=3, n=10):
    """(per-token log-probs [L] in verl's nested layout, loss_mask [L]) of n random demonstrations under ``model``."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(8, 20, (1,), generator=g))
        ids = torch.randint(0, 97, (1, length), generator=g)
        logits = model(input_ids=ids).logits[0, :-1]
        lp = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:, None])[:, 0]
        lp = torch.cat([lp, lp.new_zeros(1)])  # position t: log p(token t+1 | tokens <= t), as the engine's
        mask = torch.zeros(length, dtype=torch.long)
        mask[3:] = 1
        out.append((lp, mask))
    return out


def _loss(mode, model):
    samples = _samples(model)
    _, data, _ = nested_micro_batch([(lp.detach(), m) for lp, m in samples])
    lps = [lp for lp, _ in samples]  # keep the graph to the model's weights
    model_output = {"log_probs": torch.nested.as_nested_tensor(lps, layout=torch.jagged)}
    loss, metrics = make_loss_fn({"loss": mode, "beta": 1.0})(model_output=model_output, data=data, dp_group=None)
    return loss, metrics, lps


@pytest.mark.parametrize("mode", ["sft", "dft", "cadft"])
def test_lora_losses_equal_full_fine_tuning_for_the_same_log_probs(mode):
    _, lora, merged = _lora_and_merged()
    loss_l, m_l, lps_l = _loss(mode, lora)
    loss_f, m_f, lps_f = _loss(mode, merged)
    for a, b in zip(lps_l, lps_f):  # the same log-probs (up to the merge's float rounding)
        assert torch.allclose(a, b, atol=1e-10)
    assert loss_l.item() == pytest.approx(loss_f.item(), abs=1e-10)
    for key in m_f:
        if key.startswith("cadft/_"):  # per-sample lists and the batch's statistics
            assert m_l[key] == pytest.approx(m_f[key], abs=1e-8), key
    if mode == "cadft":
        w = m_l["cadft/_w"]
        assert min(w) < 0.9 and max(w) == pytest.approx(1.0)  # some samples are down-weighted, by the same weights
    # the loss's gradient with respect to every token's log-prob is the same (the weights are stop-gradient)
    g_l = torch.autograd.grad(loss_l, lps_l, retain_graph=True)
    g_f = torch.autograd.grad(loss_f, lps_f, retain_graph=True)
    for a, b in zip(g_l, g_f):
        assert torch.allclose(a, b, atol=1e-10)


def test_lora_gradient_reaches_only_the_adapter():
    base, lora, _ = _lora_and_merged()
    loss, _, _ = _loss("cadft", lora)
    loss.backward()
    trained = {n for n, p in lora.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained and all(".lora_A." in n or ".lora_B." in n for n in trained)
    assert all(not p.requires_grad for n, p in lora.named_parameters() if ".lora_" not in n)
    # every linear layer of the model got an adapter that learns (all-linear: PEFT leaves out the output layer)
    layers = {n.split(".lora_")[0] for n in trained}
    assert len(layers) == 2 * 7
