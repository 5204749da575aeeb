"""Exact Gaussian laboratory for flow models: every solver x interpolant, W2 against NFE.

Data N(m, Sigma), Sigma = U diag(lam) U^T, on a path x_t = alpha x1 + sigma x0
(``logz.finetune.interpolants``). The marginals are p_t = N(alpha m, C_t),
C_t = U diag(c_i(t)) U^T with c_i = alpha^2 lam_i + sigma^2, and the flow-matching velocity
is affine in x:

    v(x, t) = alpha' m + U diag(g_i(t)) U^T (x - alpha m),   g_i = (alpha alpha' lam_i + sigma sigma') / c_i
            = 1/2 d/dt log c_i(t).

So the exact flow map from s to t is y -> alpha_t m + U diag(sqrt(c_i(t) / c_i(s))) U^T (y - alpha_s m)
(per eigen-coordinate a scalar linear ODE), the exact average velocity of MeanFlow is
u(x, s, t) = (flow(x) - x) / (t - s), and every step of every solver in ``logz.sde.ode``
(and of a bespoke solver, and of Euler–Maruyama for the SDE with w(t)) is an affine map. A
Gaussian law N(mean, X X^T) is propagated exactly by running the *same* solver on the mean with
the full field and on the columns of X with the linear part alone (as ``logz.theory.lab`` does
for the PF-ODE of a diffusion): the output law, and so W2 to the data, has no sampling error.

``solver_study`` tabulates W2 against NFE for solvers x interpolants, with fitted orders.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from logz.finetune.interpolants import Interpolant, make_diffusion, make_interpolant
from logz.sde.grids import uniform_grid
from logz.sde.ode import nfe, odeint
from logz.theory._threads import single_threaded
from logz.theory.gaussian import GaussianData
from logz.theory.w2 import GaussianLaw, gaussian_w2

__all__ = ["SOLVERS", "GaussianFlow", "propagate_law", "ode_solve", "propagate_sde", "SolverRow",
           "SolverStudy", "plot_w2_vs_nfe", "fit_order", "solver_study", "DiffusionRow", "diffusion_study",
           "MixtureSolverRow", "mixture_solver_study"]

Field = Callable[[Tensor, Tensor], Tensor]
Solve = Callable[[Field, Tensor], Tensor]
"""solve(field, x0) -> x1: a deterministic, batch-wise solver run (the thing propagated)."""

SOLVERS = ("euler", "heun", "midpoint", "rf2", "heun_pc", "rk4")


class GaussianFlow:
    """Closed-form velocity, score, flow map and average velocity of N(m, Sigma) on a path.

    Callable as the velocity ``v(x, t)`` (x: Tensor[B, d], t: 0-dim tensor, differentiable in t).
    """

    def __init__(self, data: GaussianData, interpolant: Union[str, Interpolant] = "linear"):
        self.data, self.path = data, make_interpolant(interpolant)

    @property
    def dim(self) -> int:
        return self.data.dim

    def _t(self, t) -> Tensor:
        return torch.as_tensor(t, dtype=self.data.dtype)

    def variances(self, t) -> Tensor:
        """c_i(t) = alpha^2 lam_i + sigma^2: Tensor[d] (eigenvalues of Cov p_t)."""
        t = self._t(t)
        return self.path.alpha(t) ** 2 * self.data.evals + self.path.sigma(t) ** 2

    def gains(self, t) -> Tensor:
        """g_i(t) = (alpha alpha' lam_i + sigma sigma') / c_i(t): Tensor[d]."""
        t = self._t(t)
        a, da = self.path.alpha(t), self.path.d_alpha(t)
        return (a * da * self.data.evals + self.path.sigma_dsigma(t)) / self.variances(t)

    def matrix(self, t) -> Tensor:
        """A(t) = U diag(g(t)) U^T, so v(x, t) = x A^T + b(t)."""
        U = self.data.evecs
        return (U * self.gains(t)) @ U.T

    def offset(self, t) -> Tensor:
        """b(t) = alpha' m - A(t) alpha m."""
        t = self._t(t)
        m = self.data.mean
        return self.path.d_alpha(t) * m - self.matrix(t) @ (self.path.alpha(t) * m)

    def __call__(self, x: Tensor, t) -> Tensor:
        return x @ self.matrix(t).T.to(x.dtype) + self.offset(t).to(x.dtype)

    velocity = __call__

    def linear(self, x: Tensor, t) -> Tensor:
        """The linear part x A(t)^T (what acts on a covariance factor)."""
        return x @ self.matrix(t).T.to(x.dtype)

    def score(self, x: Tensor, t) -> Tensor:
        """grad log p_t(x) = -C_t^{-1} (x - alpha m)."""
        U = self.data.evecs
        prec = (U / self.variances(t)) @ U.T
        return -(x - self.path.alpha(self._t(t)) * self.data.mean) @ prec.to(x.dtype)

    def score_linear(self, x: Tensor, t) -> Tensor:
        U = self.data.evecs
        return -x @ ((U / self.variances(t)) @ U.T).to(x.dtype)

    def log_prob(self, x: Tensor, t) -> Tensor:
        """log p_t(x), Tensor[B] (assembled covariance; differentiable in x and t)."""
        t = self._t(t)
        cov = self.path.alpha(t) ** 2 * self.data.cov + self.path.sigma(t) ** 2 * torch.eye(
            self.dim, dtype=self.data.dtype)
        return torch.distributions.MultivariateNormal(self.path.alpha(t) * self.data.mean, cov).log_prob(x)

    def flow_map(self, s, t) -> tuple[Tensor, Tensor]:
        """Exact flow from time s to t: y -> P y + q. Returns (P [d, d], q [d])."""
        s, t = self._t(s), self._t(t)
        U, m = self.data.evecs, self.data.mean
        P = (U * (self.variances(t) / self.variances(s)).sqrt()) @ U.T
        return P, self.path.alpha(t) * m - P @ (self.path.alpha(s) * m)

    def average_velocity(self, x: Tensor, s, t) -> Tensor:
        """MeanFlow's u(x, s, t) = (flow_{s->t}(x) - x) / (t - s); the velocity when s = t.

        s, t: 0-dim tensors or Tensor[B] (one pair per row of x)."""
        s, t = self._t(s), self._t(t)
        if s.ndim == 0 and t.ndim == 0:
            if float(s) == float(t):
                return self(x, t)
            P, q = self.flow_map(s, t)
            return (x @ P.T + q - x) / (t - s)
        s, t = torch.broadcast_to(s, x.shape[:1]), torch.broadcast_to(t, x.shape[:1])
        return torch.stack([self.average_velocity(xi[None], si, ti)[0] for xi, si, ti in zip(x, s, t)])

    def prior(self) -> GaussianLaw:
        """N(0, I), the sampler's initial law."""
        d = self.dim
        return GaussianLaw(torch.zeros(d, dtype=self.data.dtype), torch.eye(d, dtype=self.data.dtype))

    def exact_output(self, t_min: float = 0.0, t_max: float = 1.0) -> GaussianLaw:
        """The law of the exact flow of the N(0, I) prior from t_min to t_max (the VP path's
        prior is not p_0, so this differs from the data law by the initialisation error)."""
        P, q = self.flow_map(t_min, t_max)
        return self.prior().affine(P, q)


