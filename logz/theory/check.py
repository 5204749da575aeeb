"""Check the W2 bound and the solver orders against exact measurements on Gaussian data.

For each (d, M, K): the sampler's output law is propagated exactly (``lab.propagate``), and

    w2        = W2(output, p_0)                               (what the bound bounds),
    w2_init   = W2(exact PF-ODE flow of the prior, p_0)       (initialization error, K-free),
    w2_disc   = W2(exact-score output, exact flow of prior)   (discretization error; same
                                                               initial law, so only h acts),
    w2_score  = W2(perturbed output, exact-score output)      (effect of the score error),

next to the bound's terms (exponential integrator only; the theorem is about it). The
log-log slope of w2_disc against K measures the order (1 for "exp" and "euler", 2 for
"heun"/"midpoint", 4 for "rk4").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from logz.theory._threads import single_threaded
from logz.theory.bounds import w2_bound
from logz.theory.gaussian import GaussianData
from logz.theory.lab import PRIORS, make_perturbation, prior_law, propagate
from logz.theory.processes import ForwardProcess, check_horizon, make_process
from logz.theory.sampler import ORDERS, check_steps


@dataclass
class CheckRow:
    """One (d, M, K) measurement. Bound fields are None for methods other than "exp"."""

    dim: int
    M: float
    K: int
    h: float
    w2: float
    w2_init: float
    w2_disc: float
    w2_score: float
    score_error: float
    bound: Optional[float] = None
    bound_init: Optional[float] = None
    bound_disc: Optional[float] = None
    bound_score: Optional[float] = None
    bound_paper: Optional[float] = None

    @property
    def ratio(self) -> Optional[float]:
        return None if self.bound is None else self.w2 / self.bound


@dataclass
class CheckResult:
    """Rows of ``check_pf_ode`` plus fitted slopes.

    Attributes:
        slopes: {(dim, M): fitted log-log slope of w2_disc vs K} (theory: -order).
        bound_slopes: {(dim, M): slope of the bound's discretization term vs K} (theory: -1).
    """

    schedule: str
    method: str
    T: float
    prior: str
    perturbation: str
    order: int
    rows: list[CheckRow]
    slopes: dict = field(default_factory=dict)
    bound_slopes: dict = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """Measured W2 <= bound on every row that has a bound."""
        return all(r.bound is None or r.w2 <= r.bound for r in self.rows)

    def to_dict(self) -> dict:
        """JSON-ready (NaN slopes become None)."""
        return _finite({"schedule": self.schedule, "method": self.method, "T": self.T, "prior": self.prior,
                "perturbation": self.perturbation, "order": self.order, "holds": self.holds,
                "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows],
                "slopes": [{"dim": d, "M": m, "slope": s} for (d, m), s in self.slopes.items()],
                "bound_slopes": [{"dim": d, "M": m, "slope": s} for (d, m), s in self.bound_slopes.items()]})

    def table(self) -> str:
        """A plain-text table (one line per row) with the slopes underneath."""
        def num(v):
            return "       -" if v is None else f"{v:8.2e}"

        head = (f"PF-ODE check: schedule={self.schedule} method={self.method} T={self.T:g} "
                f"prior={self.prior} perturbation={self.perturbation}\n"
                f"{'d':>4} {'M':>6} {'K':>6} {'h':>9} {'W2':>8} {'bound':>8} {'ratio':>6} | "
                f"{'init':>8} {'b.init':>8} | {'disc':>8} {'b.disc':>8} | {'score':>8} {'b.score':>8}"
                f" | {'paper':>8}")
        lines = [head, "-" * len(head.splitlines()[-1])]
        for r in self.rows:
            ratio = "     -" if r.ratio is None else f"{r.ratio:6.3f}"
            lines.append(f"{r.dim:>4} {r.M:>6.3g} {r.K:>6} {r.h:>9.3g} {r.w2:8.2e} {num(r.bound)} {ratio} | "
                         f"{r.w2_init:8.2e} {num(r.bound_init)} | {r.w2_disc:8.2e} {num(r.bound_disc)} | "
                         f"{r.w2_score:8.2e} {num(r.bound_score)} | {num(r.bound_paper)}")
        for (d, m), s in self.slopes.items():
            b = self.bound_slopes.get((d, m))
            extra = "" if b is None else f"; bound's disc term slope {b:+.3f} (theory -1)"
            lines.append(f"d={d} M={m:g}: measured discretization slope {s:+.3f} "
                         f"(theory {-self.order}){extra}")
        lines.append("measured W2 <= bound on every row: " + ("yes" if self.holds else "NO")
                     + ("" if self.method == "exp" else " (no bound: the theorem is for method 'exp')"))
        return "\n".join(lines)

    def plot(self, out_dir) -> list[str]:
        """Write the PNG plots (``plots.save_check_plots``); returns their paths."""
        from logz.theory.plots import save_check_plots

        return save_check_plots(self, out_dir)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def fit_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than two positive points)."""
    pts = [(a, b) for a, b in zip(x, y) if a > 0 and b > 0 and math.isfinite(b)]
    if len(pts) < 2:
        return float("nan")
    lx, ly = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lx, ly, 1)[0])


