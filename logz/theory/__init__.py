"""PF-ODE convergence theory (Gao & Zhu 2024, arXiv 2401.17958), made computable and checked.

- ``processes``: forward processes dx = -f x ds + g dB (VP, sub-VP, VE, power and cosine
  schedules, any (f, g^2) by quadrature) with mu_s, sigma_s^2 and the exponential-integrator
  coefficients, built on the shared ``logz.sde`` schedules.
- ``gaussian``: Gaussian data: closed-form marginals, score, exact PF-ODE flow, L1.
- ``w2``: closed-form (cancellation-free) W2 between Gaussians; exact OT W2 between samples.
- ``sampler``: the discretized PF-ODE (exponential integrator; Euler/Heun/RK4 of the core).
- ``lab``: exact propagation of Gaussian laws through the sampler, score perturbations.
- ``bounds``: the W2 bound (init, discretization, score terms), contraction rate,
  iteration complexity.
- ``check``: ``check_pf_ode``: measured vs bound tables and slopes; ``plots``: figures.
- ``mixture``: non-log-concave data (two-mode mixture), W2 from samples by exact OT.
- ``flows``: flow models in the exact laboratory: closed-form velocity, flow map and MeanFlow
  average velocity of Gaussian data on the linear / GVP / VP paths, exact law propagation through
  every ODE solver, bespoke solvers and the SDE with free w(t); W2-vs-NFE studies.
- ``cli``: ``logz theory`` (``--solvers``: the flow-model solver table).

docs/theory.md derives every constant.
"""

from logz.theory.bounds import (COMPLEXITY_RATES, BoundTerms, Complexity, contraction_integral,
                                contraction_rate, initialization_error, iteration_complexity,
                                smoothness, strong_convexity, w2_bound)
from logz.theory.check import CheckResult, CheckRow, check_pf_ode, fit_slope
from logz.theory.flows import (SOLVERS, DiffusionRow, GaussianFlow, MixtureSolverRow, SolverRow,
                               SolverStudy, diffusion_study, mixture_solver_study, ode_solve,
                               plot_w2_vs_nfe, propagate_law, propagate_sde, solver_study)
from logz.theory.gaussian import GaussianData
from logz.theory.lab import (AffineScore, BiasPerturbation, LipschitzPerturbation, Propagation,
                             make_perturbation, prior_law, propagate)
from logz.theory.mixture import GaussianMixtureData, MixtureRow, check_mixture, mixture_table
from logz.theory.plots import (plot_error_terms, plot_w2_vs_dim, plot_w2_vs_steps,
                               save_check_plots)
from logz.theory.processes import (ForwardProcess, LinearSDE, SubVPProcess, VEProcess, VPProcess,
                                   default_horizon, make_process, process_names)
from logz.theory.sampler import METHODS, ORDERS, ei_coefficients, solve_pf_ode
from logz.theory.w2 import GaussianLaw, empirical_w2, gaussian_w2, sqrtm_psd

__all__ = [
    "COMPLEXITY_RATES", "BoundTerms", "Complexity", "contraction_integral", "contraction_rate",
    "initialization_error", "iteration_complexity", "smoothness", "strong_convexity", "w2_bound",
    "CheckResult", "CheckRow", "check_pf_ode", "fit_slope",
    "SOLVERS", "DiffusionRow", "GaussianFlow", "MixtureSolverRow", "SolverRow", "SolverStudy",
    "diffusion_study", "mixture_solver_study", "ode_solve", "plot_w2_vs_nfe", "propagate_law",
    "propagate_sde", "solver_study",
    "GaussianData",
    "AffineScore", "BiasPerturbation", "LipschitzPerturbation", "Propagation", "make_perturbation",
    "prior_law", "propagate",
    "GaussianMixtureData", "MixtureRow", "check_mixture", "mixture_table",
    "plot_error_terms", "plot_w2_vs_dim", "plot_w2_vs_steps", "save_check_plots",
    "ForwardProcess", "LinearSDE", "SubVPProcess", "VEProcess", "VPProcess", "default_horizon",
    "make_process", "process_names",
    "METHODS", "ORDERS", "ei_coefficients", "solve_pf_ode",
    "GaussianLaw", "empirical_w2", "gaussian_w2", "sqrtm_psd",
]