def propagate_law(solve: Solve, flow: GaussianFlow, law: GaussianLaw) -> GaussianLaw:
    """Exact output law of ``solve`` applied to x ~ law with the affine field ``flow``."""
    mean = solve(flow, law.mean[None])[0]
    rows = solve(flow.linear, law.factor.T.contiguous())
    return GaussianLaw(mean, rows.T)


def ode_solve(method: str, num_steps: int, t_min: float = 0.0, t_max: float = 1.0) -> Solve:
    """solve(field, x0) with ``odeint(method)`` on a uniform grid of [t_min, t_max]."""
    def solve(func: Field, x0: Tensor) -> Tensor:
        times = t_min + (t_max - t_min) * uniform_grid(1.0, num_steps, dtype=x0.dtype)
        return odeint(func, x0, times, method)
    return solve


@single_threaded
def propagate_sde(flow: GaussianFlow, diffusion, num_steps: int, *, norm: float = 1.0,
                  t_min: Optional[float] = None, t_max: Optional[float] = None,
                  law: Optional[GaussianLaw] = None) -> tuple[Tensor, Tensor]:
    """Exact (mean, cov) of ``InterpolantSDE.sample`` with the exact score on this flow.

    Each Euler–Maruyama step x -> (I + h (A + w S)) x + h (b + w c) + sqrt(2 w h) xi is affine
    plus independent Gaussian noise, so cov -> M cov M^T + 2 w h I (none on the last step).
    """
    path = flow.path
    lo = path.t_min if t_min is None else float(t_min)
    hi = path.t_max if t_max is None else float(t_max)
    w_of = make_diffusion(diffusion, path, norm)
    law = flow.prior() if law is None else law
    mean, cov = law.mean, law.cov
    dt = flow.data.dtype
    times = torch.linspace(lo, hi, int(num_steps) + 1, dtype=dt)
    eye = torch.eye(flow.dim, dtype=dt)
    for k in range(int(num_steps)):
        t, h = times[k], times[k + 1] - times[k]
        w = w_of(t).to(dt)
        S = -(flow.data.evecs / flow.variances(t)) @ flow.data.evecs.T
        c = -S @ (path.alpha(t) * flow.data.mean)
        M = eye + h * (flow.matrix(t) + w * S)
        mean = M @ mean + h * (flow.offset(t) + w * c)
        cov = M @ cov @ M.T
        if k + 1 < int(num_steps):
            cov = cov + 2 * w * h * eye
    return mean, 0.5 * (cov + cov.T)


