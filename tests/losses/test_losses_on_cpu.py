"""The three losses: DFT invariants, engine loss == dense reference, sft == verl's own sft_loss, bad input."""

import math

import pytest
import torch
from batches import dense_aligned, nested_micro_batch, random_samples

from cadft_verl.losses import make_loss_fn, reference_loss


def _engine(mode, samples, **kw):
    model_output, data, lps = nested_micro_batch(samples, **kw)
    loss, metrics = make_loss_fn({"loss": mode})(model_output=model_output, data=data, dp_group=None)
    return loss, metrics, lps


# --- DFT invariants ---------------------------------------------------------------------------------------------
def test_dft_loss_never_exceeds_nll():
    lp, mask = dense_aligned(random_samples(16, seed=1))
    assert reference_loss(lp, mask, "dft") <= reference_loss(lp, mask, "sft")


def test_dft_equals_nll_times_p_when_confident():
    # every response token has the same probability p: DFT = p * NLL exactly; as p -> 1 they coincide
    for p in (0.5, 0.9, 0.999):
        lp = torch.full((3, 7), math.log(p))
        mask = torch.ones(3, 7)
        assert torch.allclose(reference_loss(lp, mask, "dft"), p * reference_loss(lp, mask, "sft"))


def test_dft_stop_gradient_matters():
    lp, mask = dense_aligned(random_samples(4, seed=2))
    lp.requires_grad_(True)
    reference_loss(lp, mask, "dft").backward()
    n = mask.sum()
    # with sg(p): d/dlp [sg(p) * -lp] = -p ; without it the gradient would be -p(1 + lp)
    expected = -torch.exp(lp.detach()) * mask / n
    assert torch.allclose(lp.grad, expected, atol=1e-7)
    assert not torch.allclose(lp.grad, -torch.exp(lp.detach()) * (1 + lp.detach()) * mask / n, atol=1e-4)


def test_cadft_is_dft_when_all_samples_equally_compatible():
    lp = torch.full((4, 5), -0.3)
    mask = torch.ones(4, 5)
    assert torch.allclose(reference_loss(lp, mask, "cadft"), reference_loss(lp, mask, "dft"))


def test_cadft_downweights_incompatible_sample_gradient():
    samples = random_samples(8, seed=3, spread=0.1)
    bad_lp = torch.full_like(samples[0][0], -6.0)  # an incompatible demonstration
    samples[0] = (bad_lp, samples[0][1])
    lp, mask = dense_aligned(samples)
    grads = {}
    for mode in ("dft", "cadft"):
        x = lp.clone().requires_grad_(True)
        reference_loss(x, mask, mode).backward()
        grads[mode] = x.grad[0].abs().sum()
    assert grads["cadft"] < grads["dft"] * math.exp(-1.0)  # z of the outlier is >> 1


# --- engine loss (verl's calling convention) ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sft", "dft", "cadft"])
def test_engine_loss_equals_dense_reference(mode):
    samples = random_samples(12, seed=4)
    loss, _, _ = _engine(mode, samples)
    lp, mask = dense_aligned(samples)
    assert torch.allclose(loss, reference_loss(lp, mask, mode), atol=1e-6)


def test_engine_sft_reproduces_verl_sft_loss_exactly_including_gradients():
    from verl.workers.utils.losses import sft_loss

    samples = random_samples(10, seed=5)
    # a micro-batch of a larger global batch on one of 2 ranks: same normalisation
    kw = {"dp_size": 2, "batch_num_tokens": 333}
    ours, _, lps_ours = _engine("sft", samples, **kw)
    model_output, data, lps_verl = nested_micro_batch(samples, **kw)
    theirs, _ = sft_loss(config=None, model_output=model_output, data=data)
    assert ours.item() == theirs.item()
    ours.backward()
    theirs.backward()
    for a, b in zip(lps_ours, lps_verl):
        assert torch.equal(a.grad, b.grad)


def test_engine_loss_micro_batches_sum_to_global_batch_loss():
    samples = random_samples(12, seed=6)
    total_tokens = int(sum(int(m.sum()) for _, m in samples))
    full, _, _ = _engine("dft", samples)
    parts = [_engine("dft", samples[i : i + 3], batch_num_tokens=total_tokens)[0] for i in range(0, 12, 3)]
    assert torch.allclose(sum(parts), full, atol=1e-6)


def test_engine_metrics_report_nll_and_weights():
    samples = random_samples(6, seed=7)
    _, metrics, _ = _engine("cadft", samples)
    lp, mask = dense_aligned(samples)
    assert metrics["cadft/_nll_sum"] / metrics["cadft/_tokens"] == pytest.approx(float(reference_loss(lp, mask, "sft")))
    assert len(metrics["cadft/_w"]) == 6 and all(0 < w <= 1 for w in metrics["cadft/_w"])


def test_sample_without_response_tokens_contributes_nothing_and_no_nan():
    samples = random_samples(6, seed=8)
    empty = (torch.full((5,), -1.0), torch.zeros(5, dtype=torch.long))
    loss_with, metrics, lps = _engine("cadft", samples + [empty])
    loss_without, _, _ = _engine("cadft", samples)
    assert torch.allclose(loss_with, loss_without, atol=1e-7)
    assert len(metrics["cadft/_w"]) == 6
    loss_with.backward()
    assert torch.all(lps[-1].grad == 0) and not torch.isnan(lps[-1].grad).any()


# --- bad input --------------------------------------------------------------------------------------------------
def test_batch_without_any_response_token_is_an_error():
    samples = [(torch.full((5,), -1.0), torch.zeros(5, dtype=torch.long)) for _ in range(3)]
    with pytest.raises(ValueError, match="no response tokens"):
        _engine("cadft", samples, batch_num_tokens=0)


@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_non_finite_log_probs_name_the_sample(bad):
    samples = random_samples(5, seed=9)
    lp, m = samples[3]
    lp = lp.clone()
    lp[-2] = bad
    samples[3] = (lp, m)
    with pytest.raises(FloatingPointError, match="micro-batch position 3"):
        _engine("dft", samples)


def test_unknown_loss_name_is_an_error():
    with pytest.raises(ValueError, match="unknown loss 'kl'"):
        make_loss_fn({"loss": "kl"})
