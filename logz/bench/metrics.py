"""Sample-quality and log Z metrics, each with a sampling error bar.

Every metric returns a :class:`Metric` ``(value, stderr, info)``: ``stderr`` is
the standard error of ``value`` from the finite samples (closed form where one
exists, otherwise a cheap bootstrap or batch-means estimate, stated per
function). It covers sampling noise only, not the bias of plug-in estimators
(e.g. sample-based W2 is biased upward by the empirical-measure error).

Inputs are tensors ``[n, dim]`` (float32 or float64, any device; computations
run in float64 on the CPU). Randomness (bootstrap, projections) takes a
``torch.Generator`` or a seed.

Contents: log Z errors (IS, ELBO, EUBO), ESS, W2 (exact OT with POT, sliced
for large n), MMD² (median-heuristic Gaussian kernel, unbiased), energy
distance, mode coverage (mixtures, Many-Well) and the energy-histogram W2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from logz.samplers.estimators import LogZEstimate, effective_sample_size, eubo as _eubo

Seed = Union[int, torch.Generator, None]


@dataclass(frozen=True)
class Metric:
    """A metric value with its sampling standard error.

    Attributes:
        value: the estimate.
        stderr: its standard error (``nan`` where it cannot be estimated).
        info: extra details (method, sample sizes, bandwidth, ...).
    """

    value: float
    stderr: float
    info: dict = field(default_factory=dict)

    def __iter__(self):  # allows ``value, stderr = metric``
        return iter((self.value, self.stderr))

    def __str__(self) -> str:
        return f"{self.value:.4g} ± {self.stderr:.2g}"


def _gen(seed: Seed) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def _as2d(x: Tensor, what: str) -> Tensor:
    x = torch.as_tensor(x).detach()
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{what} must be a Tensor[n, dim] with n >= 2, got shape {tuple(x.shape)}")
    return x.to(device="cpu", dtype=torch.float64)


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x, y = _as2d(x, "x"), _as2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dim, got {x.shape[1]} and {y.shape[1]}")
    return x, y


def _log_w(log_w: Tensor) -> Tensor:
    return torch.as_tensor(log_w).detach().double().cpu().reshape(-1)


# -- log Z -----------------------------------------------------------------------------------
def log_z_error(estimate: LogZEstimate, exact: float) -> Metric:
    """Signed error of the importance-weighted estimate, log Z^ - log Z (stderr: the estimate's own)."""
    return Metric(estimate.log_z - float(exact), float(estimate.stderr),
                  {"num_samples": estimate.num_samples, "ess": estimate.ess})


def elbo_error(source: Union[Tensor, LogZEstimate], exact: float) -> Metric:
    """ELBO - log Z (≤ 0 in expectation).

    Args:
        source: log-weights Tensor[n] of samples from q (stderr = sd(log w)/√n), or a
            LogZEstimate (its ``elbo``; stderr ``nan``, since the estimate keeps no spread).
    """
    if isinstance(source, LogZEstimate):
        if source.elbo is None:
            raise ValueError("this LogZEstimate has no ELBO")
        return Metric(source.elbo - float(exact), math.nan, {"num_samples": source.num_samples})
    lw = _log_w(source)
    return Metric(float(lw.mean()) - float(exact), float(lw.std() / math.sqrt(lw.numel())),
                  {"num_samples": lw.numel()})


def eubo_metric(log_w_target: Tensor, exact: Optional[float] = None) -> Metric:
    """EUBO from log-weights at EXACT target samples (``estimators.eubo``), minus ``exact`` if given.

    stderr = sd(log w)/√n. The EUBO is ≥ log Z in expectation.
    """
    lw = _log_w(log_w_target)
    value = _eubo(lw) - (0.0 if exact is None else float(exact))
    return Metric(value, float(lw.std() / math.sqrt(lw.numel())), {"num_samples": lw.numel()})


def ess_metric(log_w: Tensor, num_bootstrap: int = 200, seed: Seed = 0) -> Metric:
    """Normalized ESS (``estimators.effective_sample_size``) with a bootstrap stderr."""
    lw = _log_w(log_w)
    value = effective_sample_size(lw)
    idx = torch.randint(lw.numel(), (num_bootstrap, lw.numel()), generator=_gen(seed))
    b = lw[idx]
    ess_b = torch.exp(2 * torch.logsumexp(b, 1) - torch.logsumexp(2 * b, 1)) / lw.numel()
    return Metric(value, float(ess_b.std()), {"num_samples": lw.numel(), "num_bootstrap": num_bootstrap})


# -- Wasserstein -----------------------------------------------------------------------------
def w2_1d_squared(a: Tensor, b: Tensor) -> Tensor:
    """Exact squared 1-D W2 between empirical measures, column by column.

    Integrates |F_a⁻¹(u) - F_b⁻¹(u)|² over the merged quantile levels.
    Args: a: Tensor[n, P], b: Tensor[m, P] (or 1-D). Returns: Tensor[P] (or scalar).
    """
    squeeze = a.ndim == 1
    a, b = (a[:, None], b[:, None]) if squeeze else (a, b)
    n, m = a.shape[0], b.shape[0]
    a, b = a.sort(0).values, b.sort(0).values
    if n == m:
        out = ((a - b) ** 2).mean(0)
    else:
        levels = torch.unique(torch.cat([torch.arange(1, n + 1, dtype=a.dtype) / n,
                                         torch.arange(1, m + 1, dtype=a.dtype) / m]))
        w = torch.diff(levels, prepend=levels.new_zeros(1))
        mid = levels - 0.5 * w
        ia = torch.clamp((mid * n).long(), max=n - 1)
        ib = torch.clamp((mid * m).long(), max=m - 1)
        out = (w[:, None] * (a[ia] - b[ib]) ** 2).sum(0)
    return out[0] if squeeze else out


def _blocks(n: int, k: int, gen: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=gen).chunk(k))