# --- the W2-vs-NFE study ---------------------------------------------------------
@dataclass
class SolverRow:
    """One (interpolant, solver, steps) cell. w2: to the data law; w2_disc: to the exact flow's
    output from the same prior (the discretisation error alone); rmse: sqrt E|solver(x0) -
    flow(x0)|^2 for the same x0 (the pathwise error, an upper bound on w2_disc); init: W2 of the
    exact flow's output to the data (the path's initialisation error, nonzero for VP)."""

    interpolant: str
    solver: str
    steps: int
    nfe: int
    w2: float
    w2_disc: float
    rmse: float
    init: float


@dataclass
class SolverStudy:
    """Rows of ``solver_study``; ``orders[(interpolant, solver)]``: fitted slope of log rmse
    (pathwise error) against log steps over the finest half of the step counts."""

    dim: int
    rows: list[SolverRow] = field(default_factory=list)
    orders: dict = field(default_factory=dict)

    def best(self, interpolant: str, budget: int) -> Optional[SolverRow]:
        """The smallest-W2 row of this interpolant with nfe <= budget."""
        rows = [r for r in self.rows if r.interpolant == interpolant and r.nfe <= budget]
        return min(rows, key=lambda r: r.w2) if rows else None

    def table(self) -> str:
        lines = [f"W2 to the data after the ODE solver, exact Gaussian laboratory (d = {self.dim}, "
                 f"prior N(0, I), uniform grid)",
                 f"{'interpolant':<11} {'solver':<9} {'steps':>5} {'NFE':>4} {'W2(data)':>11} "
                 f"{'W2(exact flow)':>14} {'RMSE(path)':>11}"]
        for r in self.rows:
            lines.append(f"{r.interpolant:<11} {r.solver:<9} {r.steps:>5} {r.nfe:>4} {r.w2:>11.3e} "
                         f"{r.w2_disc:>14.3e} {r.rmse:>11.3e}")
        lines.append("fitted orders (slope of the pathwise RMSE vs steps, finest half):")
        for (ip, solver), order in self.orders.items():
            lines.append(f"  {ip:<8} {solver:<9} {order:5.2f}")
        inits = {r.interpolant: r.init for r in self.rows}
        lines.append("initialisation error W2(exact flow of N(0, I), data): "
                     + ", ".join(f"{k} {v:.2e}" for k, v in inits.items()))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"dim": self.dim, "rows": [asdict(r) for r in self.rows],
                "orders": {f"{k[0]}/{k[1]}": v for k, v in self.orders.items()}}

    def plot(self, out_dir, fmt: str = "png") -> list[str]:
        """w2_vs_nfe.png: W2(data) against NFE, one panel per interpolant."""
        fig = plot_w2_vs_nfe(self)
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(str(out_dir), f"w2_vs_nfe.{fmt}")
        fig.savefig(path, dpi=110)
        return [path]


