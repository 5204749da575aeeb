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

log Z comes from importance weights of fresh controlled paths (exact-transition scheme of
``logz.sde.integrate``, Brownian-bridge backward kernels): log w = log p~(X_N) + sum log P_B
- sum log P_F. For particle systems (``logz.targets.particles``) the target's center-of-mass
restraint makes p~ proper on R^{n d}; this sampler needs no special handling of it.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn

from logz.samplers import register
from logz.samplers._common import _as_dtype
from logz.samplers.egnn import EGNN
from logz.samplers.estimators import LogZEstimate, estimate_from_log_weights
from logz.samplers.nets import FourierMLP, TimeScale
from logz.samplers.training import History, Trainer
from logz.sde import BrownianReference, GeometricSchedule, integrate, power_grid, uniform_grid
from logz.sde.adjoint import brownian_bridge, constant_lean_adjoint
from logz.targets.base import checked_log_prob, log_prob_and_grad, target_name


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


class AdjointSampling:
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
        lr, grad_clip, weight_decay: optimizer settings (Adam via ``Trainer``).
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
        eval_samples, eval_batch_size: paths for ``estimate_log_z`` during ``fit`` (eval_every).
        seed, device, dtype, checkpoint_every, checkpoint_path: as for the other samplers.
    """

    name = "adjoint_sampling"

    def __init__(self, target, *, sigma_min: float = 0.01, sigma_max: Optional[float] = None,
                 T: float = 1.0, num_steps: int = 100, grid_power: float = 2.0, hidden: int = 64,
                 layers: Optional[int] = None, network: Optional[str] = None,
                 parameterization: str = "adjoint", time_sampling: str = "variance",
                 symmetrize: Optional[bool] = None, grad_feature: Optional[bool] = None,
                 lr: float = 1e-3, batch_size: int = 256, paths_per_refresh: int = 256,
                 refresh_every: int = 20, buffer_size: int = 10_000, score_clip: Optional[float] = 100.0,
                 grad_clip: Optional[float] = 1.0, weight_decay: float = 0.0,
                 eval_every: Optional[int] = None, eval_samples: int = 2000, eval_batch_size: int = 2000,
                 seed: int = 0, device=None, dtype: Union[str, torch.dtype] = torch.float32,
                 checkpoint_every: Optional[int] = None, checkpoint_path: Optional[str] = None):
        dim = getattr(target, "dim", None)
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"target.dim must be a positive integer, got {dim!r}")
        if sigma_max is None:
            sigma_max = max(1.0, 3.0 * float(getattr(target, "init_std", 1.0)))
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        for key, v in (("num_steps", num_steps), ("batch_size", batch_size), ("refresh_every", refresh_every),
                       ("paths_per_refresh", paths_per_refresh), ("buffer_size", buffer_size)):
            if int(v) != v or v < 1:
                raise ValueError(f"{key} must be a positive integer, got {v!r}")
        if time_sampling not in ("variance", "uniform"):
            raise ValueError(f"time_sampling must be 'variance' or 'uniform', got {time_sampling!r}")
        if parameterization not in ("adjoint", "control"):
            raise ValueError(f"parameterization must be 'adjoint' or 'control', got {parameterization!r}")
        particles = hasattr(target, "n_particles") and hasattr(target, "spatial_dim")
        if network is None:
            network = "egnn" if particles else "mlp"
        if network not in ("mlp", "egnn"):
            raise ValueError(f"network must be 'mlp' or 'egnn', got {network!r}")
        if network == "egnn" and not particles:
            raise ValueError(f"network='egnn' needs a particle target (n_particles, spatial_dim); "
                             f"{target_name(target)!r} has none")
        if layers is None:
            layers = 3 if network == "egnn" else 2
        if score_clip is not None and not score_clip > 0:
            raise ValueError(f"score_clip must be > 0 or None, got {score_clip}")
        self.target, self.dim = target, int(dim)
        self.dtype = _as_dtype(dtype)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.T, self.num_steps = float(T), int(num_steps)
        self.batch_size, self.paths_per_refresh = int(batch_size), int(paths_per_refresh)
        self.refresh_every, self.buffer_size = int(refresh_every), int(buffer_size)
        self.score_clip = score_clip
        self.parameterization = parameterization
        self.time_sampling = time_sampling
        symmetry = getattr(target, "random_symmetry", None)
        if symmetrize and not callable(symmetry):
            raise ValueError(f"symmetrize=True needs a target with random_symmetry(x, v, generator=...); "
                             f"{target_name(target)!r} has none")
        self.symmetry = symmetry if (symmetrize or symmetrize is None) and callable(symmetry) else None
        self.eval_samples, self.eval_batch_size = int(eval_samples), int(eval_batch_size)
        self.seed = int(seed)
        self.schedule = GeometricSchedule(float(sigma_min), float(sigma_max), self.T)
        self.reference = BrownianReference(self.schedule)
        # sigma(t)^2 grows geometrically, so the controlled drift sigma^2 grad g is stiffest at
        # t = T: a grid dense at the end (t_k = T (1 - (1 - k/N)^p)) keeps Euler stable there
        if grid_power == 1.0:
            self.times = uniform_grid(self.T, self.num_steps, dtype=self.dtype, device=self.device)
        else:
            self.times = power_grid(self.T, self.num_steps, grid_power, dense_at="end", dtype=self.dtype,
                                    device=self.device)
        self.var_T = float(self.schedule.cumulative(self.T))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if network == "egnn":
                self.control = EGNN(target.n_particles, target.spatial_dim, hidden=hidden, layers=layers, T=self.T)
            else:
                self.control = FourierMLP(self.dim, hidden=hidden, layers=layers, T=self.T, zero_init=True)
            if grad_feature is None:
                grad_feature = parameterization == "adjoint"
            if grad_feature:
                if parameterization != "adjoint":
                    raise ValueError("grad_feature=True needs parameterization='adjoint'")
                self.control = _WithGradFeature(self.control, TimeScale(1, hidden=hidden, layers=layers, T=self.T,
                                                                        init=0.0), self.terminal_cost_grad)
            self.control = self.control.to(device=self.device, dtype=self.dtype)
        self.generator = torch.Generator(device=self.device).manual_seed(2 * self.seed)
        self.eval_generator = torch.Generator(device=self.device).manual_seed(2 * self.seed + 1)
        self._buf_x = torch.empty(0, self.dim, dtype=self.dtype, device=self.device)
        self._buf_g = torch.empty(0, self.dim, dtype=self.dtype, device=self.device)
        fingerprint = {"sampler": self.name, "target": target_name(target), "dim": self.dim,
                       "hidden": int(hidden), "layers": int(layers), "dtype": str(self.dtype),
                       "parameterization": parameterization, "symmetrize": self.symmetry is not None,
                       "grad_feature": bool(grad_feature), **({"network": network} if network != "mlp" else {})}
        self.network = network
        self.trainer = Trainer(
            {"control": self.control}, self._step, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip,
            generators={"train": self.generator, "eval": self.eval_generator},
            evaluate=lambda: self.estimate_log_z(self.eval_samples), eval_every=eval_every,
            checkpoint_every=checkpoint_every, checkpoint_path=checkpoint_path,
            fingerprint=fingerprint, name=self.name)

    # --- pieces ---------------------------------------------------------------------
    def _time_at_variance_fraction(self, frac: Tensor) -> Tensor:
        """t with nu_t = frac * nu_T under the geometric schedule (nu_t = s(t)^2 - s_min^2)."""
        s_min, log_ratio = self.schedule.sigma_min, math.log(self.schedule.sigma_max / self.schedule.sigma_min)
        return self.T * torch.log1p(frac * self.var_T / s_min ** 2) / (2 * log_ratio)

    def _u(self, x: Tensor, t: Tensor) -> Tensor:
        """The control u(x, t), Tensor[B, dim] (t: scalar or Tensor[B])."""
        if self.parameterization == "control":
            return self.control(x, t)
        t = torch.as_tensor(t, dtype=self.dtype, device=self.device)
        sigma = self.schedule.sqrt(t).to(self.dtype)
        return -(sigma[:, None] if sigma.ndim else sigma) * self.control(x, t)

    def _simulate(self, n: int, generator: torch.Generator, log_densities: bool = False):
        x0 = torch.zeros(n, self.dim, dtype=self.dtype, device=self.device)
        return integrate(self.reference, x0, self.times, self._u, scheme="exact", generator=generator,
                         log_densities=log_densities, keep_path=False, keep_steps=False)

    def terminal_cost_grad(self, x: Tensor) -> Tensor:
        """grad g(x) = -grad log p~(x) - x / nu_T, per-sample norm clipped at ``score_clip``. [B, dim]."""
        _, score = log_prob_and_grad(self.target, x)
        grad = -score - x / self.var_T
        if self.score_clip is not None:
            norm = grad.norm(dim=-1, keepdim=True)
            grad = grad * (self.score_clip / norm).clamp(max=1.0)
        return grad

    @torch.no_grad()
    def _refresh(self) -> None:
        x1 = self._simulate(self.paths_per_refresh, self.generator).final
        g = self.terminal_cost_grad(x1)
        self._buf_x = torch.cat([self._buf_x, x1])[-self.buffer_size:]
        self._buf_g = torch.cat([self._buf_g, g])[-self.buffer_size:]

    def _step(self, iteration: int) -> dict:
        if iteration % self.refresh_every == 0 or self._buf_x.shape[0] == 0:
            self._refresh()
        B = self.batch_size
        idx = torch.randint(0, self._buf_x.shape[0], (B,), generator=self.generator, device=self.device)
        x1, grad = self._buf_x[idx], self._buf_g[idx]
        if self.symmetry is not None:  # the tilted path measure shares the target's symmetries
            x1, grad = self.symmetry(x1, grad, generator=self.generator)
        # lean adjoint of a zero-drift base: grad g(X_T) at every time
        adjoint = constant_lean_adjoint(grad, 1)[0]
        u = torch.rand(B, generator=self.generator, dtype=self.dtype, device=self.device)
        if self.time_sampling == "variance":
            t = self._time_at_variance_fraction(u)
        else:
            t = u * self.T
        t = t.clamp(min=1e-3 * self.T, max=self.T * (1 - 1e-3))  # bridge is degenerate at the ends
        var_t = self.schedule.cumulative(t).to(self.dtype)
        xt = brownian_bridge(x1, var_t, torch.as_tensor(self.var_T, dtype=self.dtype),
                             generator=self.generator)
        if self.parameterization == "adjoint":
            loss = (self.control(xt, t) - adjoint).pow(2).sum(-1).mean()
        else:
            sigma = self.schedule.sqrt(t).to(self.dtype)[:, None]
            loss = (self.control(xt, t) + sigma * adjoint).pow(2).sum(-1).mean()
        return {"loss": loss / self.dim}

    # --- public API -------------------------------------------------------------------
    def fit(self, iterations: int, progress: bool = True) -> History:
        """Train for ``iterations`` gradient steps; returns the cumulative ``History``."""
        return self.trainer.fit(iterations, progress=progress)

    @property
    def history(self) -> History:
        return self.trainer.history

    @torch.no_grad()
    def log_weights(self, num_samples: int, *, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """Fresh paths: (X_N Tensor[n, dim], log w Tensor[n])."""
        generator = self.eval_generator if generator is None else generator
        xs, lws = [], []
        for i in range(0, int(num_samples), self.eval_batch_size):
            n = min(self.eval_batch_size, int(num_samples) - i)
            tr = self._simulate(n, generator, log_densities=True)
            xs.append(tr.final)
            lws.append(checked_log_prob(self.target, tr.final) + tr.log_path_ratio)
        return torch.cat(xs), torch.cat(lws)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n samples X_N of the learned sampler, Tensor[n, dim] (not reweighted)."""
        out = []
        for i in range(0, int(n), self.eval_batch_size):
            out.append(self._simulate(min(self.eval_batch_size, int(n) - i), self.eval_generator).final)
        return torch.cat(out)

    def estimate_log_z(self, num_samples: int = 2000, progress: bool = False) -> LogZEstimate:
        """Importance-weighted log Z, stderr, ELBO and ESS from ``num_samples`` fresh paths."""
        if int(num_samples) != num_samples or num_samples < 2:
            raise ValueError(f"num_samples must be an integer >= 2, got {num_samples!r}")
        _, log_w = self.log_weights(num_samples)
        return estimate_from_log_weights(log_w)

    def save(self, path: str) -> None:
        """Checkpoint (networks, optimizer, RNG, history). The replay buffer is not saved."""
        self.trainer.save(path)

    def load(self, path: str) -> None:
        self.trainer.load(path)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target={target_name(self.target)!r}, dim={self.dim}, "
                f"schedule={self.schedule!r}, num_steps={self.num_steps})")


register("adjoint_sampling", AdjointSampling)