def _batch_means_se(vals: list[float]) -> float:
    v = torch.tensor(vals, dtype=torch.float64)
    return float(v.std() / math.sqrt(len(vals))) if len(vals) > 1 else math.nan


def w2_exact(x: Tensor, y: Tensor, num_blocks: int = 4, seed: Seed = 0,
             num_iter_max: int = 1_000_000) -> Metric:
    """W2 between the empirical measures of x [n, d] and y [m, d] by exact OT (POT ``ot.emd2``).

    stderr: batch means over ``num_blocks`` disjoint random blocks (W2 on each block
    pair, sd / √k) — an estimate of the sampling spread at this n, not of the
    upward bias. Cost O(n m) memory, roughly O(n³) time: use :func:`w2` for large n.
    """
    import ot  # POT; imported lazily (slow import)

    x, y = _pair(x, y)

    def value(a: Tensor, b: Tensor) -> float:
        cost = torch.cdist(a, b) ** 2
        wa = torch.full((a.shape[0],), 1.0 / a.shape[0], dtype=torch.float64)
        wb = torch.full((b.shape[0],), 1.0 / b.shape[0], dtype=torch.float64)
        w2sq = float(ot.emd2(wa.numpy(), wb.numpy(), cost.numpy(), numItermax=num_iter_max))
        return math.sqrt(max(w2sq, 0.0))

    gen = _gen(seed)
    full = value(x, y)
    se = math.nan
    if num_blocks > 1 and min(len(x), len(y)) >= 2 * num_blocks:
        bx, by = _blocks(len(x), num_blocks, gen), _blocks(len(y), num_blocks, gen)
        se = _batch_means_se([value(x[i], y[j]) for i, j in zip(bx, by)])
    return Metric(full, se, {"method": "exact", "n": len(x), "m": len(y)})


