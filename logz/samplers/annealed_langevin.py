"""CMCD's kernel: controlled Langevin steps along the geometric path from pi0 to p~.

    gamma_beta(x) = pi0(x)^(1 - beta) p~(x)^beta,    pi0 normalised (Z_0 = 1): N(0, s0^2 I) or
    the defensive mixture (1 - mix) N(0, s0^2 I) + mix t_df(0, s0^2 I) (``smc_reference``).

Step k (x_k -> x_{k+1}, k = 0..N-1) uses beta_{k+1} and the step size eps_k:

    F_k(x' | x) = N(x' ; x  + eps_k (grad log gamma_{beta_{k+1}}(x)  + u(x,  t_k)),     2 eps_k I)
    B_k(x | x') = N(x  ; x' + eps_k (grad log gamma_{beta_{k+1}}(x') - u(x', t_{k+1})), 2 eps_k I)

and the path weight is log w = log p~(x_N) - log pi0(x_0) + sum_k [log B_k - log F_k]
(Vargas et al. 2023, CMCD; the signs and the control times are those of the reference code,
SCLD repository ``algorithms/cmcd/cmcd_rnd.py::per_sample_rnd``, with eps = sigma^2 dt). With
u = 0 this is annealed importance sampling with unadjusted Langevin moves: both kernels
leave gamma_{beta_{k+1}} nearly invariant, so the weights telescope to AIS's.

Why not ``logz.sde.integrate``: its backward kernel is a *linear reference's* bridge, while
B_k is a Langevin step at x' (the target's score and -u at x', nonlinear in x'); and its
per-step constants are read as Python floats, so a learned eps_k or beta_k would get no
gradient. Both kernels therefore live here, in one vectorised function (``log_densities``)
that the simulation and the off-policy re-scoring share. Every state's score and control are
computed once: u(x_{k+1}, t_{k+1}) and grad log p~(x_{k+1}) serve step k's backward kernel
and step k+1's forward kernel.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from logz.samplers._common import _check, _is_int

SCHEDULES = ("linear", "cosine")


class InitialLaw(Protocol):
    """pi0, the path's normalised start (``smc_reference.DefensiveReference``)."""

    def log_prob(self, x: Tensor) -> Tensor: ...  # [..., d] -> [...]

    def grad(self, x: Tensor) -> Tensor: ...  # [..., d] -> [..., d]


def ladder_logits(beta: Tensor) -> Tensor:
    """The parameters a [N] of ``Annealing`` whose ``betas()`` is the ladder beta [N+1]
    (0 = beta_0 < ... < beta_N = 1): softplus^-1 of the gaps x N (gaps floored at 1e-6)."""
    n = beta.numel() - 1
    gaps = (beta[1:] - beta[:-1]).clamp_min(1e-6) * n
    return gaps + torch.log(-torch.expm1(-gaps))


class Annealing(nn.Module):
    """The inverse temperatures beta_0 = 0 < ... < beta_N = 1 and the step sizes eps_k.

    A learned schedule is monotone by construction: beta_k = cumsum(softplus(a))_k / sum,
    initialised at the fixed one; learned step sizes are eps_k = step_size exp(b_k), b = 0 at
    the start. Fixed ones are buffers (checkpointed, not trained)."""

    def __init__(self, num_steps: int, step_size: float, schedule: str = "linear",
                 learn_schedule: bool = False, learn_step_size: bool = False):
        super().__init__()
        _check("num_steps", _is_int(num_steps) and num_steps >= 1, num_steps, "an integer >= 1")
        _check("schedule", schedule in SCHEDULES, schedule, f"one of {SCHEDULES}")
        _check("step_size", isinstance(step_size, (int, float)) and math.isfinite(step_size) and step_size > 0,
               step_size, "a finite float > 0")
        s = torch.linspace(0, 1, num_steps + 1, dtype=torch.float64)
        beta = s if schedule == "linear" else 0.5 * (1 - torch.cos(math.pi * s))
        self.step_size, self.schedule = float(step_size), schedule
        _param_or_buffer(self, "a", ladder_logits(beta), learn_schedule)
        _param_or_buffer(self, "b", torch.zeros(num_steps, dtype=torch.float64), learn_step_size)

    def betas(self) -> Tensor:
        """Tensor[N+1], beta_0 = 0, beta_N = 1, strictly increasing."""
        c = torch.cumsum(F.softplus(self.a), 0)
        return torch.cat([c.new_zeros(1), c / c[-1]])

    def step_sizes(self) -> Tensor:
        """Tensor[N] of eps_k > 0."""
        return self.step_size * torch.exp(self.b.clamp(-10.0, 5.0))


