"""Bespoke solvers (Shaul et al., "Bespoke Solvers for Generative Flow Models", arXiv 2310.19075).

A base solver (Euler or the RK2 midpoint rule) with n uniform steps in r in [0, 1] is applied
not to dx/dt = u(x, t) but to the transformed trajectory xbar(r) = s_r x(t_r), whose velocity

    ubar(xbar, r) = (s'_r / s_r) xbar + t'_r s_r u(xbar / s_r, t_r)

is known from u. The time change t_r (t_0 = 0, t_1 = 1, increasing) and the scale s_r > 0
(s_0 = 1) enter only through their values and derivatives at the stage points r_j (grid and,
for RK2, half-step points), which are the solver's parameters: t_j (increments by a softmax),
t'_j > 0 and s_j > 0 (by exp), s'_j; 4 per stage point, 8n for RK2 with n steps (the paper's
parameterisation; the paper shows such a solver is consistent, of the base order, for any parameters).
At initialisation (t_r = r, s_r = 1) it is exactly the base solver on the uniform grid.

``fit`` minimises the global truncation error E|x_n - x(1)| over prior draws against a
reference x(1) (a fine RK4 solve, or an exact map) with the library's ``Trainer``; the cost is
the reference solves of a pool of draws plus `iterations` differentiable n-step solves.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from logz.training import History, Trainer
from logz.sde.grids import uniform_grid
from logz.sde.ode import odeint

Velocity = Callable[[Tensor, Tensor], Tensor]
BASES = {"euler": 1, "midpoint": 2}

__all__ = ["BespokeSolver", "BASES"]


class BespokeSolver(nn.Module):
    """Parameterised n-step solver x(1) ~ solve(u, x(0)) for dx/dt = u(x, t) on [0, 1].

    Args:
        num_steps: n; NFE = n (Euler base) or 2 n (midpoint base).
        base: "midpoint" (RK2, default) or "euler".
    """

    def __init__(self, num_steps: int, base: str = "midpoint"):
        super().__init__()
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        if base not in BASES:
            raise ValueError(f"unknown base solver {base!r}; choose one of {sorted(BASES)}")
        self.num_steps, self.base = int(num_steps), base
        m = BASES[base] * self.num_steps          # stage points r_j, j = 0 .. m-1 (plus r_m = 1)
        self.time_logits = nn.Parameter(torch.zeros(m))   # t_j = cumsum softmax, t_0 = 0, t_m = 1
        self.log_dt = nn.Parameter(torch.zeros(m))        # t'_j = exp
        self.log_scale = nn.Parameter(torch.zeros(m))     # s_j = exp, j = 1 .. m (s_0 = 1)
        self.dscale = nn.Parameter(torch.zeros(m))        # s'_j

    @property
    def nfe(self) -> int:
        return BASES[self.base] * self.num_steps

    def schedule(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(t [m+1], t' [m], s [m+1], s' [m]) at the stage points r_j = j / m."""
        inc = torch.softmax(self.time_logits, 0)
        t = torch.cat([inc.new_zeros(1), torch.cumsum(inc, 0)])
        t = torch.cat([t[:-1], t.new_ones(1)])          # t_m = 1 exactly
        s = torch.cat([self.log_scale.new_ones(1), torch.exp(self.log_scale)])
        return t, torch.exp(self.log_dt), s, self.dscale

    def solve(self, func: Velocity, x0: Tensor) -> Tensor:
        """x_n from x0: Tensor[B, d] at t = 0 (differentiable in the solver's parameters)."""
        t, dt, s, ds = (z.to(x0.dtype) for z in self.schedule())
        h = 1.0 / self.num_steps
        x = x0
        for i in range(self.num_steps):
            if self.base == "euler":
                j = i
                xbar = s[j] * x + h * (ds[j] * x + dt[j] * s[j] * func(x, t[j]))
                x = xbar / s[j + 1]
            else:
                j = 2 * i
                xbar = s[j] * x
                k1 = ds[j] * x + dt[j] * s[j] * func(x, t[j])           # (s'/s) xbar = s' x
                xm = xbar + 0.5 * h * k1
                k2 = ds[j + 1] / s[j + 1] * xm + dt[j + 1] * s[j + 1] * func(xm / s[j + 1], t[j + 1])
                x = (xbar + h * k2) / s[j + 2]
        return x

    def forward(self, func: Velocity, x0: Tensor) -> Tensor:
        return self.solve(func, x0)

    def fit(self, velocity: Velocity, dim: int, *, iterations: int = 300, batch_size: int = 256,
            pool: int = 4096, reference: Optional[Callable[[Tensor], Tensor]] = None,
            reference_steps: int = 200, lr: float = 5e-3, seed: int = 0,
            dtype: torch.dtype = torch.float32, progress: bool = False) -> History:
        """Train on ``velocity`` (frozen) from N(0, I) in dimension ``dim``; returns ``History``.

        ``reference``: x0 -> x(1) exactly (e.g. a closed-form flow map); default an RK4 solve with
        ``reference_steps`` steps (4 * reference_steps NFE per pool draw, paid once).
        """
        for name, v in (("iterations", iterations), ("batch_size", batch_size), ("pool", pool),
                        ("dim", dim), ("reference_steps", reference_steps)):
            if isinstance(v, bool) or int(v) != v or v < (0 if name == "iterations" else 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        gen = torch.Generator().manual_seed(int(seed))
        x0 = torch.randn(int(pool), int(dim), generator=gen, dtype=dtype)
        with torch.no_grad():
            x1 = reference(x0) if reference is not None else odeint(
                velocity, x0, uniform_grid(1.0, int(reference_steps), dtype=dtype), "rk4")
        if x1.shape != x0.shape or not bool(torch.isfinite(x1).all()):
            raise ValueError("the reference must map Tensor[pool, dim] to finite Tensor[pool, dim]")
        self.to(dtype)
        frozen = [p for p in getattr(velocity, "parameters", lambda: [])() if p.requires_grad]

        def step(it: int):
            idx = torch.randint(0, int(pool), (int(batch_size),), generator=gen)
            err = self.solve(velocity, x0[idx]) - x1[idx]
            return {"loss": err.norm(dim=-1).mean()}

        trainer = Trainer({"solver": self}, step, lr=lr, grad_clip=None, generators={"data": gen},
                          lr_schedule={"kind": "cosine", "total": max(int(iterations), 1),
                                       "final_factor": 0.01}, name="bespoke")
        for p in frozen:
            p.requires_grad_(False)
        try:
            history = trainer.fit(iterations, progress=progress)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return history
