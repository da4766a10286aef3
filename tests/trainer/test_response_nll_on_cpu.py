"""The scoring forward's pieces (``cadft_verl/trainer/response_nll.py``); on verl's real engine, its statistics equal
the in-loss exact ones: ``tests/losses/test_prepass_on_cpu.py`` (packed, padded and fused layouts)."""

import pytest
import torch

from cadft_verl.trainer.response_nll import in_batch_order, token_nll


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_token_nll_is_the_label_negative_log_softmax_in_any_chunking(chunk):
    torch.manual_seed(0)
    logits = torch.randn(7, 50) * 4
    labels = torch.randint(0, 50, (7,))
    expected = -torch.log_softmax(logits.double(), -1).gather(-1, labels[:, None]).squeeze(-1)
    assert torch.allclose(token_nll(logits, labels, chunk=chunk).double(), expected, atol=1e-5)
    temps = torch.tensor([0.5, 1.0, 2.0, 1.0, 0.7, 1.3, 1.0])
    expected_t = -torch.log_softmax(logits.double() / temps[:, None].double(), -1).gather(-1, labels[:, None]).squeeze(-1)
    assert torch.allclose(token_nll(logits, labels, temps, chunk=chunk).double(), expected_t, atol=1e-5)


def test_token_nll_upcasts_half_precision_logits():
    logits = (torch.randn(5, 20) * 3).to(torch.bfloat16)
    labels = torch.arange(5)
    out = token_nll(logits, labels, chunk=2)
    assert out.dtype == torch.float32
    expected = -torch.log_softmax(logits.float(), -1).gather(-1, labels[:, None]).squeeze(-1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_dynamic_batching_regrouping_is_undone():
    # verl's rearrange_micro_batches: micro-batch 0 holds samples 3 and 0, micro-batch 1 samples 1, 4 and 2
    in_micro_order = torch.tensor([30.0, 0.0, 10.0, 40.0, 20.0])
    assert in_batch_order(in_micro_order, [[3, 0], [1, 4, 2]]).tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert in_batch_order(in_micro_order, None) is in_micro_order


def test_logits_to_keep_with_an_index_tensor_returns_exactly_those_rows():
    """The scoring forward relies on transformers' ``logits_to_keep`` taking an index tensor (both pinned versions:
    this test runs in the gpu-pins suite too)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from cadft_verl.trainer.response_nll import _accepts_logits_to_keep

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2)).eval()
    ids = torch.randint(0, 61, (1, 11))
    keep = torch.tensor([2, 3, 7, 10])
    assert _accepts_logits_to_keep(model)
    with torch.no_grad():
        full = model(input_ids=ids).logits
        kept = model(input_ids=ids, logits_to_keep=keep).logits
    assert kept.shape == (1, 4, 61)
    assert torch.allclose(kept[0], full[0, keep], atol=1e-5)
