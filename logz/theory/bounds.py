"""W2 bound for the exponential-integrator PF-ODE sampler (Gao & Zhu 2024 technique).

Assumptions (names as in docs/theory.md):
  (A1) f, g^2 >= 0 and finite on [0, T], sigma_T^2 > 0 (``ForwardProcess.check``);
  (A2) p_0 is m0-strongly log-concave, m0 > 0;
  (A3) grad log p_0 is L0-Lipschitz;
  (A4) |grad log p_s(x) - grad log p_r(x)| <= L1 |s - r| (1 + |x|) (L1 a constant, as in
       the paper, or a local modulus s -> L1(s) with |d/ds grad log p_s(x)| <= L1(s)(1 + |x|));
  (A5) sup_k ||grad log p_{s_k}(y_k) - s_hat(y_k, s_k)||_{L2} <= M along the iterates y_k.

Then p_s is a(s)-strongly log-concave and L(s)-smooth with

    a(s) = 1 / (mu_s^2 / m0 + sigma_s^2),     L(s) = 1 / (mu_s^2 / L0 + sigma_s^2),

and, with e_0 = W2(p_T, prior), synchronous coupling gives per step k (forward times
s_lo = T - t_{k+1} < s_hi = T - t_k, phi_k, psi_k the integrator's coefficients)

    e_{k+1} <= rho_k e_k + psi_k M + D_k,
    rho_k = max(|phi_k - psi_k a(s_hi)|, |phi_k - psi_k L(s_hi)|),
    D_k = L1_k/2 int (mu_lo/mu_u) g^2(u) (s_hi - u)(1 + m2(u)) du + psi_k L(s_hi) int V(u) du,
    V(u)^2 = f^2 m2(u)^2 - f g^2 d + 1/4 g^4 d L(u)                     (u over [s_lo, s_hi])

with m2(u)^2 = mu_u^2 ||x_0||_{L2}^2 + d sigma_u^2 and L1_k the (max of the local) L1 on the
step. V bounds the L2 speed of the exact flow using E<y, grad log p(y)> = -d. Unrolled,
W2(law y_K, p_0) <= e_K = init + score + disc, each reported separately. docs/theory.md
derives every line and says which constants are the paper's and which are derived here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from logz.theory._threads import single_threaded
from logz.theory.processes import ForwardProcess, _f64, check_horizon, make_process, quadrature
from logz.theory.sampler import steps_from


def check_constants(dim: int, m0: float, L0: float, L1, M: float, x0_norm: float) -> None:
    """ValueError naming the broken assumption. L1 may be a float or a callable (not checked)."""
    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise ValueError(f"dimension d must be an integer >= 1, got {dim}")
    if callable(L1):
        L1 = 0.0
    for name, v in (("m0", m0), ("L0", L0), ("L1", L1), ("M", M), ("||x_0||_L2", x0_norm)):
        if not (isinstance(v, (int, float)) and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not m0 > 0:
        raise ValueError(f"data not strongly log-concave: m0 = {m0} (assumption A2 needs m0 > 0)")
    if not L0 >= m0:
        raise ValueError(f"score Lipschitz constant L0 = {L0} < m0 = {m0} (assumption A3 needs "
                         f"L0 >= m0)")
    if L1 < 0:
        raise ValueError(f"time-Lipschitz constant L1 must be >= 0 (assumption A4), got {L1}")
    if M < 0:
        raise ValueError(f"score error M must be >= 0 (assumption A5), got {M}")
    if x0_norm < 0:
        raise ValueError(f"||x_0||_L2 must be >= 0, got {x0_norm}")


def strong_convexity(process: ForwardProcess, s, m0: float) -> Tensor:
    """a(s) = 1 / (mu_s^2/m0 + sigma_s^2): p_s is a(s)-strongly log-concave (float64)."""
    return 1.0 / (process.mu(s) ** 2 / m0 + process.sigma2(s))


def smoothness(process: ForwardProcess, s, L0: float) -> Tensor:
    """L(s) = 1 / (mu_s^2/L0 + sigma_s^2): grad log p_s is L(s)-Lipschitz (float64)."""
    return 1.0 / (process.mu(s) ** 2 / L0 + process.sigma2(s))


def contraction_rate(process: ForwardProcess, T: float, t, m0: float) -> Tensor:
    """c(t) = 1/2 g(T-t)^2 a(T-t) - f(T-t): the PF-ODE contracts at rate c in sampler time t.

    Two solutions y, y' satisfy d/dt |y - y'| <= -c(t) |y - y'| (c < 0 means expansion).
    """
    s = check_horizon(T) - _f64(t)
    return 0.5 * process.g2(s) * strong_convexity(process, s, m0) - process.f(s)


def contraction_integral(process: ForwardProcess, T: float, m0: float) -> float:
    """int_0^T c(t) dt = 1/2 log(mu_T^2 + m0 sigma_T^2) (closed form, see docs/theory.md)."""
    return 0.5 * math.log(float(process.mu(T)) ** 2 + m0 * float(process.sigma2(T)))


@dataclass
class BoundTerms:
    """The bound W2(law of the K-step sampler output, p_0) <= total = init + disc + score.

    Attributes:
        init: contraction * init_error (the initialization term).
        disc: sum_k (prod_{j>k} rho_j) D_k (the discretization term, O(h)).
        score: M sum_k (prod_{j>k} rho_j) psi_k (the score-error term).
        init_error: e_0 = W2 bound between p_T and the prior.
        contraction: prod_k rho_k.
        rate_integral: int_0^T c(t) dt (continuous-time contraction; exp(-it) is prod rho as h -> 0).
        rho, psi, disc_steps: Tensor[K] per-step factors, score weights and D_k.
    """

    total: float
    init: float
    disc: float
    score: float
    init_error: float
    contraction: float
    rate_integral: float
    K: int
    h: float
    T: float
    dim: int
    rho: Tensor = field(repr=False)
    psi: Tensor = field(repr=False)
    disc_steps: Tensor = field(repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        for k in ("rho", "psi", "disc_steps"):
            out.pop(k)
        return out


def initialization_error(process: ForwardProcess, T: float, dim: int, x0_norm: float,
                         prior: str = "gaussian") -> float:
    """W2 bound between p_T and the prior by the coupling x_T = mu_T x_0 + sigma_T Z vs the prior's
    scaled Z: mu_T ||x_0||_L2 for N(0, sigma_T^2 I); + sqrt(d) |sigma_T - sqrt(v)| for N(0, v I)."""
    mu_T, sig_T = float(process.mu(T)), float(process.sigma2(T)) ** 0.5
    if prior == "gaussian":
        return mu_T * x0_norm
    if prior == "stationary":
        if process.stationary_var is None:
            raise ValueError(f"prior='stationary' needs a process with a stationary law; {process} "
                             f"has none")
        return mu_T * x0_norm + math.sqrt(dim) * abs(sig_T - process.stationary_var ** 0.5)
    if prior == "exact":
        return 0.0
    raise ValueError(f"unknown prior {prior!r}; choose 'gaussian', 'stationary' or 'exact'")


@single_threaded
def w2_bound(process: ForwardProcess, T: float, *, K: Optional[int] = None, h: Optional[float] = None,
             dim: int, m0: float, L0: float, L1: Union[float, Callable[[Tensor], Tensor]],
             M: float = 0.0, x0_norm: float,
             init_error: Optional[float] = None, prior: str = "gaussian") -> BoundTerms:
    """Upper bound on W2(law of the exponential-integrator output after K = T/h steps, p_0).

    Args:
        process: forward process (checked against assumption A1 on [0, T]).
        T: horizon; K (steps) or h (step size dividing T), exactly one.
        dim: d. m0, L0, L1, M: constants of assumptions A2-A5; L1 is a float (the paper's
            global constant) or a local modulus s -> L1(s) (Tensor -> Tensor, float64), e.g.
            ``GaussianData.time_lipschitz_profile``; its max over a step is taken at the
            quadrature nodes and the step's ends. x0_norm: ||x_0||_{L2}.
        init_error: W2(p_T, prior) if known; default ``initialization_error`` (the paper's
            mu_T ||x_0||_L2 for the prior N(0, sigma_T^2 I)).
        prior: "gaussian" (N(0, sigma_T^2 I)), "stationary" (VP: N(0, I)) or "exact" (p_T).
    Returns:
        BoundTerms with the three terms reported separately.
    """
    K, h = steps_from(T, K, h)
    T = float(T)
    check_constants(dim, m0, L0, L1, M, x0_norm)
    process.check(T)
    if init_error is None:
        init_error = initialization_error(process, T, dim, x0_norm, prior)
    elif not init_error >= 0:
        raise ValueError(f"init_error must be >= 0, got {init_error}")
    t = torch.linspace(0.0, T, K + 1, dtype=torch.float64)
    s_hi, s_lo = T - t[:-1], T - t[1:]
    phi, psi = process.phi(s_lo, s_hi), process.psi(s_lo, s_hi)
    a_k, L_k = strong_convexity(process, s_hi, m0), smoothness(process, s_hi, L0)
    rho = torch.maximum((phi - psi * a_k).abs(), (phi - psi * L_k).abs())

    # every process coefficient at the quadrature nodes, once: Tensor[K, panels, 8]
    panels = max(1, math.ceil(512 / K))   # enough nodes when a single step spans a fast-varying rate
    u, wq = quadrature(s_lo, s_hi, panels)
    log_mu_u, sig2_u, f_u, g2_u = process.log_mu(u), process.sigma2(u), process.f(u), process.g2(u)
    mu2_u = torch.exp(2 * log_mu_u)
    m2_sq = mu2_u * x0_norm ** 2 + dim * sig2_u         # E|y|^2 along the true flow
    L_u = 1.0 / (mu2_u / L0 + sig2_u)
    hi, log_mu_lo = s_hi[:, None, None], process.log_mu(s_lo)[:, None, None]
    # score moving in time along the true flow: (mu_lo/mu_u) g^2 (s_hi - u)(1 + m2)
    time_term = (torch.exp(log_mu_lo - log_mu_u) * g2_u * (hi - u) * (1 + m2_sq.sqrt()) * wq).sum((-1, -2))
    # ||dy/dt||_L2 of the true flow, using E<y, grad log p(y)> = -d
    speed_sq = f_u ** 2 * m2_sq - f_u * g2_u * dim + 0.25 * g2_u ** 2 * dim * L_u
    speed = (speed_sq.clamp_min(0).sqrt() * wq).sum((-1, -2))
    if callable(L1):
        L1_k = torch.maximum(L1(u).flatten(1).max(-1).values, torch.maximum(L1(s_lo), L1(s_hi)))
    else:
        L1_k = torch.full_like(s_lo, float(L1))
    D = 0.5 * L1_k * time_term + psi * L_k * speed
    # weights prod_{j>k} rho_j: reverse cumulative product
    tail = torch.cat([torch.flip(torch.cumprod(torch.flip(rho[1:], [0]), 0), [0]),
                      torch.ones(1, dtype=torch.float64)])
    contraction = float(torch.prod(rho))
    init = contraction * init_error
    disc = float((tail * D).sum())
    score = M * float((tail * psi).sum())
    return BoundTerms(total=init + disc + score, init=init, disc=disc, score=score,
                      init_error=float(init_error), contraction=contraction,
                      rate_integral=contraction_integral(process, T, m0), K=K, h=h, T=T, dim=int(dim),
                      rho=rho, psi=psi, disc_steps=D)


# --- iteration complexity -----------------------------------------------------------

@dataclass
class Complexity:
    """Smallest K (over the horizons tried) with bound <= eps, the horizon used, and the bound."""

    K: Optional[int]
    horizon: Optional[float]
    T: Optional[float]
    bound: Optional[BoundTerms]


def _min_steps(bound_at, eps: float, K_max: int, K0: int = 64, rtol: float = 0.01,
               skip_marginal: bool = False) -> Optional[int]:
    """Smallest K <= K_max (to a relative ``rtol``) with bound_at(K).total <= eps, or None.

    The discretization term is ~ C/K for large K while the init and score terms barely move, so
    K ~ K' disc(K') / (eps - init - score); two such predictions, then a bracket of ratio 1.1
    (2 when the prediction failed) and bisection until the bracket is within rtol (the K
    returned always meets eps). A horizon whose init + score terms exceed eps at K0 and at
    16 K0 without shrinking by 1% is given up (those terms converge as K grows, they do not
    vanish); with ``skip_marginal`` also one whose K-free terms, extrapolated to K = infinity,
    use more than 95% of eps (its K is far from the minimum over horizons).
    """
    factor = 1.1
    guess, b = K0, bound_at(K0)
    if b.init + b.score >= eps:        # the K-free terms alone exceed eps at K0: look further out
        far_K = min(16 * K0, K_max)
        far = bound_at(far_K)
        if far.init + far.score >= eps:
            if far.init + far.score > 0.99 * (b.init + b.score):
                return None            # they do not shrink with K: this horizon cannot reach eps
            limit = far.init + far.score - (b.init + b.score - far.init - far.score) / 15  # ~1/K
            if (skip_marginal and limit > 0.95 * eps) or bound_at(K_max).total > eps:
                return None
            guess, factor = K_max, 2.0
        else:
            guess, b = far_K, far
    if factor < 2:
        for _ in range(2):             # predict K from disc ~ C/K
            room = eps - b.init - b.score
            if room <= 0:
                factor = 2.0
                break
            guess = min(max(1, math.ceil(guess * b.disc / room)), K_max)
            b = bound_at(guess)
    hi = guess
    while bound_at(hi).total > eps:
        if hi >= K_max:
            return None
        hi = min(math.ceil(factor * hi) + 1, K_max)
    lo = math.floor(hi / factor)
    while lo >= 1 and bound_at(lo).total <= eps:
        hi, lo = lo, math.floor(lo / factor)
    if lo == 0:     # K = 1 meets eps
        return hi
    while hi - lo > max(1, rtol * hi):   # invariant: bound(lo) > eps >= bound(hi)
        mid = (lo + hi) // 2
        if bound_at(mid).total <= eps:
            hi = mid
        else:
            lo = mid
    return hi


def iteration_complexity(schedule: str, eps: float, *, dim: int, m0: float, L0: float, L1: float,
                         x0_norm: float, M: float = 0.0, horizons=None, K_max: int = 2 ** 20,
                         rtol: float = 0.01, **params) -> Complexity:
    """Smallest number of exponential-integrator steps K with ``w2_bound <= eps``.

    The free parameter besides K is the horizon: T for the VP-type families and sigma_max
    (at the family's default T; the uniform grid makes T itself irrelevant for VE) for
    ``ve`` and ``ve-power``. ``horizons`` lists the values tried (default: 5 values, ratio
    sqrt(2), centred on the one that makes the initialization term about eps/2). K is
    minimal to a relative ``rtol`` (rtol = 0: the exact integer). Returns K = None when no
    horizon reaches eps with K <= K_max (e.g. the score-error term alone exceeds eps).
    """
    if not eps > 0:
        raise ValueError(f"accuracy eps must be > 0, got {eps}")
    check_constants(dim, m0, L0, L1, M, x0_norm)
    ve = schedule.startswith("ve")
    if horizons is None:
        if ve:   # init term ~ x0_norm / sqrt(m0 sigma_max^2): aim it at eps/2
            base = 2 * x0_norm / (math.sqrt(m0) * eps)
        else:    # init term ~ mu_T x0_norm / sqrt(m0): T where mu_T = eps sqrt(m0) / (2 x0_norm)
            proc = make_process(schedule, **params)
            target = -math.log(max(min(eps * math.sqrt(m0) / (2 * max(x0_norm, 1e-12)), 0.5), 1e-300))
            T0 = proc.horizon
            B0 = -float(proc.log_mu(T0))
            base = T0 * max(target / max(B0, 1e-12), 0.05)
        horizons = [base * 2 ** (k / 2) for k in range(-2, 3)]
    best = Complexity(None, None, None, None)
    for skip_marginal in (True, False):   # marginal horizons (K-free terms ~ eps) only as a fallback
        for hz in horizons:
            if ve:
                process = make_process(schedule, **{**params, "sigma_max": hz})
            else:
                process = make_process(schedule, T=hz, **params)
            T = process.horizon

            def bound_at(K, process=process, T=T):
                return w2_bound(process, T, K=K, dim=dim, m0=m0, L0=L0, L1=L1, M=M, x0_norm=x0_norm)

            K = _min_steps(bound_at, eps, K_max, rtol=rtol, skip_marginal=skip_marginal)
            if K is not None and (best.K is None or K < best.K):
                best = Complexity(K, float(hz), T, bound_at(K))
        if best.K is not None:
            break
    return best


#: Leading-order iteration complexity of ``w2_bound`` with the paper's global L1 (derived in
#: docs/theory.md, "Iteration complexity"), for ||x_0||_L2 ~ sqrt(d), fixed m0, L0, L1 and M = 0.
COMPLEXITY_RATES: dict[str, str] = {
    "vp": "K = O(sqrt(d)/eps * log^2(sqrt(d)/eps))",
    "vp-linear": "K = O(sqrt(d)/eps * log^2(sqrt(d)/eps))",
    "subvp": "K = O(sqrt(d)/eps * log^2(sqrt(d)/eps))",
    "vp-power": "K = O(sqrt(d)/eps * log^((rho + 2)/(rho + 1))(sqrt(d)/eps))",
    "vp-cosine": "K = O(sqrt(d)/eps * log^2(sqrt(d)/eps)) (constant grows with the cutoff 1/(1 - end))",
    "ve": "K = O(d^(3/2)/eps^3) (global L1; O(sqrt(d)/eps * log^2(sqrt(d)/eps)) with a local L1 modulus)",
    "ve-power": "K = O(d^(3/2)/eps^3) (global L1; O(d/eps^2) with a local L1 modulus, uniform grid)",
}
