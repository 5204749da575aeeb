"""Exact Gaussian laboratory: the sampler's output law with no sampling error.

With Gaussian data the exact score is affine in x, and so is any perturbed score
s_hat(x, s) = x A(s)^T + b(s) built here (constant bias, or a Lipschitz perturbation
linear in x). Every step of every discretization (exponential integrator, Euler, Heun,
midpoint, RK4) is then an affine map y -> P y + q, and a Gaussian N(m, X X^T) is sent to
N(P m + q, (P X)(P X)^T). We propagate the mean with the full score and the columns of
the factor X with the linear part x A^T alone, through the *same* solver
(``sampler.solve_pf_ode``) that runs on samples. This is exact (no subtraction of
nearby affine images, so no loss of digits).

The score error M of the theorem is the L2 error along the sampler's iterates,
sup_k ||score(y_k) - s_hat(y_k)||_{L2}; for an affine perturbation it is known exactly
from the propagated laws and is returned as ``score_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from logz.theory._threads import single_threaded
from logz.theory.gaussian import GaussianData
from logz.theory.processes import ForwardProcess, check_horizon
from logz.sde.grids import uniform_grid
from logz.theory.sampler import check_steps, solve_pf_ode
from logz.theory.w2 import GaussianLaw

PRIORS = ("gaussian", "stationary", "exact")


class Perturbation:
    """delta(x, s) = x E(s)^T + c(s) added to the exact score. Subclasses set the matrices.

    ``matrices(s)`` takes s of shape () or (n,) and returns E: Tensor[..., d, d] or None and
    c: Tensor[..., d] (batched over s, so the laboratory builds every step's matrices at once).
    """

    M: float = 0.0

    def matrices(self, s) -> tuple[Optional[Tensor], Tensor]:
        raise NotImplementedError

    def __call__(self, x: Tensor, s) -> Tensor:
        E, c = self.matrices(s)
        return (c if E is None else x @ E.T + c).expand_as(x)


class BiasPerturbation(Perturbation):
    """Constant bias delta = M u, |u| = 1 (default u = (1, ..., 1)/sqrt(d)). Its L2 norm is M
    under any law, so it meets the score-error assumption with equality."""

    def __init__(self, M: float, dim: int, direction: Optional[Tensor] = None,
                 dtype: torch.dtype = torch.float64):
        if not M >= 0:
            raise ValueError(f"score error M must be >= 0, got {M}")
        u = torch.ones(dim, dtype=dtype) if direction is None else torch.as_tensor(direction, dtype=dtype)
        if u.shape != (dim,) or not float(u.norm()) > 0:
            raise ValueError(f"direction must be a nonzero Tensor[{dim}]")
        self.M, self.c = float(M), M * u / u.norm()

    def matrices(self, s):
        return None, self.c.expand(*torch.as_tensor(s).shape, -1)


class LipschitzPerturbation(Perturbation):
    """delta(x, s) = kappa(s) B (x - mu_s m), B symmetric with |B|_op = 1 (seeded random).

    kappa(s) = M / sqrt(tr(B Sigma_s B)) makes its L2 norm under the true marginal p_s exactly M;
    it is Lipschitz in x with constant kappa(s). Along the sampler's own iterates (which are
    close to, not equal to, p_s) its L2 norm is computed exactly by ``propagate``.
    """

    def __init__(self, M: float, data: GaussianData, process: ForwardProcess,
                 matrix: Optional[Tensor] = None, seed: int = 0):
        if not M >= 0:
            raise ValueError(f"score error M must be >= 0, got {M}")
        d = data.dim
        if matrix is None:
            gen = torch.Generator().manual_seed(seed)
            q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
            eig = (torch.linspace(-1.0, 1.0, d, dtype=torch.float64) if d > 1
                   else torch.ones(1, dtype=torch.float64))
            matrix = (q * eig) @ q.T
        B = torch.as_tensor(matrix, dtype=data.dtype)
        self.M, self.B, self.data, self.process = float(M), B / torch.linalg.matrix_norm(B, 2), data, process
        self._BU2 = (self.B @ data.evecs).pow(2).sum(0)   # |B u_i|^2: tr(B Sigma_s B) = sum_i v_i |B u_i|^2

    def matrices(self, s):
        mu = self.process.mu(s).to(self.data.dtype)[..., None]                 # [..., 1]
        v = self.data.marginal_vars(self.process, s)                           # [..., d]
        kappa = self.M / (v * self._BU2).sum(-1).sqrt()                        # [...]
        E = kappa[..., None, None] * self.B
        return E, -(E @ self.data.mean) * mu


def make_perturbation(kind: str, M: float, data: GaussianData, process: ForwardProcess,
                      seed: int = 0) -> Optional[Perturbation]:
    """``kind`` in {"bias", "lipschitz"}; None when M = 0."""
    if not M >= 0:
        raise ValueError(f"score error M must be >= 0, got {M}")
    if kind not in ("bias", "lipschitz"):
        raise ValueError(f"unknown perturbation {kind!r}; choose 'bias' or 'lipschitz'")
    if M == 0:
        return None
    if kind == "bias":
        return BiasPerturbation(M, data.dim, dtype=data.dtype)
    return LipschitzPerturbation(M, data, process, seed=seed)


class AffineScore:
    """s_hat(x, s) = x A(s)^T + b(s): exact Gaussian score plus an optional perturbation."""

    def __init__(self, data: GaussianData, process: ForwardProcess,
                 perturbation: Optional[Perturbation] = None):
        self.data, self.process, self.perturbation = data, process, perturbation
        self._cache: dict[float, tuple[Tensor, Tensor]] = {}

    def batch_matrices(self, s: Tensor) -> tuple[Tensor, Tensor]:
        """(A: Tensor[n, d, d], b: Tensor[n, d]) for forward times s: Tensor[n]."""
        U = self.data.evecs
        mu = self.process.mu(s).to(self.data.dtype)[:, None]
        prec = (U / self.data.marginal_vars(self.process, s)[:, None, :]) @ U.T     # [n, d, d]
        A, b = -prec, prec @ self.data.mean * mu
        if self.perturbation is not None:
            E, c = self.perturbation.matrices(s)
            A, b = (A if E is None else A + E), b + c
        return A, b

    def prepare(self, s: Tensor) -> None:
        """Build and memoize (A, b) at every forward time in s: Tensor[n] (one batched call)."""
        A, b = self.batch_matrices(s.double())
        for key, Ai, bi in zip(s.tolist(), A, b):
            self._cache[key] = (Ai, bi)

    def matrices(self, s) -> tuple[Tensor, Tensor]:
        """(A: Tensor[d, d], b: Tensor[d]) at one forward time (memoized)."""
        key = float(s)
        if key not in self._cache:
            A, b = self.batch_matrices(torch.as_tensor(s, dtype=torch.float64).reshape(1))
            self._cache[key] = (A[0], b[0])
        return self._cache[key]

    def __call__(self, x: Tensor, s) -> Tensor:
        A, b = self.matrices(s)
        return x @ A.T + b

    def linear(self, x: Tensor, s) -> Tensor:
        """The linear part x A^T: what acts on the columns of a covariance factor."""
        A, _ = self.matrices(s)
        return x @ A.T


def _query_times(T: float, K: int, method: str, dtype: torch.dtype) -> Tensor:
    """The forward times at which ``solve_pf_ode`` will ask for the score, computed with the
    same floating-point operations (so memo keys match): grid points for "exp", grid points
    plus half steps for the Runge-Kutta methods (stage offsets c in {0, 1/2, 1})."""
    if method == "exp":
        return (T - uniform_grid(T, K, dtype=torch.float64)).to(dtype)[:-1]
    grid = uniform_grid(T, K, dtype=dtype)
    t, h = grid[:-1], grid[1:] - grid[:-1]
    stages = torch.cat([t + c * h for c in (0.0, 0.5, 1.0)])
    return (T - stages.double()).to(dtype)


def prior_law(data: GaussianData, process: ForwardProcess, T: float, prior: str = "gaussian") -> GaussianLaw:
    """The sampler's initial law: "gaussian" N(0, sigma_T^2 I) (the paper's), "stationary"
    N(0, v I) (VP: v = 1), or "exact" p_T (no initialization error)."""
    d, dt = data.dim, data.dtype
    eye = torch.eye(d, dtype=dt)
    if prior == "gaussian":
        return GaussianLaw(torch.zeros(d, dtype=dt), float(process.sigma2(T)) ** 0.5 * eye)
    if prior == "stationary":
        if process.stationary_var is None:
            raise ValueError(f"prior='stationary' needs a process with a stationary law; {process} has "
                             f"none (use prior='gaussian')")
        return GaussianLaw(torch.zeros(d, dtype=dt), process.stationary_var ** 0.5 * eye)
    if prior == "exact":
        return data.marginal(process, T)
    raise ValueError(f"unknown prior {prior!r}; choose one of {list(PRIORS)}")


@dataclass
class Propagation:
    """Output of ``propagate``.

    Attributes:
        law: the sampler's output law (GaussianLaw).
        initial: the initial law.
        score_error: sup_k ||delta(y_k, s_k)||_{L2} over grid states y_k (0.0 without perturbation).
    """

    law: GaussianLaw
    initial: GaussianLaw
    score_error: float


@single_threaded
def propagate(data: GaussianData, process: ForwardProcess, T: float, K: int, method: str = "exp",
              perturbation: Optional[Perturbation] = None, prior: str = "gaussian",
              initial: Optional[GaussianLaw] = None) -> Propagation:
    """Exact law of the K-step PF-ODE sampler output (mean and factor, no sampling).

    Args:
        data: the Gaussian data law (its dtype sets the computation's dtype).
        method: "exp", "euler", "heun", "midpoint", "rk4".
        perturbation: score perturbation (None: exact score).
        prior: initial law, see ``prior_law`` (ignored if ``initial`` is given).
    """
    T, K = check_horizon(T), check_steps(K)
    init = prior_law(data, process, T, prior) if initial is None else initial
    score = AffineScore(data, process, perturbation)
    score.prepare(_query_times(T, K, method, data.dtype))
    keep = perturbation is not None
    means = solve_pf_ode(score, process, init.mean[None], T, K, method, keep_path=keep)
    rows = solve_pf_ode(score.linear, process, init.factor.T, T, K, method, keep_path=keep)
    if not keep:
        return Propagation(GaussianLaw(means[0], rows.T), init, 0.0)
    # E|delta(y_k)|^2 = |E m_k + c|^2 + |E X_k|_F^2 for y_k ~ N(m_k, X_k X_k^T), all k at once
    E, c = perturbation.matrices(T - uniform_grid(T, K, dtype=torch.float64)[:-1])
    m, rows_k = means[:-1, 0], rows[:-1]                         # [K, d], [K, d(rows), d]
    if E is None:
        sq = c.pow(2).sum(-1)
    else:
        sq = (((E @ m[..., None])[..., 0] + c).pow(2).sum(-1)
              + (rows_k @ E.transpose(-1, -2)).pow(2).sum((-1, -2)))
    return Propagation(GaussianLaw(means[-1, 0], rows[-1].T), init, float(sq.max().sqrt()))