def sliced_w2(x: Tensor, y: Tensor, num_projections: int = 256, num_blocks: int = 4,
              seed: Seed = 0) -> Metric:
    """Sliced W2: sqrt(E_θ W2²(θᵀx, θᵀy)) over random unit directions θ (exact 1-D OT per slice).

    A different distance from W2 (SW2 ≤ W2); cheap for any n. stderr: in quadrature,
    (i) batch means over disjoint sample blocks with the same directions and (ii) the
    Monte Carlo error of the projection average, sd_θ(W2²) / (√P · 2 SW2) (delta method).
    Neither covers the upward bias of the empirical measures.
    """
    x, y = _pair(x, y)
    gen = _gen(seed)
    theta = torch.randn(x.shape[1], num_projections, generator=gen, dtype=torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, py = x @ theta, y @ theta

    def value(a: Tensor, b: Tensor) -> float:
        return math.sqrt(max(float(w2_1d_squared(a, b).mean()), 0.0))

    per_slice = w2_1d_squared(px, py)
    full = math.sqrt(max(float(per_slice.mean()), 0.0))
    se_blocks = 0.0
    if num_blocks > 1 and min(len(x), len(y)) >= 2 * num_blocks:
        bx, by = _blocks(len(x), num_blocks, gen), _blocks(len(y), num_blocks, gen)
        se_blocks = _batch_means_se([value(px[i], py[j]) for i, j in zip(bx, by)])
    se_proj = (float(per_slice.std()) / math.sqrt(num_projections) / (2 * full)
               if num_projections > 1 and full > 0 else 0.0)
    se = math.sqrt(se_blocks ** 2 + se_proj ** 2)
    return Metric(full, se, {"method": "sliced", "num_projections": num_projections,
                             "n": len(x), "m": len(y), "stderr_projections": se_proj})


def w2(x: Tensor, y: Tensor, max_exact: int = 5000, seed: Seed = 0, **kwargs) -> Metric:
    """W2 by exact OT when max(n, m) ≤ ``max_exact``, else sliced W2 (see ``info['method']``)."""
    if max(len(x), len(y)) <= max_exact:
        return w2_exact(x, y, seed=seed, **kwargs)
    return sliced_w2(x, y, seed=seed, **kwargs)


# -- kernel two-sample statistics --------------------------------------------------------------
def _u_statistic(kxx: Tensor, kyy: Tensor, kxy: Tensor) -> Metric:
    """Unbiased E k(x,x') + E k(y,y') - 2 E k(x,y) and its Hoeffding-decomposition stderr.

    stderr (for the paired statistic on the first k = min(n, m) points of each):
    Var U ≈ 4(k-2)/(k(k-1)) ζ1 + 2/(k(k-1)) ζ2, ζ1 = Var_i(mean_j h_ij), ζ2 = Var(h_ij),
    with h_ij = k(x_i,x_j) + k(y_i,y_j) - k(x_i,y_j) - k(x_j,y_i).
    """
    n, m = kxx.shape[0], kyy.shape[0]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    value = float(sxx + syy - 2 * kxy.mean())
    k = min(n, m)
    h = kxx[:k, :k] + kyy[:k, :k] - kxy[:k, :k] - kxy[:k, :k].T
    off = ~torch.eye(k, dtype=torch.bool)
    h_off = h[off]
    row = (h * off).sum(1) / (k - 1)
    zeta1, zeta2 = float(row.var()), float(h_off.var())
    var = 4 * (k - 2) / (k * (k - 1)) * zeta1 + 2 / (k * (k - 1)) * zeta2
    return Metric(value, math.sqrt(max(var, 0.0)), {"n": n, "m": m})


def median_bandwidth(x: Tensor, y: Tensor, max_points: int = 1000, seed: Seed = 0) -> float:
    """Median heuristic: median pairwise Euclidean distance in the pooled sample (subsampled)."""
    z = torch.cat(_pair(x, y))
    if len(z) > max_points:
        z = z[torch.randperm(len(z), generator=_gen(seed))[:max_points]]
    d = torch.pdist(z)
    med = float(d.median())
    return med if med > 0 else 1.0


def mmd(x: Tensor, y: Tensor, bandwidth: Optional[float] = None, seed: Seed = 0) -> Metric:
    """Unbiased MMD² (U-statistic) with the Gaussian kernel k(a, b) = exp(-‖a - b‖² / (2 h²)).

    ``bandwidth`` h defaults to the median heuristic (:func:`median_bandwidth`). The value
    is MMD² (may be slightly negative when the laws agree); stderr from the Hoeffding
    decomposition (see ``_u_statistic``). O((n + m)²) memory.
    """
    x, y = _pair(x, y)
    h = median_bandwidth(x, y, seed=seed) if bandwidth is None else float(bandwidth)

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))

    out = _u_statistic(k(x, x), k(y, y), k(x, y))
    return Metric(out.value, out.stderr, {**out.info, "bandwidth": h, "squared": True})


def energy_distance(x: Tensor, y: Tensor) -> Metric:
    """Energy distance 2 E‖X - Y‖ - E‖X - X'‖ - E‖Y - Y'‖ (unbiased U-statistic; Hoeffding stderr).

    Equals MMD² with the kernel -‖a - b‖; it is the squared-distance form (≥ 0 for the laws).
    """
    x, y = _pair(x, y)
    return _u_statistic(-torch.cdist(x, x), -torch.cdist(y, y), -torch.cdist(x, y))


# -- modes -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModeCoverage:
    """Mode occupation of samples vs the exact mode weights.

    Attributes:
        fractions: Tensor[K] fraction of samples per mode (for Many-Well: per pair, in the right well).
        expected: Tensor[K] exact probabilities.
        stderr: Tensor[K] binomial standard errors sqrt(p (1 - p) / n) with the exact p.
        coverage: Metric, fraction of modes with at least ``min_count`` samples (mixtures)
            or of pairs with both wells visited (Many-Well); bootstrap stderr.
        tv: Metric, total variation ½ Σ |fractions - expected| (mixtures) or the mean
            |fraction - expected| over pairs (Many-Well); bootstrap stderr. Biased upward
            by the multinomial noise (≈ Σ stderr / √(2π) when the sampler is exact).
        kind: ``"mixture"`` (one entry per mode) or ``"wells"`` (one entry per double-well
            pair: the right-well fraction), so readers of stored records need not guess.
    """

    fractions: Tensor
    expected: Tensor
    stderr: Tensor
    coverage: Metric
    tv: Metric
    kind: str = "mixture"

    def z_scores(self) -> Tensor:
        """(fractions - expected) / stderr, Tensor[K]."""
        return (self.fractions - self.expected) / self.stderr.clamp_min(1e-300)


