"""Shared SDE/ODE integration core. Knows nothing of targets or losses.

- ``schedules``: rates beta(t) with closed-form integrals (constant, linear, geometric, cosine).
- ``grids``: time grids 0 = t_0 < ... < t_N = T.
- ``reference``: linear Gaussian reference processes (Brownian, VP-OU) with exact
  transitions, bridges and marginals.
- ``integrate``: the Euler–Maruyama loop for controlled SDEs with per-step
  forward/backward log-densities; ``path_log_densities`` re-scores stored paths.
- ``ode``: Euler, Heun, midpoint and RK4 on a fixed grid.
"""

from logz.sde.grids import check_grid, cosine_grid, power_grid, uniform_grid
from logz.sde.integrate import SDE, Noise, Trajectory, gaussian_noise, integrate, path_log_densities, split_control
from logz.sde.ode import ORDERS, methods, odeint, rk_step
from logz.sde.reference import (BrownianReference, LinearReference, VPReference,
                                gaussian_log_prob)
from logz.sde.power import PowerSchedule
from logz.sde.schedules import (ConstantSchedule, CosineSchedule, GeometricSchedule,
                                LinearSchedule, Schedule, as_schedule)

__all__ = [
    "check_grid", "cosine_grid", "power_grid", "uniform_grid",
    "SDE", "Noise", "Trajectory", "gaussian_noise", "integrate", "path_log_densities", "split_control",
    "ORDERS", "methods", "odeint", "rk_step",
    "BrownianReference", "LinearReference", "VPReference", "gaussian_log_prob",
    "ConstantSchedule", "CosineSchedule", "PowerSchedule", "GeometricSchedule", "LinearSchedule", "Schedule",
    "as_schedule",
]
