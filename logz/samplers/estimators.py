"""From log importance weights to log Z estimates with error bars.

With samples x_i ~ q and log w_i = log p~(x_i) - log q(x_i) (p~ the unnormalized
target, Z its normalizer):

- importance-weighted estimate  log Z^ = logsumexp(log w) - log n  (consistent;
  biased low by about Var(w)/(2 n E[w]^2) in log space);
- ELBO = mean(log w) <= log Z (Jensen);
- EUBO = mean over x_i ~ p of log p~(x_i) - log q(x_i) >= log Z, when exact target
  samples and a tractable q exist;
- normalized ESS = (sum w)^2 / (n sum w^2) in (0, 1];
- delta-method standard error of log Z^: sd(w) / (sqrt(n) mean(w)), which in terms
  of the normalized ESS is sqrt((1/ESS - 1) / n).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import Tensor


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
    """

    log_z: float
    stderr: float
    elbo: Optional[float] = None
    eubo: Optional[float] = None
    ess: Optional[float] = None
    num_samples: int = 0

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
        parts.append(f"n = {self.num_samples}")
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


def estimate_from_log_weights(log_w: Tensor, log_w_target: Optional[Tensor] = None) -> LogZEstimate:
    """All estimators at once.

    Args:
        log_w: Tensor[n], log p~(x) - log q(x) for x ~ q (the sampler).
        log_w_target: optional Tensor[m], the same log-ratio at exact target samples (EUBO).
    Returns:
        LogZEstimate.
    """
    log_w = _check_log_weights(log_w)
    return LogZEstimate(
        log_z=importance_log_z(log_w), stderr=log_z_stderr(log_w), elbo=elbo(log_w),
        eubo=None if log_w_target is None else eubo(log_w_target),
        ess=effective_sample_size(log_w), num_samples=int(log_w.numel()))


def combine_independent_log_z(log_z_hats: Tensor) -> tuple[float, float]:
    """Combine R independent unbiased estimates Z^_r (given as log Z^_r) of the same Z.

    Returns (log of mean Z^_r, delta-method standard error of it from the spread of the
    Z^_r). Used for SMC, whose single-run log Z^ has no simple error bar.
    """
    log_z_hats = _check_log_weights(log_z_hats, "log Z estimates")
    return importance_log_z(log_z_hats), log_z_stderr(log_z_hats)
