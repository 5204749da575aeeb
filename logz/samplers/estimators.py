"""From log importance weights to log Z estimates with error bars, and when not to trust them.

With samples x_i ~ q and log w_i = log p~(x_i) - log q(x_i) (p~ the unnormalized
target, Z its normalizer):

- importance-weighted estimate  log Z^ = logsumexp(log w) - log n  (consistent;
  biased low by about Var(w)/(2 n E[w]^2) in log space);
- ELBO = mean(log w) <= log Z (Jensen);
- EUBO = mean over x_i ~ p of log p~(x_i) - log q(x_i) >= log Z, when exact target
  samples and a tractable q exist;
- normalized ESS = (sum w)^2 / (n sum w^2) in (0, 1];
- delta-method standard error of log Z^: sd(w) / (sqrt(n) mean(w)), which in terms
  of the normalized ESS is sqrt((1/ESS - 1) / n);
- batch standard error: the same estimate on R disjoint batches of the log-weights,
  combined like independent runs -- a second error bar that does not assume the sample
  variance of w is a good estimate of its variance;
- Pareto k^ (PSIS, Vehtari, Simpson, Gelman, Yao & Gabry 2024): the shape of a generalized
  Pareto fit (Zhang & Stephens 2009) to the largest weights. The weights have about 1/k^
  finite moments: k^ > 0.5 means Var(w) is infinite and the delta method has nothing to
  estimate; above 0.7 the estimate itself converges too slowly to be useful.

Every error bar above is computed from the weights the sampler produced; none of them can
see target mass the sampler never visits (a policy that found one of nine modes has
nearly equal weights and a tiny error bar). Only exact target samples can: EUBO - log Z^
estimates KL(p || q), and importance sampling needs about n > exp(KL(p || q)) samples
(Chatterjee & Diaconis 2018). ``estimate_from_log_weights`` therefore flags an estimate as
not ``reliable`` -- with the reason, and a warning once per reason per process -- when
k^ > 0.7, when ESS * n < 100, when log Z^ lies outside [ELBO, EUBO], or when the EUBO says
that n * exp(-(EUBO - log Z^)) < 100 (the target-sample analogue of ESS * n < 100).

Log-weights of -inf (samples where the target density is 0, e.g. paths ending outside its
support) get zero weight and are counted in ``neg_inf_fraction``; NaN or +inf is an error.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import Tensor


#: thresholds of the ``reliable`` flag (see the module docstring).
PARETO_K_MAX = 0.7
MIN_EFFECTIVE_SAMPLES = 100.0
#: default number of disjoint batches for the batch standard error.
DEFAULT_NUM_BATCHES = 10


class UnreliableEstimateWarning(UserWarning):
    """A log Z estimate whose error bar the diagnostics say not to trust."""


@dataclass(frozen=True)
class LogZEstimate:
    """A log-partition-function estimate.

    Attributes:
        log_z: importance-weighted estimate of log Z.
        stderr: its standard error (see ``log_z_stderr`` for when it is unreliable).
        elbo: lower bound mean(log w) when defined, else None.
        eubo: upper bound from exact target samples when available, else None.
        ess: normalized effective sample size in (0, 1] (None if undefined).
        num_samples: number of weighted samples (or particles) used.
        pareto_k: PSIS Pareto k^ of the weights (None when not computed, e.g. for SMC,
            whose error bar comes from independent replicates).
        stderr_batches: standard error from the spread of ``num_batches`` disjoint batch
            estimates (None when not computed); much larger than ``stderr`` means the
            delta method is fooled by heavy-tailed weights.
        num_batches: how many batches ``stderr_batches`` used.
        neg_inf_fraction: fraction of log-weights that were -inf (zero weight).
        reliable: False when a diagnostic says the error bar cannot be trusted.
        reason: why not (empty when reliable); several reasons are joined by "; ".
    """

    log_z: float
    stderr: float
    elbo: Optional[float] = None
    eubo: Optional[float] = None
    ess: Optional[float] = None
    num_samples: int = 0
    pareto_k: Optional[float] = None
    stderr_batches: Optional[float] = None
    num_batches: int = 0
    neg_inf_fraction: float = 0.0
    reliable: bool = True
    reason: str = ""

    def error(self, exact: float) -> float:
        """Signed error log_z - exact."""
        return self.log_z - exact

    def z_score(self, exact: float) -> float:
        """(log_z - exact) / stderr; inf if stderr is 0 and the error is not."""
        err = self.error(exact)
        if self.stderr > 0:
            return err / self.stderr
        return 0.0 if err == 0 else math.copysign(math.inf, err)

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        parts = [f"log Z = {self.log_z:.4f} ± {self.stderr:.4f}"]
        if self.elbo is not None:
            parts.append(f"ELBO = {self.elbo:.4f}")
        if self.eubo is not None:
            parts.append(f"EUBO = {self.eubo:.4f}")
        if self.ess is not None:
            parts.append(f"ESS = {self.ess:.3f}")
        if self.pareto_k is not None:
            parts.append(f"k^ = {self.pareto_k:.2f}")
        parts.append(f"n = {self.num_samples}")
        if not self.reliable:
            parts.append(f"UNRELIABLE: {self.reason}")
        return ", ".join(parts)


def _check_log_weights(log_w: Tensor, what: str = "log_weights") -> Tensor:
    if not isinstance(log_w, Tensor):
        log_w = torch.as_tensor(log_w)
    if log_w.ndim != 1 or log_w.numel() == 0:
        raise ValueError(f"{what} must be a non-empty 1-D tensor [n], got shape {tuple(log_w.shape)}")
    if bool(torch.isnan(log_w).any()) or bool((log_w == float("inf")).any()):
        n_bad = int((torch.isnan(log_w) | (log_w == float("inf"))).sum())
        raise ValueError(f"{what} contain {n_bad} NaN or +inf values of {log_w.numel()}: the "
                         f"target or the sampler's density produced invalid values")
    if bool((log_w == float("-inf")).all()):
        raise ValueError(f"all {what} are -inf: no sample has positive target density")
    return log_w.detach().double()


def log_mean_exp(log_w: Tensor, dim: int = -1) -> Tensor:
    """log(mean(exp(log_w))) along dim, stably."""
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def importance_log_z(log_w: Tensor) -> float:
    """logsumexp(log w) - log n. ``log_w``: Tensor[n]."""
    return float(log_mean_exp(_check_log_weights(log_w)))


def elbo(log_w: Tensor) -> float:
    """mean(log w), a lower bound on log Z in expectation. ``log_w``: Tensor[n] from q."""
    log_w = _check_log_weights(log_w)
    if bool((log_w == float("-inf")).any()):
        return -math.inf
    return float(log_w.mean())


def eubo(log_w_target: Tensor) -> float:
    """mean of log p~(x) - log q(x) over EXACT target samples x ~ p: an upper bound on log Z.

    ``log_w_target``: Tensor[n], the log-weights evaluated at target samples.
    """
    return float(_check_log_weights(log_w_target, "target-sample log_weights").mean())


def effective_sample_size(log_w: Tensor) -> float:
    """Normalized ESS (sum w)^2 / (n sum w^2) in (0, 1]. ``log_w``: Tensor[n]."""
    log_w = _check_log_weights(log_w)
    n = log_w.numel()
    return float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)) / n)


def log_z_stderr(log_w: Tensor) -> float:
    """Delta-method standard error of the importance-weighted log Z estimate.

    sd(w) / (sqrt(n) mean(w)) = sqrt((1/ESS - 1)/n) with the normalized ESS.

    Unreliable when the weights are heavy-tailed (ESS well below ~0.05, or a few
    samples carry most of the weight): the sample variance of w then underestimates
    the true variance, often by orders of magnitude, and log Z^ is biased low by
    more than this error bar suggests. Compare ELBO and EUBO, or repeat with more
    samples, before trusting it there.
    """
    log_w = _check_log_weights(log_w)
    n = log_w.numel()
    if n < 2:
        return math.inf
    ess = effective_sample_size(log_w)
    return math.sqrt(max(1.0 / ess - 1.0, 0.0) / n)


def _gpd_fit(exceedances: Tensor) -> tuple[float, float]:
    """Zhang & Stephens (2009) empirical-Bayes fit of a generalized Pareto distribution.

    ``exceedances``: Tensor[M] sorted ascending, > 0 (float64). Returns (k, sigma) with the
    weakly informative prior of Vehtari et al. (k shrunk toward 0.5 by 10 pseudo-draws).
    The profile likelihood over b = -k / sigma is averaged on a quasi-random grid of
    30 + sqrt(M) points around the data's scale.
    """
    x = exceedances
    M = x.numel()
    m_est = 30 + int(M ** 0.5)
    j = torch.arange(1, m_est + 1, dtype=x.dtype)
    b = (1 - torch.sqrt(m_est / (j - 0.5))) / (3 * x[int(M / 4 + 0.5) - 1]) + 1 / x[-1]
    k = torch.log1p(-b[:, None] * x).mean(1)  # profile MLE of k at each b
    log_lik = M * (torch.log(-b / k) - k - 1)
    weights = torch.softmax(log_lik, 0)
    b_post = (b * weights).sum()
    k_post = float(torch.log1p(-b_post * x).mean())
    sigma = -k_post / float(b_post)
    prior_n = 10
    return (M * k_post + prior_n * 0.5) / (M + prior_n), sigma


def pareto_k_hat(log_w: Tensor) -> float:
    """PSIS Pareto k^ of the importance weights (Vehtari et al.; ArviZ's ``psislw`` k).

    Fits a generalized Pareto distribution to the M = ceil(min(n / 5, 3 sqrt(n))) largest
    weights above the next one. Interpretation: k^ < 0.5 the weights have finite variance
    (the delta-method error bar is meaningful); 0.5-0.7 finite mean, slow convergence;
    > 0.7 the estimate is unreliable. ``inf`` when there are too few (<= 4) distinct tail
    weights to fit. ``log_w``: Tensor[n]; -inf entries count as zero weights.
    """
    log_w = _check_log_weights(log_w)
    n = log_w.numel()
    m = math.ceil(min(0.2 * n, 3 * math.sqrt(n)))
    if m + 1 > n:
        return math.inf
    x = log_w - log_w.max()
    x_sorted = torch.sort(x).values
    cutoff = max(float(x_sorted[-m - 1]), math.log(torch.finfo(torch.float64).tiny))
    tail = x_sorted[x_sorted > cutoff]
    if tail.numel() <= 4:
        return math.inf
    k, _ = _gpd_fit(torch.exp(tail) - math.exp(cutoff))
    return float(k)


def batch_log_z_stderr(log_w: Tensor, num_batches: int = DEFAULT_NUM_BATCHES) -> float:
    """Standard error of log Z^ from the spread of ``num_batches`` disjoint batch estimates.

    The log-weights (in the order given: independent draws) are cut into R equal batches
    (a remainder is dropped), each gives Z^_r, and the R values are combined as independent
    unbiased estimates (delta method with Bessel's correction), rescaled from a batch of
    n // R to all n samples by sqrt(R * (n // R) / n). ``inf`` when R < 2 or a batch is empty.
    """
    log_w = _check_log_weights(log_w)
    n, R = log_w.numel(), int(num_batches)
    if R < 2 or n // R < 1:
        return math.inf
    size = n // R
    batch_log_z = log_mean_exp(log_w[: R * size].view(R, size), -1)
    if bool(torch.isneginf(batch_log_z).any()):
        return math.inf  # a batch without any positive weight: no finite spread
    _, se = combine_independent_log_z(batch_log_z)
    return se * math.sqrt(R / (R - 1)) * math.sqrt(R * size / n)


_warned: set = set()


def warn_once(kind: str, message: str) -> None:
    """Warn about an unreliable estimate once per kind of reason per process."""
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message + " (further estimates flagged for this reason are not warned about; "
                      "see LogZEstimate.reliable / .reason)", UnreliableEstimateWarning, stacklevel=3)


def reliability(log_z: float, ess: Optional[float], n: int, pareto_k: Optional[float] = None,
                elbo_: Optional[float] = None, eubo_: Optional[float] = None,
                eubo_stderr: float = 0.0, warn: bool = True) -> tuple[bool, str]:
    """(reliable, reason) of an estimate from its diagnostics (thresholds: module docstring).

    ``eubo_stderr``: Monte Carlo standard error of the EUBO, the tolerance of the
    [ELBO, EUBO] check (the EUBO is itself an average over finitely many target samples).
    """
    reasons = []
    if pareto_k is not None and pareto_k > PARETO_K_MAX:
        reasons.append(("pareto_k", f"Pareto k^ = {pareto_k:.2f} > {PARETO_K_MAX}: the weights are "
                        f"too heavy-tailed for the error bar (and the estimate) to be trusted"))
    if ess is not None and ess * n < MIN_EFFECTIVE_SAMPLES:
        reasons.append(("ess", f"ESS * n = {ess * n:.1f} < {MIN_EFFECTIVE_SAMPLES:g} effective "
                        f"samples"))
    if elbo_ is not None and math.isfinite(elbo_) and log_z < elbo_ - 1e-9 * max(1.0, abs(elbo_)):
        reasons.append(("bounds", f"log Z^ = {log_z:.4f} < ELBO = {elbo_:.4f}"))
    if eubo_ is not None:
        if log_z > eubo_ + 3 * eubo_stderr:
            reasons.append(("bounds", f"log Z^ = {log_z:.4f} > EUBO = {eubo_:.4f} (+ 3 s.e. "
                            f"{eubo_stderr:.4f}): exact target samples contradict the estimate"))
        elif n * math.exp(-max(eubo_ - log_z, 0.0)) < MIN_EFFECTIVE_SAMPLES:
            reasons.append(("gap", f"EUBO - log Z^ = {eubo_ - log_z:.2f} nats: exact target samples "
                            f"see mass the sampler misses (importance sampling needs about "
                            f"n > 100 exp({eubo_ - log_z:.1f}) samples; modes missed?)"))
    for kind, message in reasons:
        if warn:
            warn_once(kind, f"unreliable log Z estimate: {message}")
    return not reasons, "; ".join(m for _, m in reasons)


def estimate_from_log_weights(log_w: Tensor, log_w_target: Optional[Tensor] = None, *,
                              num_batches: int = DEFAULT_NUM_BATCHES, warn: bool = True) -> LogZEstimate:
    """All estimators and diagnostics at once.

    Args:
        log_w: Tensor[n], log p~(x) - log q(x) for x ~ q (the sampler), in draw order
            (independent draws; the batch error bar cuts them into contiguous batches).
            -inf entries (zero target density) get zero weight.
        log_w_target: optional Tensor[m], the same log-ratio at exact target samples (EUBO).
        num_batches: batches for ``stderr_batches``.
        warn: emit an ``UnreliableEstimateWarning`` (once per reason) when flagged.
    Returns:
        LogZEstimate with ``reliable`` / ``reason`` set from k^, ESS, ELBO and EUBO.
    """
    log_w = _check_log_weights(log_w)
    n = int(log_w.numel())
    log_z, ess, elbo_ = importance_log_z(log_w), effective_sample_size(log_w), elbo(log_w)
    k = pareto_k_hat(log_w)
    eubo_, eubo_se = None, 0.0
    if log_w_target is not None:
        lw_t = _check_log_weights(log_w_target, "target-sample log_weights")
        eubo_ = float(lw_t.mean())
        eubo_se = float(lw_t.std() / math.sqrt(lw_t.numel())) if lw_t.numel() > 1 else 0.0
    ok, reason = reliability(log_z, ess, n, pareto_k=k, elbo_=elbo_, eubo_=eubo_,
                             eubo_stderr=eubo_se, warn=warn)
    return LogZEstimate(
        log_z=log_z, stderr=log_z_stderr(log_w), elbo=elbo_, eubo=eubo_, ess=ess, num_samples=n,
        pareto_k=k, stderr_batches=batch_log_z_stderr(log_w, num_batches),
        num_batches=int(num_batches), neg_inf_fraction=float(torch.isneginf(log_w).double().mean()),
        reliable=ok, reason=reason)


def combine_independent_log_z(log_z_hats: Tensor) -> tuple[float, float]:
    """Combine R independent unbiased estimates Z^_r (given as log Z^_r) of the same Z.

    Returns (log of mean Z^_r, delta-method standard error of it from the spread of the
    Z^_r). Used for SMC, whose single-run log Z^ has no simple error bar.
    """
    log_z_hats = _check_log_weights(log_z_hats, "log Z estimates")
    return importance_log_z(log_z_hats), log_z_stderr(log_z_hats)


__all__ = ["DEFAULT_NUM_BATCHES", "LogZEstimate", "MIN_EFFECTIVE_SAMPLES", "PARETO_K_MAX",
           "UnreliableEstimateWarning", "batch_log_z_stderr", "combine_independent_log_z",
           "effective_sample_size", "elbo", "estimate_from_log_weights", "eubo", "importance_log_z",
           "log_mean_exp", "log_z_stderr", "pareto_k_hat", "reliability", "warn_once"]