def mode_coverage(x: Tensor, target, min_count: int = 1, num_bootstrap: int = 200,
                  seed: Seed = 0) -> ModeCoverage:
    """Mode coverage of samples x [n, dim] for a mixture (``assign_modes`` + ``weights``) or a
    Many-Well target (``well_signs`` + ``prob_right_well``: per pair, right-well fraction)."""
    x = torch.as_tensor(x).detach()
    gen = _gen(seed)
    n = x.shape[0]
    if hasattr(target, "well_signs") and hasattr(target, "prob_right_well"):
        signs = target.well_signs(x).double().cpu()  # [n, P]
        p = torch.full((signs.shape[1],), float(target.prob_right_well), dtype=torch.float64)

        def stats(s: Tensor) -> tuple[Tensor, Tensor]:
            f = s.mean(0)
            both = ((s.sum(0) >= min_count) & ((1 - s).sum(0) >= min_count)).double().mean()
            return both, (f - p).abs().mean()

        frac = signs.mean(0)
        cov, tv = stats(signs)
        idx = torch.randint(n, (num_bootstrap, n), generator=gen)
        boots = [stats(signs[i]) for i in idx]
        kind = "wells"
    elif hasattr(target, "assign_modes") and hasattr(target, "weights"):
        p = torch.as_tensor(target.weights, dtype=torch.float64).cpu()
        K = p.numel()
        counts = torch.bincount(target.assign_modes(x).cpu(), minlength=K).double()

        def stats_c(c: Tensor) -> tuple[Tensor, Tensor]:
            return (c >= min_count).double().mean(), 0.5 * (c / n - p).abs().sum()

        frac = counts / n
        cov, tv = stats_c(counts)
        draws = torch.multinomial(frac, n * num_bootstrap, replacement=True, generator=gen)
        bc = torch.nn.functional.one_hot(draws.view(num_bootstrap, n), K).sum(1).double()
        boots = [stats_c(c) for c in bc]
        kind = "mixture"
    else:
        raise ValueError(f"target {getattr(target, 'name', target)!r} has neither assign_modes+weights "
                         f"(mixture) nor well_signs+prob_right_well (Many-Well)")
    bc_cov = torch.stack([b[0] for b in boots])
    bc_tv = torch.stack([b[1] for b in boots])
    se = torch.sqrt(p * (1 - p) / n)
    return ModeCoverage(frac, p, se, Metric(float(cov), float(bc_cov.std()), {"min_count": min_count}),
                        Metric(float(tv), float(bc_tv.std()), {"num_samples": n}), kind)


# -- energies --------------------------------------------------------------------------------
def energy_histogram_w2(x: Tensor, y: Tensor, energy: Union[Callable[[Tensor], Tensor], object],
                        num_bootstrap: int = 200, seed: Seed = 0) -> Metric:
    """1-D W2 between the energy distributions of two sample sets (e.g. model vs reference).

    Args:
        x: Tensor[n, dim], y: Tensor[m, dim].
        energy: a callable E(x) -> Tensor[B], or a target (its ``energy``, else ``-log_prob``).
    Returns:
        Metric, exact 1-D W2 of the empirical energy laws; bootstrap stderr.
    """
    if callable(energy) and not hasattr(energy, "log_prob"):
        fn = energy
    elif hasattr(energy, "energy"):
        fn = energy.energy
    else:
        fn = lambda z: -energy.log_prob(z)  # noqa: E731
    with torch.no_grad():
        ex = fn(torch.as_tensor(x)).detach().double().cpu().reshape(-1)
        ey = fn(torch.as_tensor(y)).detach().double().cpu().reshape(-1)
    value = math.sqrt(max(float(w2_1d_squared(ex, ey)), 0.0))
    gen = _gen(seed)
    ix = torch.randint(len(ex), (len(ex), num_bootstrap), generator=gen)
    iy = torch.randint(len(ey), (len(ey), num_bootstrap), generator=gen)
    boot = w2_1d_squared(ex[ix], ey[iy]).clamp_min(0).sqrt()
    return Metric(value, float(boot.std()), {"n": len(ex), "m": len(ey)})


__all__ = ["Metric", "ModeCoverage", "log_z_error", "elbo_error", "eubo_metric", "ess_metric",
           "w2", "w2_exact", "sliced_w2", "w2_1d_squared", "mmd", "median_bandwidth",
           "energy_distance", "mode_coverage", "energy_histogram_w2"]