@single_threaded
def check_pf_ode(schedule: Union[str, ForwardProcess] = "vp", dim: int = 10, T: Optional[float] = None,
                 steps: Sequence[int] = (8, 16, 32, 64, 128, 256), method: str = "exp",
                 score_error: float = 0.0, perturbation: str = "bias",
                 dims: Optional[Sequence[int]] = None, score_errors: Optional[Sequence[float]] = None,
                 prior: str = "gaussian",
                 data: Union[GaussianData, Callable[[int], GaussianData], None] = None, l1: str = "local",
                 seed: int = 0, dtype: torch.dtype = torch.float64, **schedule_params) -> CheckResult:
    """Measured W2 vs the bound over step counts K (and dimensions d, score errors M).

    Args:
        schedule: a registry name (``process_names()``) or a ForwardProcess.
        dim / dims: data dimension(s); the data is ``GaussianData.random(d, seed=seed)`` unless
            ``data`` is given: a GaussianData (then ``dims`` must be None) or a function
            d -> GaussianData (e.g. to keep the per-coordinate law fixed across d).
        T: horizon (default: the family's).
        steps: the K values. method: "exp", "euler", "heun", "midpoint" or "rk4".
        score_error / score_errors: M value(s); ``perturbation`` "bias" or "lipschitz".
        prior: "gaussian" (N(0, sigma_T^2 I)), "stationary" or "exact".
        l1: "local" (time-Lipschitz modulus per step; tighter) or "global" (the paper's
            constant) for the reported ``bound``; ``bound_paper`` always uses the global one.
    """
    if method not in ORDERS:
        raise ValueError(f"unknown PF-ODE method {method!r}; choose one of {list(ORDERS)}")
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r}; choose one of {list(PRIORS)}")
    if l1 not in ("local", "global"):
        raise ValueError(f"l1 must be 'local' or 'global', got {l1!r}")
    if isinstance(schedule, ForwardProcess):
        process = schedule
        T = check_horizon(T if T is not None else process.horizon)
    else:
        process = make_process(schedule, T, **schedule_params)
        T = process.horizon
    process.check(T)
    steps = sorted({check_steps(K) for K in steps})
    if not steps:
        raise ValueError("steps must list at least one K >= 1")
    if isinstance(data, GaussianData):
        if dims is not None:
            raise ValueError("give either a GaussianData or dims, not both")
        datas = [data]
    else:
        make = data if data is not None else (lambda d: GaussianData.random(d, seed=seed, dtype=dtype))
        datas = [make(d) for d in (dims if dims is not None else [dim])]
    Ms = list(score_errors) if score_errors is not None else [score_error]
    rows: list[CheckRow] = []
    result = CheckResult(getattr(process, "name", str(process)), method, T, prior, perturbation,
                         ORDERS[method], rows)
    for dat in datas:
        init = prior_law(dat, process, T, prior)
        reference = dat.flow(init, process, T)          # exact PF-ODE flow of the same initial law
        w2_init = float(reference.w2(dat.law))
        L1_global = dat.time_lipschitz(process, T)
        L1 = dat.time_lipschitz_profile(process) if l1 == "local" else L1_global
        for M in Ms:
            pert = make_perturbation(perturbation, M, dat, process, seed=seed)
            group = []
            for K in steps:
                exact = propagate(dat, process, T, K, method, None, initial=init)
                out = exact if pert is None else propagate(dat, process, T, K, method, pert, initial=init)
                row = CheckRow(dim=dat.dim, M=float(M), K=K, h=T / K, w2=float(out.law.w2(dat.law)),
                               w2_init=w2_init, w2_disc=float(exact.law.w2(reference)),
                               w2_score=0.0 if pert is None else float(out.law.w2(exact.law)),
                               score_error=max(float(M), out.score_error))
                if method == "exp":
                    consts = dict(K=K, dim=dat.dim, m0=dat.m0, L0=dat.L0, M=row.score_error,
                                  x0_norm=dat.x0_norm, prior=prior)
                    b = w2_bound(process, T, L1=L1, **consts)
                    row.bound, row.bound_init = b.total, b.init
                    row.bound_disc, row.bound_score = b.disc, b.score
                    row.bound_paper = w2_bound(process, T, L1=L1_global, **consts).total
                group.append(row)
            rows.extend(group)
            key = (dat.dim, float(M))
            result.slopes[key] = fit_slope([r.K for r in group], [r.w2_disc for r in group])
            if method == "exp":
                result.bound_slopes[key] = fit_slope([r.K for r in group], [r.bound_disc for r in group])
    return result