def plot_w2_vs_nfe(study: SolverStudy, axes=None):
    """W2 to the data against NFE (log-log), one panel per interpolant, one line per solver."""
    interps = list(dict.fromkeys(r.interpolant for r in study.rows))
    if axes is None:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.2 * len(interps), 3.8), layout="constrained")
        axes = fig.subplots(1, len(interps), squeeze=False)[0]
    else:
        fig = axes[0].figure
    for ax, ip in zip(axes, interps):
        for solver in dict.fromkeys(r.solver for r in study.rows):
            rows = [r for r in study.rows if r.interpolant == ip and r.solver == solver]
            if rows:
                ax.loglog([r.nfe for r in rows], [r.w2 for r in rows], "o-", ms=3, label=solver)
        init = next(r.init for r in study.rows if r.interpolant == ip)
        if init > 0:
            ax.axhline(init, color="k", ls=":", lw=0.8, label="init error")
        ax.set_title(f"{ip} path, d={study.dim}")
        ax.set_xlabel("NFE")
        ax.set_ylabel("W2 to data")
        ax.legend(fontsize=7)
    return fig


def fit_order(steps: Sequence[int], errors: Sequence[float]) -> float:
    """-slope of log error vs log steps (NaN with fewer than 2 positive errors)."""
    pts = [(s, e) for s, e in zip(steps, errors) if e > 0]
    if len(pts) < 2:
        return float("nan")
    s, e = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(-np.polyfit(s, e, 1)[0])


