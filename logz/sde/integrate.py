"""One Euler–Maruyama loop for controlled SDEs, with optional per-step log-densities.

    dX = (f(X, t) + g(t) u(X, t)) dt + g(t) dW,        t: t_0 -> t_N.

Any object with ``f(x, t) -> Tensor[B, dim]`` and ``g(t) -> Tensor`` (scalar per
time) is an SDE here (the torchsde protocol, restricted to scalar diffusion). The
control ``u(x, t)`` is any callable, usually a network; ``t`` is a 0-dim tensor
taken from the grid inside ``integrate`` and a Tensor[B] in ``path_log_densities``,
so controls must accept both.

A control may also return a pair ``(u, log_scale)``, both Tensor[B, dim]: a learned,
state-dependent diagonal noise, the step std becoming s_k exp(log_scale) per dimension
("learned variance", gfn-diffusion's policy). The kernels' log-densities then use it;
``control_cost`` does not (the Girsanov form 1/2 |u|^2 dt of the path KL holds for the
reference's own noise only), so losses of such a control are built from log P_F / log P_B.

Each step draws x_{k+1} ~ N(m_k(x_k), s_k^2 I) with, for ``scheme="euler"``,
m_k = x_k + (f + g u) dt_k and s_k = g(t_k) sqrt(dt_k); for ``scheme="exact"`` on
a linear reference process (``reference.py``), m_k = a_k x_k + s_k sqrt(dt_k) u and
s_k the exact transition std (the exponential integrator used by DDS).

With ``log_densities=True`` the loop accumulates, per path, the forward-kernel
log-density log P_F(x_{k+1} | x_k) and, given a ``reference`` process, its
backward-kernel (bridge) log-density log P_B(x_k | x_{k+1}): the two pieces of
every path-space importance weight

    log w = log R(x_N) + sum_k log P_B - sum_k log P_F - log p_0(x_0).

The Gaussian increments come from ``noise(shape, dtype, device) -> Tensor[B, d]`` (standard
normals; as torchsde takes ``bm=``), by default ``gaussian_noise(generator)``: the core knows
nothing of processes or ranks, and a caller that splits a batch over processes passes the
sharded source (``logz.distributed.Shard.noise``).

``keep_path=False`` stores no trajectory: memory O(B dim) (plus autograd's graph,
if gradients flow). ``path_log_densities`` re-evaluates the same kernels on a
stored path under a (new) control, for off-policy losses; both use ``_kernels``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import torch
from torch import Tensor

from logz.sde.grids import check_grid
from logz.sde.reference import LOG_2PI, BrownianReference, LinearReference

Control = Callable[[Tensor, Tensor], Tensor]
Noise = Callable[[torch.Size, torch.dtype, torch.device], Tensor]
"""``noise(shape, dtype, device)``: standard normals of ``shape`` ([B, d]), one call per step."""


def gaussian_noise(generator: Optional[torch.Generator] = None) -> Noise:
    """The default ``Noise``: ``torch.randn`` from ``generator`` (the global RNG if None)."""
    def draw(shape: torch.Size, dtype: torch.dtype, device: torch.device) -> Tensor:
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    return draw


class SDE(Protocol):
    def f(self, x: Tensor, t: Tensor) -> Tensor: ...  # pragma: no cover
    def g(self, t: Tensor) -> Tensor: ...  # pragma: no cover


@dataclass
class Trajectory:
    """Result of ``integrate``. N steps, B paths, dimension d.

    Attributes:
        times: Tensor[N+1].
        final: Tensor[B, d], the state at t_N.
        states: Tensor[N+1, B, d] or None (``keep_path=False``).
        log_forward: Tensor[N, B] per-step log P_F, or None.
        log_backward: Tensor[N, B] per-step log P_B, or None.
        log_forward_sum: Tensor[B] (zeros without ``log_densities``).
        log_backward_sum: Tensor[B] (zeros without a reference).
        log_initial: Tensor[B], log p_0(x_0) (zeros if x_0 is deterministic / unknown).
        control_cost: Tensor[B], sum_k 1/2 |u_k|^2 dt_k (zeros without control).
    """

    times: Tensor
    final: Tensor
    states: Optional[Tensor]
    log_forward: Optional[Tensor]
    log_backward: Optional[Tensor]
    log_forward_sum: Tensor
    log_backward_sum: Tensor
    log_initial: Tensor
    control_cost: Tensor

    @property
    def log_path_ratio(self) -> Tensor:
        """sum log P_B - sum log P_F - log p_0(x_0): add log R(x_N) to get log w. Tensor[B]."""
        return self.log_backward_sum - self.log_forward_sum - self.log_initial


@dataclass
class _Kernels:
    """Per-step constants, computed once per grid (no work on the hot path)."""

    times: Tensor      # [N+1]
    dt: Tensor         # [N]
    sqrt_dt: Tensor    # [N]
    g: Tensor          # [N] diffusion at step start
    a: Optional[Tensor]  # [N] linear mean factor (None: zero drift, or call sde.f)
    zero_drift: bool   # the uncontrolled mean is x itself (Brownian reference)
    std: Tensor        # [N] forward kernel std
    ctrl_scale: Tensor  # [N] multiplies u in the mean
    b: Optional[Tensor]  # [N] bridge mean factor
    r: Optional[Tensor]  # [N] bridge std
    r_zero: list         # [N] python bools: bridge is a point mass (log P_B := 0)


def _kernels(sde, times: Tensor, scheme: str, reference: Optional[LinearReference]) -> _Kernels:
    times = check_grid(times)
    dt = times[1:] - times[:-1]
    sqrt_dt = dt.sqrt()
    g = torch.as_tensor(sde.g(times[:-1]), dtype=times.dtype, device=times.device).expand_as(dt)
    zero_drift = isinstance(sde, BrownianReference)
    if scheme == "euler":
        a = (1 - sde.lam(times[:-1]).to(times) * dt) if isinstance(sde, LinearReference) else None
        std = g * sqrt_dt
        ctrl_scale = g * dt
    elif scheme == "exact":
        if not isinstance(sde, LinearReference):
            raise ValueError(f"scheme='exact' needs a linear reference process (BrownianReference, "
                             f"VPReference), got {type(sde).__name__}; use scheme='euler'")
        a, std = sde.forward_coefficients(times)
        ctrl_scale = std * sqrt_dt
    else:
        raise ValueError(f"unknown scheme {scheme!r}; choose 'euler' or 'exact'")
    if zero_drift:
        a = None  # mean = x: skip a multiply by one per step
    if not bool((std > 0).all()):
        raise ValueError("diffusion g(t) must be > 0 on the grid for a stochastic integrator")
    b = r = None
    r_zero = [False] * dt.numel()
    if reference is not None:
        b, r = reference.backward_coefficients(times)
        r_zero = (r <= 0).tolist()
    return _Kernels(times, dt, sqrt_dt, g, a, zero_drift, std, ctrl_scale, b, r, r_zero)


def _log_normal_diag(diff: Tensor, std: Tensor, log_scale: Optional[Tensor] = None) -> Tensor:
    """log N(diff; 0, diag(std^2 exp(2 log_scale))) over the last dim; std is a 0-dim or
    broadcastable tensor, log_scale None (isotropic) or shaped like diff."""
    d = diff.shape[-1]
    log_std = torch.log(std)
    if log_std.ndim == diff.ndim:  # per-step std shaped [N, 1, 1] -> [N, 1]
        log_std = log_std.squeeze(-1)
    if log_scale is None:
        return -0.5 * (diff / std).pow(2).sum(-1) - d * log_std - 0.5 * d * LOG_2PI
    z = diff / (std * log_scale.exp())
    return -0.5 * z.pow(2).sum(-1) - log_scale.sum(-1) - d * log_std - 0.5 * d * LOG_2PI


def split_control(out, shape: torch.Size, what: str = "control") -> tuple[Tensor, Optional[Tensor]]:
    """A control's output, ``u`` or ``(u, log_scale)``, as (u, log_scale or None), shapes checked.

    ``what`` names the values in the error (a control's output, or recorded ``controls``).
    """
    u, log_scale = out if isinstance(out, tuple) else (out, None)
    for part, v in (("u", u), ("log_scale", log_scale)):
        if v is not None and v.shape != shape:
            raise ValueError(f"{what}: {part} has shape {tuple(v.shape)}, expected {tuple(shape)} "
                             "(the shape of x)")
    return u, log_scale


def _call_control(control: Control, x: Tensor, t: Tensor) -> tuple[Tensor, Optional[Tensor]]:
    return split_control(control(x, t), x.shape)


def _floats(v: Optional[Tensor]) -> Optional[list]:
    # per-step constants as Python floats, read once per simulation: indexing a tensor
    # inside the loop costs an op per use (the grid and the coefficients carry no graph)
    return None if v is None else v.detach().tolist()


def integrate(sde, x0: Tensor, times: Tensor, control: Optional[Control] = None, *,
              reference: Optional[LinearReference] = None, scheme: str = "euler",
              generator: Optional[torch.Generator] = None, log_densities: bool = True,
              keep_path: bool = True, keep_steps: bool = True, noise_scale: float = 1.0,
              log_initial: Optional[Tensor] = None, noise: Optional[Noise] = None) -> Trajectory:
    """Simulate B paths of the controlled SDE on the grid ``times``.

    Args:
        sde: object with ``f(x, t)`` and ``g(t)``; a ``LinearReference`` uses its
            closed-form coefficients (and allows ``scheme="exact"``).
        x0: Tensor[B, d] initial states.
        times: Tensor[N+1], strictly increasing.
        control: u(x, t) -> Tensor[B, d], or None for the uncontrolled SDE.
        reference: linear reference whose bridge gives log P_B; defaults to ``sde``
            when it is a ``LinearReference``. Pass ``False`` to skip.
        scheme: "euler" (Euler–Maruyama) or "exact" (exponential integrator).
        generator: torch.Generator for the Gaussian increments (with the default ``noise``).
        log_densities: accumulate log P_F (and log P_B with a reference).
        keep_path: store states Tensor[N+1, B, d].
        keep_steps: store per-step log-densities Tensor[N, B] (else only sums).
        noise_scale: behaviour-policy noise multiplier (exploration). Log-densities
            are still those of the nominal kernel (noise_scale = 1), evaluated at
            the simulated states, as off-policy losses need.
        log_initial: Tensor[B] log-density of x0 under its law (recorded as is).
        noise: ``noise(shape, dtype, device) -> Tensor[B, d]`` standard normals, called once
            per step (default ``gaussian_noise(generator)``). ``logz.distributed.Shard.noise``
            gives this rank's rows of the whole batch's draw, so that a path's increments do
            not depend on the number of processes.
    Returns:
        Trajectory.
    """
    if reference is None and isinstance(sde, LinearReference):
        reference = sde
    if reference is False:
        reference = None
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape [B, dim], got {tuple(x0.shape)}")
    if not noise_scale > 0:
        raise ValueError(f"noise_scale must be > 0, got {noise_scale}")
    times = times.to(dtype=x0.dtype, device=x0.device)
    kern = _kernels(sde, times, scheme, reference if log_densities else None)
    n_steps, (B, d) = kern.dt.numel(), x0.shape
    bridge = log_densities and reference is not None
    t_k = kern.times.unbind(0)  # 0-dim times for the control, one op for all steps
    a, dt, std, ctrl = _floats(kern.a), _floats(kern.dt), _floats(kern.std), _floats(kern.ctrl_scale)
    b, r = (_floats(kern.b), _floats(kern.r)) if bridge else (None, None)
    zeros = x0.new_zeros(B)
    # Per-step quantities that are only ever summed over steps accumulate elementwise in
    # Tensor[B, d] (one addcmul per step), summed over d once after the loop:
    # - the control cost sum_k dt_k |u_k|^2 / 2;
    # - log P_F: x_{k+1} - m_k = noise_scale std_k eps exactly, so log P_F(x_{k+1} | x_k) =
    #   -noise_scale^2 |eps|^2 / 2 - d log std_k - d/2 log 2 pi needs only |eps|^2 (no graph:
    #   its gradient in the parameters is zero);
    # - log P_B: the bridge residuals -|x_k - b_k x_{k+1}|^2 / (2 r_k^2) (through the states).
    # With keep_steps the last two are kept per step instead, Tensor[B] each.
    cost_acc = x0.new_zeros(B, d)
    log_scale_acc = None  # sum_k log_scale_k, Tensor[B, d], for a learned noise (log P_F's normaliser)
    log_scale_steps: list[Tensor] = []
    eps_sq_steps, bridge_sq_steps = [], []
    eps_sq_acc = x0.new_zeros(B, d) if log_densities and not keep_steps else None
    bridge_acc = x0.new_zeros(B, d) if bridge and not keep_steps else None
    states = [x0] if keep_path else None
    if noise is not None and generator is not None:
        raise ValueError("pass either generator= or noise= (a noise source carries its own generator)")
    draw = gaussian_noise(generator) if noise is None else noise
    x = x0
    for k in range(n_steps):
        u, log_scale = _call_control(control, x, t_k[k]) if control is not None else (None, None)
        if a is not None:
            mean = a[k] * x
        elif kern.zero_drift:
            mean = x
        else:
            mean = x + sde.f(x, t_k[k]) * dt[k]
        if u is not None:
            mean = torch.add(mean, u, alpha=ctrl[k])
            cost_acc = torch.addcmul(cost_acc, u, u, value=0.5 * dt[k])
        eps = draw(x.shape, x.dtype, x.device)
        if log_scale is None:
            x_next = torch.add(mean, eps, alpha=noise_scale * std[k])
        else:
            x_next = torch.addcmul(mean, eps, log_scale.exp(), value=noise_scale * std[k])
        if log_densities:
            if keep_steps:
                eps_sq_steps.append(eps.square().sum(-1))
            else:
                eps_sq_acc.addcmul_(eps, eps)
            if log_scale is not None:
                if keep_steps:
                    log_scale_steps.append(log_scale.sum(-1))
                else:
                    log_scale_acc = log_scale if log_scale_acc is None else log_scale_acc + log_scale
            if bridge and not kern.r_zero[k]:
                res = torch.add(x, x_next, alpha=-b[k])
                if keep_steps:
                    bridge_sq_steps.append(res.square().sum(-1))
                else:
                    bridge_acc = torch.addcmul(bridge_acc, res, res, value=-0.5 / r[k] ** 2)
            elif bridge and keep_steps:
                bridge_sq_steps.append(None)
        x = x_next
        if keep_path:
            states.append(x)
    cost = cost_acc.sum(-1) if control is not None else zeros
    log_f_steps = log_b_steps = None
    log_f_sum, log_b_sum = zeros, zeros
    if log_densities:
        half_d_log2pi = 0.5 * d * LOG_2PI
        f_const = d * torch.log(kern.std) + half_d_log2pi  # Tensor[N]
        if keep_steps:
            log_f_steps = -0.5 * noise_scale ** 2 * torch.stack(eps_sq_steps) - f_const[:, None]
            if log_scale_steps:
                log_f_steps = log_f_steps - torch.stack(log_scale_steps)
            log_f_sum = log_f_steps.sum(0)
        else:
            log_f_sum = -0.5 * noise_scale ** 2 * eps_sq_acc.sum(-1) - f_const.sum()
            if log_scale_acc is not None:
                log_f_sum = log_f_sum - log_scale_acc.sum(-1)
        if bridge:
            point_mass = [k for k in range(n_steps) if kern.r_zero[k]]
            r_safe = kern.r.clone()
            r_safe[point_mass] = 1.0  # log P_B := 0 there; avoid log(0)
            b_const = d * torch.log(r_safe) + half_d_log2pi
            b_const[point_mass] = 0.0
            if keep_steps:
                sq = torch.stack([v if v is not None else zeros for v in bridge_sq_steps])
                log_b_steps = -0.5 * sq / r_safe[:, None] ** 2 - b_const[:, None]
                log_b_sum = log_b_steps.sum(0)
            else:
                log_b_sum = bridge_acc.sum(-1) - b_const.sum()
    return Trajectory(
        times=kern.times, final=x,
        states=torch.stack(states) if keep_path else None,
        log_forward=log_f_steps, log_backward=log_b_steps,
        log_forward_sum=log_f_sum, log_backward_sum=log_b_sum,
        log_initial=zeros if log_initial is None else log_initial, control_cost=cost)


def path_log_densities(sde, states: Tensor, times: Tensor, control: Optional[Control] = None, *,
                       reference: Optional[LinearReference] = None, scheme: str = "euler",
                       controls: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Per-step log P_F and log P_B of a stored path under the (current) control.

    All steps are evaluated in one batched call of the control on [N*B, d] (no loop
    over steps), which is how off-policy losses (VarGrad, TB, SubTB) re-score
    trajectories simulated by another (behaviour) policy.

    Args:
        states: Tensor[N+1, B, d]; times: Tensor[N+1].
        controls: Tensor[N, B, d], the control's values u(x_k, t_k) at states[:-1] when
            already known (e.g. kept, with their graph, by the simulation that produced the
            states: ``logz.samplers.nets.GridControl(record_controls=True)``), or the pair
            (u, log_scale) for a learned noise; ``control`` is then not called.
    Returns:
        (log_forward Tensor[N, B], log_backward Tensor[N, B]; zeros without a reference).
    """
    if reference is None and isinstance(sde, LinearReference):
        reference = sde
    if states.ndim != 3 or states.shape[0] != times.numel():
        raise ValueError(f"states must have shape [N+1, B, d] with N+1 = {times.numel()}, "
                         f"got {tuple(states.shape)}")
    times = times.to(dtype=states.dtype, device=states.device)
    kern = _kernels(sde, times, scheme, reference)
    N, B, d = states.shape[0] - 1, states.shape[1], states.shape[2]
    x, x_next = states[:-1], states[1:]
    col = lambda v: v.view(N, 1, 1)  # noqa: E731  per-step scalar -> [N, 1, 1]
    if kern.a is not None:
        mean = col(kern.a) * x
    elif kern.zero_drift:
        mean = x
    else:
        mean = x + torch.stack([sde.f(x[k], kern.times[k]) for k in range(N)]) * col(kern.dt)
    log_scale = None
    if controls is not None:
        u, log_scale = split_control(controls, x.shape, "recorded controls [N, B, d]")
        mean = mean + col(kern.ctrl_scale) * u
    elif control is not None:
        t_flat = kern.times[:-1].repeat_interleave(B)
        u, log_scale = split_control(control(x.reshape(N * B, d), t_flat), torch.Size((N * B, d)))
        u, log_scale = u.view(N, B, d), None if log_scale is None else log_scale.view(N, B, d)
        mean = mean + col(kern.ctrl_scale) * u
    log_f = _log_normal_diag(x_next - mean, col(kern.std), log_scale)
    if reference is None:
        return log_f, torch.zeros_like(log_f)
    r = kern.r.clone()
    point_mass = r <= 0
    r[point_mass] = 1.0
    log_b = _log_normal_diag(x - col(kern.b) * x_next, col(r))
    log_b = log_b.masked_fill(point_mass[:, None], 0.0)
    return log_f, log_b
