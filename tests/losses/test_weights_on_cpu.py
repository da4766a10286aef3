"""CADFT sample-weight invariants (METHOD.md section 2)."""

import math

import pytest
import torch

from cadft_verl.losses import LossConfig, compatibility_weights


def test_weight_is_one_at_or_below_batch_mean_and_below_one_above():
    nll = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    w = compatibility_weights(nll)
    assert torch.all(w[:3] == 1.0)  # 3.0 is the mean: z = 0 -> w = 1
    assert torch.all(w[3:] < 1.0)


def test_weights_monotone_in_z_and_in_unit_interval():
    nll = torch.randn(257, generator=torch.Generator().manual_seed(0)).exp() * 3
    w = compatibility_weights(nll, beta=2.0)
    order = torch.argsort(nll)
    assert torch.all(w[order][1:] <= w[order][:-1] + 1e-12)
    assert torch.all(w > 0) and torch.all(w <= 1)


def test_weight_formula_matches_population_zscore():
    nll = torch.tensor([0.5, 1.0, 4.0, 2.5], dtype=torch.float64)
    beta, eps = 0.7, 1e-6
    mean = nll.mean()
    std = nll.std(unbiased=False)
    expected = torch.exp(-beta * torch.clamp((nll - mean) / (std + eps), min=0))
    assert torch.allclose(compatibility_weights(nll, beta=beta, eps=eps), expected, atol=1e-12)


def test_all_equal_batch_and_single_sample_give_ones():
    assert torch.all(compatibility_weights(torch.full((8,), 2.5)) == 1.0)
    assert torch.all(compatibility_weights(torch.tensor([7.0])) == 1.0)


def test_samples_without_response_tokens_are_excluded_and_never_nan():
    nll = torch.tensor([1.0, 2.0, float("nan"), 3.0])
    valid = torch.tensor([True, True, False, True])
    w = compatibility_weights(nll, valid=valid)
    assert not torch.isnan(w).any()
    assert w[2] == 1.0
    assert torch.allclose(w[[0, 1, 3]], compatibility_weights(torch.tensor([1.0, 2.0, 3.0])))


def test_beta_zero_gives_dft():
    assert torch.all(compatibility_weights(torch.tensor([1.0, 9.0, 3.0]), beta=0.0) == 1.0)


def test_robust_zscore_not_hidden_by_outliers():
    # one huge outlier inflates the std so that the moderately incompatible sample is barely down-weighted
    nll = torch.tensor([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 2.0, 1000.0])
    w_std = compatibility_weights(nll)
    w_rob = compatibility_weights(nll, zscore="robust")
    assert w_rob[6] < 0.01 < w_std[6]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="beta"):
        compatibility_weights(torch.tensor([1.0, 2.0]), beta=-1.0)
    with pytest.raises(ValueError, match=r"position\(s\) \[1\]"):
        compatibility_weights(torch.tensor([1.0, math.inf, 2.0]))
    with pytest.raises(ValueError, match="cadft.loss"):
        LossConfig(loss="sfft")
    with pytest.raises(ValueError, match="cadft.beta"):
        LossConfig(beta=-0.5)
    with pytest.raises(ValueError, match="cadft.stats"):
        LossConfig(stats="sometimes")
    with pytest.raises(ValueError, match="cadft.bta: unknown option"):
        LossConfig.from_mapping({"bta": 1.0})