@single_threaded
def solver_study(data: Optional[GaussianData] = None, *, interpolants: Sequence[str] = ("linear", "gvp", "vp"),
                 solvers: Sequence[str] = SOLVERS, steps: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
                 dim: int = 8, eig_range: tuple[float, float] = (0.05, 1.0), seed: int = 0,
                 bespoke_steps: Sequence[int] = (), bespoke_iterations: int = 300) -> SolverStudy:
    """W2 to the data of each solver x interpolant x step count, exact (no sampling).

    ``bespoke_steps``: also train a ``BespokeSolver`` (RK2 base, 2 n NFE) with n steps per
    interpolant on the exact velocity against the exact flow map (rows with solver "bespoke").

    ``data``: a GaussianData (default ``GaussianData.random(dim, eig_range, seed=seed)``).
    Orders are fitted to the pathwise RMSE (the solver's order); W2 between laws can converge
    faster than the pathwise error (part of the error moves mass within the law).
    """
    if data is None:
        data = GaussianData.random(dim, eig_range=eig_range, seed=seed)
    for s in solvers:
        nfe(s, 1)   # ValueError on an unknown solver
    if not steps or any(int(k) != k or k < 1 for k in steps):
        raise ValueError(f"steps must be positive integers, got {list(steps)}")
    study = SolverStudy(dim=data.dim)
    for ip in interpolants:
        flow = GaussianFlow(data, ip)
        exact = flow.exact_output(0.0, 1.0)
        init = float(exact.w2(data.law))
        for solver in solvers:
            disc = []
            for k in steps:
                out = propagate_law(ode_solve(solver, int(k)), flow, flow.prior())
                # prior factor I: the factors are the linear parts of the two maps
                rmse = ((out.factor - exact.factor).pow(2).sum() + (out.mean - exact.mean).pow(2).sum()).sqrt()
                row = SolverRow(ip, solver, int(k), nfe(solver, int(k)), float(out.w2(data.law)),
                                float(out.w2(exact)), float(rmse), init)
                study.rows.append(row)
                disc.append(row.rmse)
            half = max(2, len(steps) // 2)
            study.orders[(ip, solver)] = fit_order(list(steps)[-half:], disc[-half:])
        for n in bespoke_steps:
            out = _bespoke_law(flow, int(n), int(bespoke_iterations), seed)
            rmse = ((out.factor - exact.factor).pow(2).sum() + (out.mean - exact.mean).pow(2).sum()).sqrt()
            study.rows.append(SolverRow(ip, "bespoke", int(n), 2 * int(n), float(out.w2(data.law)),
                                        float(out.w2(exact)), float(rmse), init))
    return study


def _bespoke_law(flow: GaussianFlow, n: int, iterations: int, seed: int) -> GaussianLaw:
    """Output law of a bespoke RK2 solver with n steps trained on ``flow`` (exact reference)."""
    from logz.finetune.bespoke import BespokeSolver

    P, q = flow.flow_map(0.0, 1.0)
    solver = BespokeSolver(n)
    solver.fit(flow, flow.dim, iterations=iterations, reference=lambda x: x @ P.T + q,
               dtype=flow.data.dtype, seed=seed)
    with torch.no_grad():
        return propagate_law(solver.solve, flow, flow.prior())


@dataclass
class DiffusionRow:
    """W2 to the data of the Euler–Maruyama sampler with diffusion w(t) (exact law)."""

    interpolant: str
    diffusion: str
    norm: float
    steps: int
    w2: float


@single_threaded
def diffusion_study(data: Optional[GaussianData] = None, *, interpolants: Sequence[str] = ("linear", "gvp", "vp"),
                    diffusions: Sequence[str] = ("ode", "sigma", "linear", "decreasing",
                                                 "increasing-decreasing"),
                    norms: Sequence[float] = (1.0,), steps: Sequence[int] = (4, 8, 16, 32, 64),
                    dim: int = 8, eig_range: tuple[float, float] = (0.05, 1.0), seed: int = 0,
                    t_min: float = 0.0) -> list[DiffusionRow]:
    """SiT's finding made exact: the same (exact) model sampled with different w(t) after
    training, W2 of the Euler–Maruyama output law to the data (NFE = steps)."""
    if data is None:
        data = GaussianData.random(dim, eig_range=eig_range, seed=seed)
    rows = []
    for ip in interpolants:
        flow = GaussianFlow(data, ip)
        target = data.law
        for w in diffusions:
            for norm in norms:
                for k in steps:
                    mean, cov = propagate_sde(flow, w, int(k), norm=norm, t_min=t_min)
                    rows.append(DiffusionRow(ip, w, float(norm), int(k),
                                             float(gaussian_w2(mean, cov, target.mean, target.cov))))
    return rows


# --- beyond Gaussians: a mixture, W2 by exact OT on samples ------------------------
@dataclass
class MixtureSolverRow:
    """W2 between the solver's samples and exact data samples (exact OT, n each), mean and
    standard error over ``repeats`` seeds; ``floor``: the same estimator between two exact sample
    sets (its bias at this n: differences below it are not resolved)."""

    interpolant: str
    solver: str
    steps: int
    nfe: int
    w2: float
    w2_se: float
    floor: float
    floor_se: float


@single_threaded
def mixture_solver_study(velocity=None, *, interpolants: Sequence[str] = ("linear", "gvp", "vp"),
                         solvers: Sequence[str] = SOLVERS, steps: Sequence[int] = (2, 4, 8),
                         n: int = 1000, repeats: int = 5, seed: int = 0) -> list[MixtureSolverRow]:
    """W2 to a Gaussian mixture of each solver x interpolant with the exact mixture velocity.

    ``velocity``: a ``GaussianMixtureVelocity`` (its interpolant is replaced per row); default a
    2-D three-mode mixture. W2 by exact OT (POT) between n solver outputs and n exact samples.
    """
    from logz.finetune.closed_form import GaussianMixtureVelocity
    from logz.theory.w2 import empirical_w2

    if velocity is None:
        velocity = GaussianMixtureVelocity([0.3, 0.3, 0.4], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]],
                                           [[0.1, 0.3], [0.3, 0.1], [0.2, 0.2]])
    if int(repeats) < 2 or int(n) < 2:
        raise ValueError(f"need repeats >= 2 and n >= 2 for an error bar, got {repeats}, {n}")
    w, m, v = velocity.weights, velocity.means, velocity.variances
    floors = []
    for r in range(int(repeats)):
        g = torch.Generator().manual_seed(10_000 + seed + r)
        floors.append(empirical_w2(velocity.sample(n, g, torch.float64), velocity.sample(n, g, torch.float64)))
    floor, floor_se = float(np.mean(floors)), float(np.std(floors, ddof=1) / math.sqrt(len(floors)))
    rows = []
    for ip in interpolants:
        field_ = GaussianMixtureVelocity(w, m, v, interpolant=ip).double()
        for solver in solvers:
            for k in steps:
                vals = []
                for r in range(int(repeats)):
                    g = torch.Generator().manual_seed(seed + r)
                    x0 = torch.randn(int(n), field_.dim, generator=g, dtype=torch.float64)
                    with torch.no_grad():
                        x1 = ode_solve(solver, int(k))(field_, x0)
                    vals.append(empirical_w2(x1, field_.sample(n, g, torch.float64)))
                rows.append(MixtureSolverRow(ip, solver, int(k), nfe(solver, int(k)), float(np.mean(vals)),
                                             float(np.std(vals, ddof=1) / math.sqrt(len(vals))), floor, floor_se))
    return rows
