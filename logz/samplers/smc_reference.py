"""SMC's reference distribution: the defensive mixture (1 - mix) N(0, s^2 I) + mix t_df(0, s^2 I).

Why a mixture (Hesterberg 1995): SMC anneals from this reference to the target, and the
incremental weights are powers of p~ / ref. With a Gaussian reference that ratio has infinite
variance on heavier-tailed targets (Funnel-10); the Student-t component keeps it finite. The
Gaussian component keeps near-Gaussian targets nearly exact (a pure t_3 reference multiplied
the error of log Z^ by ~3 on them). ``df = inf`` or ``mix = 0`` is the plain Gaussian,
``mix = 1`` the pure t.

The density is radial, so everything is a function of q = |x|^2: the Newton-Gibbs sweep
(``smc_kernels.gibbs_sweep``) evaluates it coordinate by coordinate through ``log_prob_q``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from logz.distributed import Shard
from logz.samplers.smc_kernels import global_draw

__all__ = ["DefensiveReference"]


class DefensiveReference(NamedTuple):
    """The reference (1 - mix) N(0, s^2 I) + mix t_df(0, s^2 I) in ``dim`` dimensions.

    Fields: dim; scale s (> 0); df the t component's degrees of freedom (> 0, inf allowed);
    mix the t component's weight in [0, 1] (treated as 0 when df is infinite).
    """

    dim: int
    scale: float
    df: float
    mix: float

    @classmethod
    def checked(cls, dim: int, scale: float, df: float, mix: float) -> "DefensiveReference":
        """The reference from user configuration: each value checked (a ``ValueError`` naming
        ``init_std``, ``reference_df`` or ``reference_mix``), mix set to 0 when df is infinite."""
        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
        for name, v, ok, what in (
                ("init_std", scale, number(scale) and math.isfinite(scale) and scale > 0, "a finite number > 0"),
                ("reference_df", df, number(df) and df > 0, "a number > 0 (math.inf: Gaussian)"),
                ("reference_mix", mix, number(mix) and 0 <= mix <= 1, "in [0, 1]")):
            if not ok:
                raise ValueError(f"{name} must be {what}, got {v!r}")
        return cls(int(dim), float(scale), float(df), 0.0 if math.isinf(df) else float(mix))

    def parts(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """log of the Gaussian and of the t component (mixture weights included), q = |x|^2."""
        s2, nu, d, m = self.scale ** 2, self.df, self.dim, self.mix
        ninf = torch.full_like(q, -math.inf)
        gauss = (-0.5 * q / s2 - 0.5 * d * math.log(2 * math.pi * s2) + math.log1p(-m)) if m < 1 else ninf
        if m == 0:
            return gauss, ninf
        c = math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi * s2)
        return gauss, c - 0.5 * (nu + d) * torch.log1p(q / (nu * s2)) + math.log(m)

    def log_prob_q(self, q: Tensor) -> Tensor:
        """Normalized log density as a function of q = |x|^2 (any shape)."""
        return torch.logaddexp(*self.parts(q))

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalized log density at x [..., dim] -> [...]."""
        return self.log_prob_q((x * x).sum(-1))

    def grad(self, x: Tensor) -> Tensor:
        """Gradient of ``log_prob`` at x [..., dim] -> [..., dim] (closed form)."""
        s2, nu = self.scale ** 2, self.df
        if self.mix == 0 or math.isinf(nu):  # the plain Gaussian (the t term would be 0 * inf)
            return -x / s2
        q = (x * x).sum(-1, keepdim=True)
        gauss, t = self.parts(q)
        r_t = torch.exp(t - torch.logaddexp(gauss, t))  # responsibility of the t component
        return -(1 - r_t) * x / s2 - r_t * (nu + self.dim) * x / (nu * s2 + q)

    def sample(self, R: int, n: int, *, generator: torch.Generator, shard: Shard, dtype: torch.dtype,
               device: torch.device) -> Tensor:
        """[R, n, dim] draws: this rank's n particles of each of R replicates (global draw,
        sharded along the particles, see ``Shard.randn``)."""
        kw = dict(dtype=dtype, device=device)
        z = shard.randn((R, n, self.dim), generator=generator, dim=1, **kw)
        if self.mix > 0:  # t = z / sqrt(chi2_nu / nu) for the t component
            chi2_half = global_draw(  # chi2_nu / 2
                shard, lambda shape: torch._standard_gamma(
                    torch.full(shape, self.df / 2, **kw), generator=generator), (R, n, 1), dim=1)
            pick = shard.rand((R, n, 1), generator=generator, dim=1, **kw) < self.mix
            z = torch.where(pick, z * (0.5 * self.df / chi2_half).sqrt(), z)
        return self.scale * z
