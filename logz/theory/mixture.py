"""Beyond the theorem: Gaussian-mixture data, exact score, W2 measured by exact OT on samples.

A mixture sum_j w_j N(m_j, C_j) stays a mixture under the forward process,
p_s = sum_j w_j N(mu_s m_j, mu_s^2 C_j + sigma_s^2 I), so its score is exact:
grad log p_s(x) = sum_j r_j(x) (-(C_j(s))^{-1} (x - mu_s m_j)) with responsibilities r_j.
The sampler output is no longer Gaussian, so W2 to p_0 is measured from samples with
exact optimal transport (``ot.emd2``), repeated over seeds for an error bar.

For the symmetric two-mode family 1/2 N(-a e_1, s^2 I) + 1/2 N(a e_1, s^2 I),
-d^2/dx_1^2 log p_0 = 1/s^2 - (a/s^2)^2 sech^2(a x_1/s^2), so p_0 is strongly log-concave
with m0 = 1/s^2 - a^2/s^4 iff a < s, and L0 = 1/s^2: the bound applies below a = s and
stops applying at a = s (ValueError from ``w2_bound``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from logz.theory._threads import single_threaded
from logz.theory.bounds import w2_bound
from logz.theory.processes import ForwardProcess, _f64, check_horizon, make_process
from logz.theory.sampler import check_steps, solve_pf_ode
from logz.theory.w2 import empirical_w2


class GaussianMixtureData:
    """p_0 = sum_j w_j N(means_j, covs_j). weights: Tensor[J]; means: Tensor[J, d]; covs: Tensor[J, d, d]."""

    def __init__(self, weights: Tensor, means: Tensor, covs: Tensor,
                 log_concavity: Optional[tuple[float, float]] = None):
        w, m = torch.as_tensor(weights, dtype=torch.float64), torch.as_tensor(means, dtype=torch.float64)
        C = torch.as_tensor(covs, dtype=torch.float64)
        J, d = m.shape
        if w.shape != (J,) or C.shape != (J, d, d) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError("need weights Tensor[J] >= 0, means Tensor[J, d], covs Tensor[J, d, d]")
        if not float(torch.linalg.eigvalsh(C).min()) > 0:
            raise ValueError("covariance not positive definite in a mixture component")
        self.weights, self.means, self.covs = w / w.sum(), m, C
        self._concavity = log_concavity

    @classmethod
    def two_modes(cls, dim: int, separation: float, std: float = 1.0) -> "GaussianMixtureData":
        """1/2 N(-a e_1, s^2 I) + 1/2 N(a e_1, s^2 I) with a = separation, s = std."""
        if not std > 0 or separation < 0:
            raise ValueError(f"need std > 0 and separation >= 0, got {std}, {separation}")
        means = torch.zeros(2, dim, dtype=torch.float64)
        means[0, 0], means[1, 0] = -separation, separation
        covs = std ** 2 * torch.eye(dim, dtype=torch.float64).expand(2, dim, dim)
        m0 = 1 / std ** 2 - separation ** 2 / std ** 4
        return cls(torch.tensor([0.5, 0.5]), means, covs, log_concavity=(m0, 1 / std ** 2))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def log_concavity(self) -> Optional[tuple[float, float]]:
        """(m0, L0) when known in closed form (m0 <= 0: not strongly log-concave), else None."""
        return self._concavity

    @property
    def x0_norm(self) -> float:
        """||x_0||_L2 = sqrt(sum_j w_j (|m_j|^2 + tr C_j))."""
        sq = self.means.pow(2).sum(-1) + torch.diagonal(self.covs, dim1=-2, dim2=-1).sum(-1)
        return math.sqrt(float((self.weights * sq).sum()))

    def _components(self, process: ForwardProcess, s, dtype):
        mu, sig2 = process.mu(s), process.sigma2(s)
        covs = mu ** 2 * self.covs + sig2 * torch.eye(self.dim, dtype=torch.float64)
        return (mu * self.means).to(dtype), torch.linalg.cholesky(covs).to(dtype)

    def _log_terms(self, x: Tensor, process: ForwardProcess, s) -> tuple[Tensor, Tensor]:
        means, chol = self._components(process, s, x.dtype)
        diff = x[:, None, :] - means                                           # [B, J, d]
        z = torch.linalg.solve_triangular(chol, diff.unsqueeze(-1), upper=False).squeeze(-1)
        log_det = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)    # [J]
        logits = (torch.log(self.weights).to(x.dtype) - 0.5 * z.pow(2).sum(-1) - log_det
                  - 0.5 * self.dim * math.log(2 * math.pi))
        # C^{-1} diff = L^{-T} z
        grad = -torch.linalg.solve_triangular(chol.transpose(-1, -2), z.unsqueeze(-1), upper=True).squeeze(-1)
        return logits, grad

    def log_prob(self, x: Tensor, process: ForwardProcess, s) -> Tensor:
        """log p_s(x): Tensor[B] for x: Tensor[B, d]."""
        logits, _ = self._log_terms(x, process, s)
        return torch.logsumexp(logits, -1)

    def score(self, x: Tensor, process: ForwardProcess, s) -> Tensor:
        """grad log p_s(x): Tensor[B, d] (closed form: responsibilities times component scores)."""
        logits, grad = self._log_terms(x, process, s)
        return (torch.softmax(logits, -1)[..., None] * grad).sum(-2)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               dtype: torch.dtype = torch.float64) -> Tensor:
        """Exact samples Tensor[n, d]."""
        idx = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[idx] + (torch.linalg.cholesky(self.covs)[idx] @ z[..., None])[..., 0]
        return x.to(dtype)

    def estimate_time_lipschitz(self, process: ForwardProcess, T: float, num_times: int = 65,
                                num_points: int = 256, seed: int = 0):
        """Estimated local modulus s -> L1(s) of assumption A4 (a numerical estimate, not a proof).

        At each of ``num_times`` forward times: max over samples of p_s and a line through the
        modes of |d/ds score| / (1 + |x|) (central differences), then the max over neighbouring
        times, times a 1.25 safety factor, interpolated linearly.
        """
        gen = torch.Generator().manual_seed(seed)
        grid = torch.linspace(0.0, T, num_times, dtype=torch.float64)
        span = float(self.means.abs().max()) + 4 * float(torch.linalg.eigvalsh(self.covs).max()) ** 0.5
        line = torch.zeros(65, self.dim, dtype=torch.float64)
        line[:, 0] = torch.linspace(-span, span, 65, dtype=torch.float64)
        est = []
        for s in grid.tolist():
            mu, sig = float(process.mu(s)), float(process.sigma2(s)) ** 0.5
            noise = torch.randn(num_points, self.dim, generator=gen, dtype=torch.float64)
            x = torch.cat([mu * self.sample(num_points, gen) + sig * noise, mu * line])
            delta = 1e-5 * T
            lo, hi = max(s - delta, 0.0), min(s + delta, T)
            ds = (self.score(x, process, hi) - self.score(x, process, lo)) / (hi - lo)
            est.append(float((ds.norm(dim=-1) / (1 + x.norm(dim=-1))).max()))
        est = np.array(est)
        padded = np.maximum(est, np.maximum(np.r_[est[1:], est[-1]], np.r_[est[0], est[:-1]])) * 1.25
        grid_np = grid.numpy()

        def profile(s) -> Tensor:
            s = _f64(s)
            return torch.from_numpy(np.interp(s.numpy().ravel(), grid_np, padded)).reshape(s.shape)

        return profile


@dataclass
class MixtureRow:
    """One separation: W2 from samples (mean of W2^2 over repeats, square-rooted, +- a standard
    error), the sampling floor (same estimator between two exact samples), and the bound."""

    separation: float
    m0: float
    L0: float
    w2: float
    w2_stderr: float
    floor: float
    floor_stderr: float
    bound: Optional[float]
    note: str


def _w2_stats(values: Sequence[float]) -> tuple[float, float]:
    sq = np.square(values)
    mean = float(sq.mean())
    se_sq = float(sq.std(ddof=1) / math.sqrt(len(sq))) if len(sq) > 1 else float("nan")
    w2 = math.sqrt(max(mean, 0.0))
    return w2, (se_sq / (2 * w2) if w2 > 0 else float("nan"))   # delta method for sqrt


@single_threaded
def check_mixture(schedule: Union[str, ForwardProcess] = "vp", dim: int = 2,
                  separations: Sequence[float] = (0.0, 0.5, 0.9, 1.5, 3.0), std: float = 1.0,
                  K: int = 16, T: Optional[float] = None, method: str = "exp", num_samples: int = 1000,
                  repeats: int = 4, seed: int = 0) -> list[MixtureRow]:
    """Measured W2 of the PF-ODE sampler on two-mode mixtures, with the bound where it applies.

    Samples start from N(0, sigma_T^2 I) and follow the sampler with the exact mixture score;
    the bound uses the closed-form (m0, L0) and an *estimated* local L1
    (``estimate_time_lipschitz``). E W2^2(empirical, empirical) >= W2^2(law, law) (joint
    convexity), so the sample estimate errs upward, towards violating the bound.
    """
    K = check_steps(K)
    if isinstance(schedule, ForwardProcess):
        process, T = schedule, check_horizon(T if T is not None else schedule.horizon)
    else:
        process = make_process(schedule, T)
        T = process.horizon
    rows = []
    sig_T = float(process.sigma2(T)) ** 0.5
    for a in separations:
        mix = GaussianMixtureData.two_modes(dim, a, std)
        m0, L0 = mix.log_concavity
        w2s, floors = [], []
        for r in range(repeats):
            gen = torch.Generator().manual_seed(seed + 1000 * r)
            y0 = sig_T * torch.randn(num_samples, dim, generator=gen, dtype=torch.float64)
            out = solve_pf_ode(lambda x, s: mix.score(x, process, s), process, y0, T, K, method)
            w2s.append(empirical_w2(out, mix.sample(num_samples, gen)))
            floors.append(empirical_w2(mix.sample(num_samples, gen), mix.sample(num_samples, gen)))
        w2, w2_se = _w2_stats(w2s)
        floor, floor_se = _w2_stats(floors)
        bound, note = None, ""
        if method != "exp":
            note = "no bound: the theorem is for method 'exp'"
        else:
            try:
                bound = w2_bound(process, T, K=K, dim=dim, m0=m0, L0=L0,
                                 L1=mix.estimate_time_lipschitz(process, T, seed=seed),
                                 x0_norm=mix.x0_norm).total
                note = "bound applies (L1 estimated)"
            except ValueError as err:
                note = str(err)
        rows.append(MixtureRow(float(a), m0, L0, w2, w2_se, floor, floor_se, bound, note))
    return rows


def mixture_table(rows: Sequence[MixtureRow]) -> str:
    """Plain-text table of ``check_mixture`` rows."""
    lines = [f"{'a':>5} {'m0':>8} {'W2':>8} {'+-':>7} {'floor':>8} {'+-':>7} {'bound':>9}  note"]
    for r in rows:
        b = "        -" if r.bound is None else f"{r.bound:9.3g}"
        lines.append(f"{r.separation:5.2f} {r.m0:8.3f} {r.w2:8.4f} {r.w2_stderr:7.4f} {r.floor:8.4f} "
                     f"{r.floor_stderr:7.4f} {b}  {r.note}")
    return "\n".join(lines)


def mixture_rows_to_dicts(rows: Sequence[MixtureRow]) -> list[dict]:
    return [asdict(r) for r in rows]