def _param_or_buffer(m: nn.Module, name: str, value: Tensor, learned: bool) -> None:
    if learned:
        m.register_parameter(name, nn.Parameter(value))
    else:
        m.register_buffer(name, value)


class PathTerms(NamedTuple):
    """What the kernels need of every state of a stored path: kept so that a state's target
    score and control are computed once (steps k-1 and k share them)."""

    states: Tensor     # [M+1, B, d]
    scores: Tensor     # [M+1, B, d], grad log p~
    controls: Tensor   # [M+1, B, d], u(x_k, t_k)


def log_densities(terms: PathTerms, betas: Tensor, eps: Tensor, pi0: InitialLaw) -> tuple[Tensor, Tensor]:
    """(log F_k, log B_k), Tensor[M, B] each, of the M steps of ``terms``; ``betas``: the M
    steps' beta_{k+1} [M] (or [M, B]: per path, when the paths are different segments of
    the grid), ``eps`` their step sizes [M] (or [M, B]), ``pi0`` the path's initial law."""
    x, g, u = terms
    b = betas.to(x)[..., None] if betas.ndim == 2 else betas.to(x)[:, None, None]
    e = eps.to(x)[..., None] if eps.ndim == 2 else eps.to(x)[:, None, None]
    langevin = (1 - b) * pi0.grad(x[1:]) + b * g[1:]  # at x_{k+1}, same beta_{k+1}
    mean_f = x[:-1] + e * ((1 - b) * pi0.grad(x[:-1]) + b * g[:-1] + u[:-1])
    mean_b = x[1:] + e * (langevin - u[1:])
    return _log_normal(x[1:] - mean_f, e), _log_normal(x[:-1] - mean_b, e)


def _log_normal(diff: Tensor, eps: Tensor) -> Tensor:
    """log N(diff; 0, 2 eps I) over the last dim; eps [M, 1, 1] or [M, B, 1]."""
    d = diff.shape[-1]
    var = 2 * eps[..., 0]
    return -0.5 * diff.square().sum(-1) / var - 0.5 * d * torch.log(2 * math.pi * var)


def simulate(x0: Tensor, k0: int, k1: int, *, betas: Tensor, eps: Tensor, pi0: InitialLaw,
             times: Tensor, score: Callable[[Tensor], Tensor], control: Callable[[Tensor, Tensor], Tensor],
             draw: Callable, noise_scale: float = 1.0, backward: bool = False,
             start: Optional[tuple[Tensor, Tensor]] = None) -> PathTerms:
    """Run the kernels of steps k0..k1-1: forward F_k from x_{k0} = x0, or with ``backward``
    the B_k from x_{k1} = x0 down to x_{k0} (the EUBO's paths when x0 ~ p). x0: Tensor[B, d];
    ``betas`` [N+1], ``eps`` [N], ``times`` [N+1] of the whole path; ``draw(shape, dtype,
    device)``: standard normals; ``noise_scale`` multiplies the noise (an exploring behaviour
    process; densities stay nominal); ``start``: (score, control) at x0 when already known
    (the previous segment's last state). Returns PathTerms in forward time order."""
    steps = range(k1 - 1, k0 - 1, -1) if backward else range(k0, k1)
    sign = -1.0 if backward else 1.0
    x = x0
    g0, u0 = start if start is not None else (score(x0), control(x0, times[k1 if backward else k0]))
    xs, gs, us = [x0], [g0], [u0]
    for k in steps:
        b, e = betas[k + 1], eps[k]
        drift = (1 - b) * pi0.grad(x) + b * gs[-1] + sign * us[-1]
        x = x + e * drift + noise_scale * torch.sqrt(2 * e) * draw(x.shape, x.dtype, x.device)
        xs.append(x)
        gs.append(score(x))
        us.append(control(x, times[k if backward else k + 1]))
    if backward:
        xs, gs, us = xs[::-1], gs[::-1], us[::-1]
    return PathTerms(torch.stack(xs), torch.stack(gs), torch.stack(us))


def log_gamma(log_p: Tensor, x: Tensor, beta: Tensor, pi0: InitialLaw) -> Tensor:
    """log gamma_beta(x) = (1 - beta) log pi0(x) + beta log p~(x), Tensor[...]; ``log_p`` =
    log p~(x), ``beta`` broadcasting to it."""
    return (1 - beta) * pi0.log_prob(x) + beta * log_p


__all__ = ["Annealing", "InitialLaw", "PathTerms", "SCHEDULES", "ladder_logits", "log_densities", "log_gamma", "simulate"]
