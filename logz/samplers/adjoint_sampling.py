"""Adjoint Sampling (Havens et al. 2025): reciprocal adjoint matching for Boltzmann densities.

Base process: zero drift from X_0 = 0, dX = sigma(t) dW on [0, T] with the geometric
(variance-exploding) schedule sigma(t)^2 = d/dt [s_min^2 (s_max/s_min)^(2t/T)], so
X_T ~ p_T^base = N(0, nu_T I), nu_t = int_0^t sigma^2. The sampler is the controlled SDE

    dX = sigma(t) u(X, t) dt + sigma(t) dW,

whose optimal control tilts the base path measure by exp(-g(X_T)) with terminal cost
g(x) = -log p~(x) + log p_T^base(x) (= E/tau + log p_T^base), so that X_T ~ p~ / Z. The
base drift is zero, hence the lean adjoint is constant in time, a_t = grad g(X_T)
(``logz.sde.adjoint.constant_lean_adjoint``), and the regression target of u(x, t) is
-sigma(t) E[grad g(X_T) | X_t = x]. Reciprocal training draws (X_T, grad g(X_T)) from a
replay buffer filled by the current sampler and X_t from the base bridge given X_T
(``logz.sde.adjoint.brownian_bridge``), so one energy gradient serves many updates:

    L = E_{t, (X_T, grad g) ~ buffer, X_t ~ bridge} |u(X_t, t) + sigma(t) grad g(X_T)|^2

(the paper's loss, ``parameterization="control"``). By default logz writes u = -sigma(t) A(x, t)
and regresses A(X_t, t) on grad g(X_T) (same minimiser, O(1) targets at every t), draws t
uniform in the base's variance, gives A the feature grad g(x) (exact at t = T), and augments
buffer draws by the target's symmetries where it has them (``random_symmetry``); the
constructor's docstring says why, and ``benchmarks/accuracy_adjoint_sampling.py`` measures it
(DW-4, ``sigma_max=2``, energy-histogram W2: MLP 1.74 raw after 16000 iterations, the default
EGNN 1.19 after 4000; ~0.2 after importance resampling; floor 0.11).

Adjoint Sampling is a ``PathSampler`` composition: this reference and grid, the network A
(or u) as control with u = -sigma(t) A as the SDE's drift, and the objective
``objectives.adjoint_matching``. log Z comes from importance weights of fresh controlled paths (exact-transition scheme of
``logz.sde.integrate``, Brownian-bridge backward kernels): log w = log p~(X_N) + sum log P_B
- sum log P_F. For particle systems (``logz.targets.particles``) the target's center-of-mass
restraint makes p~ proper on R^{n d}; this sampler needs no special handling of it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from logz.samplers.base import PathSampler
from logz.samplers.config import Evaluation, Optimiser, Placement, group, reject_unknown
from logz.samplers.egnn import EGNN
from logz.samplers.nets import FourierMLP, TimeScale
from logz.samplers.objectives.adjoint_matching import AdjointMatching, AdjointMatchingConfig
from logz.sde import BrownianReference, GeometricSchedule, power_grid, uniform_grid
from logz.targets.base import target_name


class _WithGradFeature(nn.Module):
    """net(x, t) + c(t) * grad_fn(x): the network plus a learned time scale on grad g (detached
    input), as PIS-Grad does with the score. At t = T the lean adjoint IS grad g(x), so
    c(T) = 1 with net = 0 is exact there, where a plain MLP has to learn the energy's gradient."""

    def __init__(self, net: nn.Module, scale: nn.Module, grad_fn):
        super().__init__()
        self.net, self.scale, self.grad_fn = net, scale, grad_fn

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        with torch.no_grad():
            feature = self.grad_fn(x.detach())
        return self.net(x, t) + self.scale(t) * feature


