"""Reliability diagnostics of importance-sampling estimates: Pareto k^, the batch error bar,
the ``reliable`` flag and its warning, -inf weights."""

import math
import warnings

import pytest
import torch

from logz import targets
from logz.bench.calibrate import summarize
from logz.samplers import estimators
from logz.samplers.estimators import (UnreliableEstimateWarning, batch_log_z_stderr,
                                      estimate_from_log_weights, log_z_stderr, pareto_k_hat)


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    """Each test sees the warn-once state of a fresh process."""
    monkeypatch.setattr(estimators, "_warned", set())


def _gpd_log_w(k, n, gen):
    """log of generalized Pareto(k, sigma = 1) draws by inversion: tail index k."""
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    return torch.log((u ** (-k) - 1) / k)


def _student_t_log_w(nu, n, gen):
    """log |t_nu| draws: a Pareto tail of index 1 / nu."""
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    chi2 = 2 * torch._standard_gamma(torch.full((n,), nu / 2, dtype=torch.float64), generator=gen)
    return torch.log(z.abs() / (chi2 / nu).sqrt())


@pytest.mark.parametrize("kind,param,k_true", [("gpd", 0.2, 0.2), ("gpd", 0.5, 0.5), ("gpd", 0.9, 0.9),
                                               ("t", 1.0, 1.0), ("t", 2.0, 0.5), ("t", 4.0, 0.25)])
def test_pareto_k_recovers_known_tail_index(kind, param, k_true):
    gen = torch.Generator().manual_seed(1)
    draw = _gpd_log_w if kind == "gpd" else _student_t_log_w
    ks = torch.tensor([pareto_k_hat(draw(param, 4000, gen)) for _ in range(20)])
    se = float(ks.std()) / math.sqrt(ks.numel())
    assert abs(float(ks.mean()) - k_true) < 4 * se, (float(ks.mean()), se)


def test_pareto_k_matches_arviz_on_the_same_draws():
    az = pytest.importorskip("arviz")
    gen = torch.Generator().manual_seed(2)
    for log_w in [_gpd_log_w(0.3, 500, gen), _gpd_log_w(1.1, 3000, gen), _student_t_log_w(2.0, 1000, gen),
                  torch.randn(2000, generator=gen, dtype=torch.float64) * 2]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, k_az = az.psislw(log_w.numpy().copy())
        assert math.isclose(pareto_k_hat(log_w), float(k_az), rel_tol=1e-9, abs_tol=1e-12)


def test_pareto_k_is_inf_without_a_tail():
    assert pareto_k_hat(torch.zeros(3)) == math.inf


def test_batch_error_bar_agrees_with_the_delta_method_on_light_tails(dtype):
    gen = torch.Generator().manual_seed(3)
    ratios = []
    for _ in range(50):
        log_w = (0.5 * torch.randn(4000, generator=gen, dtype=torch.float64)).to(dtype)
        ratios.append(batch_log_z_stderr(log_w, 10) / log_z_stderr(log_w))
    r = torch.tensor(ratios)
    # a batch SE from R = 10 batches has relative sd ~ 1 / sqrt(2 (R - 1)) = 0.24 per draw
    assert abs(float(r.mean()) - 1) < 4 * float(r.std()) / math.sqrt(r.numel())


def test_is_z_scores_of_a_gaussian_proposal_are_standard_normal():
    """The calibration machinery on a case with a known answer: q = N(0, 1.3^2 I) for
    p~ = exp(log Z) N(0.3, I) in 3-D; at n = 5000 the delta-method z-scores are N(0, 1)."""
    d, log_z, n, seeds = 3, 0.7, 5000, 200
    p = torch.distributions.Normal(torch.tensor(0.3, dtype=torch.float64), 1.0)
    q = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.3)
    z = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = 1.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)
        est = estimate_from_log_weights(p.log_prob(x).sum(-1) + log_z - q.log_prob(x).sum(-1))
        assert est.reliable, est.reason
        z.append(est.z_score(log_z))
    s = summarize(z)
    assert s["seeds"] == seeds
    assert abs(s["mean_z"]) < 4 / math.sqrt(seeds)
    assert abs(s["sd_z"] - 1) < 4 / math.sqrt(2 * (seeds - 1))
    assert abs(s["within_2"] - 0.9545) < 4 * math.sqrt(0.9545 * 0.0455 / seeds)