class AdjointSampling(PathSampler):
    """Adjoint Sampling: ``fit``, ``sample``, ``estimate_log_z``, ``save``/``load``.

    Args:
        target: object with ``dim`` and differentiable ``log_prob``.
        sigma_min, sigma_max: geometric noise schedule; X_T ~ N(0, (sigma_max^2 - sigma_min^2) I)
            under the base (default 0.01 and 3 * target.init_std, at least 1; a generous guess:
            on DW-4 that is 6, a base three times wider than the target; the benchmark uses 2).
        T: horizon (1). num_steps: steps of the simulations (100). grid_power: p of the
            time grid T (1 - (1 - k/N)^p), dense near T where sigma is largest (1: uniform).
        hidden, layers: network size: the FourierMLP's hidden layers (default 2), or the
            EGNN's message-passing layers (default 3); zero-initialized output either way.
        network: "egnn": the E(n)-equivariant graph network of ``logz.samplers.egnn``
            (particle targets, with ``n_particles`` and ``spatial_dim``), equivariant to
            rotations, reflections and particle permutations by construction, as in the paper;
            "mlp": ``FourierMLP`` on the flat state. None (default): "egnn" on particle
            targets, else "mlp". On DW-4 (4000 iterations, seed 0) the EGNN took the
            energy-histogram W2 from 1.93 to 1.26 and the ESS from 0.05 to 0.15, at ~1/7
            the iterations per second.
        parameterization: "adjoint" (default): the network A(x, t) estimates the lean adjoint
            E[grad g(X_T) | X_t = x] and the control is u = -sigma(t) A, regressed by
            |A(X_t, t) - grad g(X_T)|^2; "control": the network is u itself, regressed by the
            paper's |u + sigma(t) grad g(X_T)|^2. Both have the same minimiser; "adjoint" keeps
            the regression target O(|grad g|) at every t, where "control" asks the network for
            outputs that grow with sigma(t) (x 2000 over the geometric schedule) and weights the
            loss by sigma(t)^2, so only the last steps train.
        time_sampling: how training draws t. "variance" (default): nu_t / nu_T uniform, so
            training time follows where the base adds its variance (under the geometric
            schedule, uniform t puts ~90% of draws where X_t is still within a few percent of
            its final spread of 0 and the regression is nearly trivial); "uniform": t ~ U(0, T).
        batch_size: buffer samples per gradient step.
        paths_per_refresh: new sampler paths (one energy gradient each) added to the buffer
            every ``refresh_every`` gradient steps. buffer_size: FIFO capacity.
        score_clip: maximum norm of grad g per sample (energies with hard cores).
        grad_feature: the network gets grad g(x) as a feature, A(x, t) = NN(x, t) + c(t) grad g(x)
            with c(t) learned (starts at 0): exact at t = T with c = 1, where a plain network
            must learn grad g itself; costs one target gradient per network call. None
            (default): on with parameterization="adjoint". On DW-4 (8000 iterations) it took the
            energy-histogram W2 from 3.1 to 1.8 (``benchmarks/accuracy_adjoint_sampling.py``);
            False gives the paper's energy-free simulation.
        symmetrize: augment every buffer draw (X_T, grad g(X_T)) by a random symmetry of the
            target (``target.random_symmetry``, e.g. rotations and particle permutations of
            ``logz.targets.particles``). The base is isotropic Brownian motion from 0, so the
            tilted path measure, and the optimal control, share those symmetries; the
            augmentation teaches a plain MLP what an equivariant network knows by
            construction. None (default): on when the target has ``random_symmetry``.
        paths_per_refresh, refresh_every, buffer_size, score_clip, parameterization, time_sampling:
            the objective's (``objectives.adjoint_matching.AdjointMatchingConfig``; also as the
            group ``matching``).
        seed, optimiser, evaluation, placement (and their fields as flat keywords: ``lr``,
            ``eval_every``, ``device``, ``dtype``, ...): as for the other samplers.
    """

    name = "adjoint_sampling"
    scheme = "exact"

    def __init__(self, target, *, sigma_min: float = 0.01, sigma_max: Optional[float] = None,
                 T: float = 1.0, num_steps: int = 100, grid_power: float = 2.0, batch_size: int = 256,
                 hidden: int = 64, layers: Optional[int] = None, network: Optional[str] = None,
                 grad_feature: Optional[bool] = None, symmetrize: Optional[bool] = None, matching=None,
                 seed: int = 0, optimiser=None, evaluation=None, placement=None, **flat):
        dim = getattr(target, "dim", None)
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"target.dim must be a positive integer, got {dim!r}")
        if sigma_max is None:
            sigma_max = max(1.0, 3.0 * float(getattr(target, "init_std", 1.0)))
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        for key, v in (("num_steps", num_steps), ("batch_size", batch_size)):
            if int(v) != v or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        flat = dict(flat)
        config = group(AdjointMatchingConfig, matching, flat)
        opt, ev, place = (group(cls, None if value is None else value, flat) for cls, value in
                          ((Optimiser, optimiser), (Evaluation, evaluation), (Placement, placement)))
        reject_unknown("AdjointSampling", flat)
        particles = isinstance(getattr(target, "n_particles", None), int) and isinstance(
            getattr(target, "spatial_dim", None), int)
        network = ("egnn" if particles else "mlp") if network is None else network
        if network not in ("mlp", "egnn"):
            raise ValueError(f"network must be 'mlp' or 'egnn', got {network!r}")
        if network == "egnn" and not particles:
            raise ValueError(f"network='egnn' needs a particle target (n_particles, spatial_dim); "
                             f"{target_name(target)!r} has none")
        layers = (3 if network == "egnn" else 2) if layers is None else layers
        symmetry = getattr(target, "random_symmetry", None)
        if symmetrize and not callable(symmetry):
            raise ValueError(f"symmetrize=True needs a target with random_symmetry(x, v, generator=...); "
                             f"{target_name(target)!r} has none")
        self.symmetry = symmetry if (symmetrize or symmetrize is None) and callable(symmetry) else None
        self.schedule = GeometricSchedule(float(sigma_min), float(sigma_max), float(T))
        # sigma(t)^2 grows geometrically, so the controlled drift sigma^2 grad g is stiffest at
        # t = T: a grid dense at the end (t_k = T (1 - (1 - k/N)^p)) keeps Euler stable there
        dtype, device = place.dtype, place.torch_device
        times = (uniform_grid(float(T), int(num_steps), dtype=dtype, device=device) if grid_power == 1.0 else
                 power_grid(float(T), int(num_steps), grid_power, dense_at="end", dtype=dtype, device=device))
        objective = AdjointMatching(config, self.schedule, T, self.symmetry)
        self.objective, self.parameterization, self.network = objective, config.parameterization, network
        if grad_feature is None:
            grad_feature = config.parameterization == "adjoint"
        if grad_feature and config.parameterization != "adjoint":
            raise ValueError("grad_feature=True needs parameterization='adjoint'")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            if network == "egnn":
                control = EGNN(target.n_particles, target.spatial_dim, hidden=hidden, layers=layers, T=float(T))
            else:
                control = FourierMLP(int(dim), hidden=hidden, layers=layers, T=float(T), zero_init=True)
            if grad_feature:
                control = _WithGradFeature(control, TimeScale(1, hidden=hidden, layers=layers, T=float(T), init=0.0),
                                           self.terminal_cost_grad)
            control = control.to(device=device, dtype=dtype)
        fingerprint = {"sampler": self.name, "target": target_name(target), "dim": int(dim),
                       "hidden": int(hidden), "layers": int(layers), "dtype": str(dtype),
                       "parameterization": config.parameterization, "symmetrize": self.symmetry is not None,
                       "grad_feature": bool(grad_feature), **({"network": network} if network != "mlp" else {})}
        self._build(target, reference=BrownianReference(self.schedule), times=times, scheme=self.scheme,
                    control=control, objective=objective, batch_size=batch_size, evaluation=ev, placement=place,
                    seed=seed, fingerprint=fingerprint, policy=self._u)
        self.var_T = objective.var_T
        self._make_trainer({"control": control}, opt.lr, opt, ev)

    def _u(self, x: Tensor, t: Tensor) -> Tensor:
        """The control u(x, t) the SDE sees, Tensor[B, dim] (t: scalar or Tensor[B])."""
        if self.parameterization == "control":
            return self.control(x, t)
        t = torch.as_tensor(t, dtype=self.dtype, device=self.device)
        sigma = self.schedule.sqrt(t).to(self.dtype)
        return -(sigma[:, None] if sigma.ndim else sigma) * self.control(x, t)

    def terminal_cost_grad(self, x: Tensor) -> Tensor:
        """grad g(x) = -grad log p~(x) - x / nu_T, clipped (``AdjointMatching.terminal_cost_grad``). [B, dim]."""
        return self.objective.terminal_cost_grad(self, x)

    def _time_at_variance_fraction(self, frac: Tensor) -> Tensor:
        return self.objective.time_at_variance_fraction(frac)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target={target_name(self.target)!r}, dim={self.dim}, "
                f"schedule={self.schedule!r}, num_steps={self.num_steps})")