def _gmm9_log_w(one_mode: bool, n: int = 2000, seed: int = 0):
    """log-weights of a 'policy' on gmm9 and at its exact samples: a Gaussian a little wider than
    ONE of the nine modes (mode collapse with bounded, light-tailed weights: k^ and the ESS see
    nothing wrong), or a broad Gaussian covering all of them."""
    t = targets.get("gmm9")
    gen = torch.Generator().manual_seed(seed)
    loc, scale = (torch.tensor([5.0, 5.0]), 0.7) if one_mode else (torch.zeros(2), 4.5)
    q = torch.distributions.Normal(loc.double(), scale)
    x = loc.double() + scale * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    xt = t.sample(n, generator=gen, dtype=torch.float64)
    return t.log_prob(x) - q.log_prob(x).sum(-1), t.log_prob(xt) - q.log_prob(xt).sum(-1)


def test_mode_collapse_is_flagged_and_warned_once():
    log_w, log_w_target = _gmm9_log_w(one_mode=True)
    with pytest.warns(UnreliableEstimateWarning, match="modes missed"):
        est = estimate_from_log_weights(log_w, log_w_target)
    # the delta method alone is fooled: log(1/9) off with a tiny error bar
    assert abs(est.log_z - math.log(1 / 9)) < 0.05 and est.z_score(0.0) < -20
    assert est.pareto_k < 0.7 and est.ess * est.num_samples > 100  # the weights look healthy
    assert not est.reliable and "EUBO" in est.reason and "Pareto" not in est.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second flagged estimate does not warn again
        again = estimate_from_log_weights(log_w, log_w_target)
    assert not again.reliable


def test_well_covered_target_is_silent():
    log_w, log_w_target = _gmm9_log_w(one_mode=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = estimate_from_log_weights(log_w, log_w_target)
    assert est.reliable and est.reason == ""
    assert est.elbo <= est.log_z <= est.eubo
    assert abs(est.z_score(0.0)) < 4


def test_heavy_tails_and_few_effective_samples_are_flagged():
    gen = torch.Generator().manual_seed(4)
    with pytest.warns(UnreliableEstimateWarning, match="Pareto"):
        est = estimate_from_log_weights(_gpd_log_w(1.5, 2000, gen))
    assert not est.reliable and est.pareto_k > 0.7
    est = estimate_from_log_weights(torch.tensor([0.0] + [-50.0] * 199), warn=False)
    assert not est.reliable and "ESS" in est.reason


def test_neg_inf_log_weights_get_zero_weight_and_are_counted():
    lw = torch.tensor([0.0, 0.0, float("-inf"), float("-inf")], dtype=torch.float64)
    est = estimate_from_log_weights(lw, warn=False)
    assert est.neg_inf_fraction == 0.5
    assert math.isclose(est.log_z, math.log(0.5))
    assert est.elbo == -math.inf


@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "inf")])
def test_nan_or_pos_inf_log_weights_are_a_clear_error(bad, word):
    with pytest.raises(ValueError, match=word):
        estimate_from_log_weights(torch.tensor([0.0, bad, 1.0]))


def test_estimate_keeps_its_old_fields_and_defaults():
    est = estimators.LogZEstimate(log_z=1.0, stderr=0.5)
    assert est.reliable and est.pareto_k is None and est.z_score(0.0) == 2.0
    assert set(est.to_dict()) >= {"log_z", "stderr", "elbo", "eubo", "ess", "num_samples"}
