"""Particle energies: DW-4 (4 particles in 2-D) and LJ-13 (13 particles in 3-D), with their metrics.

Definitions (REFERENCE.md; Köhler et al. 2020, iDEM jarridrb/DEM):
- DW-n: E = 1/(2 tau) sum_{i<j} [a (d_ij - d0) + b (d_ij - d0)^2 + c (d_ij - d0)^4],
  a = 0, b = -4, c = 0.9, d0 = 4, tau = 1.
- LJ-n: E = eps * energy_factor * sum_{i != j} [(r_m/d_ij)^12 - 2 (r_m/d_ij)^6]
  + oscillator_scale * 1/2 sum_i |x_i - x_bar|^2, eps = r_m = 1, energy_factor = 1 (iDEM:
  ORDERED pairs; 0.5 gives the unordered-pair convention of the EACF papers).

Both energies are translation invariant, so exp(-E) is not normalizable on R^{n d}. The
papers work on the zero center-of-mass subspace. Here ``log_prob`` adds a Gaussian restraint
on the center of mass, -n |x_bar|^2 / (2 com_std^2), which makes the density proper in R^{n d}
(so every logz sampler can run on it) and changes log Z only by the known constant
``com_log_z = d/2 log(2 pi com_std^2)``: log Z_subspace = log Z - com_log_z. Metrics are taken
after removing the center of mass. ``com_std=None`` gives the bare (improper) density.

Metrics: ``sample_w2`` (exact optimal transport between sample sets, POT),
``interatomic_distances`` and ``plot_particle_metrics``; the energy W2 is
``logz.bench.metrics.energy_histogram_w2(x, y, target.potential)``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from logz._random import log_uniform
from logz.targets.base import BaseTarget, check_input


def remove_com(x: Tensor, n_particles: int, spatial_dim: int) -> Tensor:
    """Subtract each configuration's center of mass. x: Tensor[B, n d] -> Tensor[B, n d]."""
    xs = x.reshape(x.shape[0], n_particles, spatial_dim)
    return (xs - xs.mean(1, keepdim=True)).reshape(x.shape)


def pair_distances(x: Tensor, n_particles: int, spatial_dim: int) -> Tensor:
    """Distances d_ij for i < j: Tensor[B, n d] -> Tensor[B, n (n-1) / 2]."""
    xs = x.reshape(x.shape[0], n_particles, spatial_dim)
    i, j = torch.triu_indices(n_particles, n_particles, 1, device=x.device)
    diff = xs[:, i] - xs[:, j]
    # the epsilon keeps the gradient finite when two particles coincide
    return torch.sqrt((diff ** 2).sum(-1) + 1e-12)


interatomic_distances = pair_distances


class ParticleSystem(BaseTarget):
    """Base class: ``n_particles`` in ``spatial_dim`` dimensions, energy ``energy_fn``; see module doc."""

    def __init__(self, n_particles: int, spatial_dim: int, temperature: float = 1.0,
                 com_std: Optional[float] = 1.0, name: Optional[str] = None, init_std: float = 1.0):
        super().__init__(n_particles * spatial_dim, log_Z=None, name=name, init_std=init_std)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if com_std is not None and not com_std > 0:
            raise ValueError(f"com_std must be > 0 or None, got {com_std}")
        self.n_particles, self.spatial_dim = int(n_particles), int(spatial_dim)
        self.temperature = float(temperature)
        self.com_std = None if com_std is None else float(com_std)
        self.com_log_z = 0.0 if com_std is None else 0.5 * spatial_dim * math.log(2 * math.pi * com_std ** 2)

    def potential(self, x: Tensor) -> Tensor:
        """The physical energy E(x) (translation invariant), Tensor[B]."""
        raise NotImplementedError

    def log_prob(self, x: Tensor) -> Tensor:
        """-E(x)/tau, minus the center-of-mass restraint when ``com_std`` is set. Tensor[B]."""
        check_input(self, x)
        lp = -self.potential(x) / self.temperature
        if self.com_std is not None:
            com = x.reshape(x.shape[0], self.n_particles, self.spatial_dim).mean(1)
            lp = lp - 0.5 * self.n_particles * (com ** 2).sum(-1) / self.com_std ** 2
        return lp

    def remove_com(self, x: Tensor) -> Tensor:
        return remove_com(x, self.n_particles, self.spatial_dim)

    def random_symmetry(self, *tensors: Tensor, generator: Optional[torch.Generator] = None) -> tuple[Tensor, ...]:
        """Apply one random symmetry of the density per row to every tensor alike: a Haar-random
        orthogonal map of space (rotation or reflection, about the origin) and a random
        permutation of the particles. Both leave log_prob unchanged (the pair energies depend
        on distances only, the restraint on |x_bar|), and they act linearly, so a gradient
        transforms like a position: ``random_symmetry(x, grad_log_prob(x))`` gives (x', its
        gradient). Tensors [B, n d] -> tuple of Tensors [B, n d]."""
        B, n, d = tensors[0].shape[0], self.n_particles, self.spatial_dim
        ref = tensors[0]
        gauss = torch.randn(B, d, d, generator=generator, dtype=ref.dtype, device=ref.device)
        q, r = torch.linalg.qr(gauss)
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # Haar (Mezzadri 2007)
        perm = torch.argsort(torch.rand(B, n, generator=generator, device=ref.device), dim=1)
        out = []
        for v in tensors:
            vs = v.reshape(B, n, d)
            vs = torch.gather(vs, 1, perm[:, :, None].expand(B, n, d))
            out.append((vs @ q.transpose(-1, -2)).reshape(B, n * d))
        return tuple(out)

    def distances(self, x: Tensor) -> Tensor:
        return pair_distances(x, self.n_particles, self.spatial_dim)


class MultiDoubleWell(ParticleSystem):
    """DW-n pair potential (default DW-4: 4 particles in 2-D, a=0, b=-4, c=0.9, d0=4, tau=1)."""

    def __init__(self, n_particles: int = 4, spatial_dim: int = 2, a: float = 0.0, b: float = -4.0,
                 c: float = 0.9, d0: float = 4.0, temperature: float = 1.0, com_std: Optional[float] = 1.0,
                 name: Optional[str] = None):
        super().__init__(n_particles, spatial_dim, temperature, com_std,
                         name or f"dw{n_particles}", init_std=2.0)
        self.a, self.b, self.c, self.d0 = float(a), float(b), float(c), float(d0)

    def potential(self, x: Tensor) -> Tensor:
        r = self.distances(x) - self.d0
        # the 1/(2 tau) of the definition: 1/2 here, 1/tau in log_prob
        return 0.5 * (self.a * r + self.b * r ** 2 + self.c * r ** 4).sum(-1)


class LennardJones(ParticleSystem):
    """LJ-n cluster with a harmonic restraint to its center (default LJ-13 in 3-D, iDEM convention)."""

    def __init__(self, n_particles: int = 13, spatial_dim: int = 3, eps: float = 1.0, rm: float = 1.0,
                 energy_factor: float = 1.0, oscillator_scale: float = 1.0, temperature: float = 1.0,
                 com_std: Optional[float] = 1.0, name: Optional[str] = None):
        super().__init__(n_particles, spatial_dim, temperature, com_std,
                         name or f"lj{n_particles}", init_std=1.0)
        self.eps, self.rm = float(eps), float(rm)
        self.energy_factor, self.oscillator_scale = float(energy_factor), float(oscillator_scale)

    def potential(self, x: Tensor) -> Tensor:
        d = self.distances(x)
        inv6 = (self.rm / d) ** 6
        # unordered pairs counted twice = ordered pairs (iDEM, energy_factor 1)
        lj = 2.0 * self.energy_factor * self.eps * (inv6 ** 2 - 2 * inv6).sum(-1)
        osc = 0.5 * (self.remove_com(x) ** 2).sum(-1)
        return lj + self.oscillator_scale * osc


def dw4(**kwargs) -> MultiDoubleWell:
    return MultiDoubleWell(4, 2, **kwargs)


def lj13(**kwargs) -> LennardJones:
    return LennardJones(13, 3, **kwargs)


# --- metrics ------------------------------------------------------------
def sample_w2(x: Tensor, y: Tensor, n_particles: Optional[int] = None,
              spatial_dim: Optional[int] = None) -> float:
    """Exact W2 between two equal-weight sample sets (POT ``emd2``), after removing the
    center of mass when the particle layout is given. x: Tensor[n, D], y: Tensor[m, D]."""
    import numpy as np
    import ot

    if n_particles is not None:
        x, y = remove_com(x, n_particles, spatial_dim), remove_com(y, n_particles, spatial_dim)
    a = x.detach().double().cpu().numpy()
    b = y.detach().double().cpu().numpy()
    cost = ot.dist(a, b)  # squared Euclidean
    w = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost, numItermax=1_000_000)
    return float(math.sqrt(max(w, 0.0)))


def plot_particle_metrics(target: ParticleSystem, samples: dict, path: str, bins: int = 80) -> str:
    """Interatomic-distance and energy histograms for named sample sets {name: Tensor[n, D]},
    written to ``path`` (PNG, Agg)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    ax_d, ax_e = fig.subplots(1, 2)
    for name, x in samples.items():
        x = x.detach().double().cpu()
        ax_d.hist(target.distances(x).reshape(-1).numpy(), bins=bins, density=True, histtype="step", label=name)
        e = target.potential(x)
        e = e[torch.isfinite(e)]
        ax_e.hist(e.numpy(), bins=bins, density=True, histtype="step", label=name)
    ax_d.set_xlabel("interatomic distance")
    ax_e.set_xlabel("energy")
    ax_d.legend()
    fig.suptitle(target.name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def mala_reference(target: ParticleSystem, n: int, steps: int = 2000, step_size: float = 1e-3,
                   init: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                   burn_in: Optional[int] = None, target_acceptance: float = 0.6) -> tuple[Tensor, float]:
    """Reference samples by Metropolis-adjusted Langevin on ``n`` parallel chains (float64).

    Each chain adapts its own step size during the first ``burn_in`` steps (default: half of
    ``steps``) toward ``target_acceptance``, then keeps it fixed, so every chain is a valid
    MALA chain afterwards. Per-chain steps matter on particle energies: a chain started with
    two particles far apart sees gradients of 10^4 and rejects every proposal of a common
    step size, staying stuck at an energy of thousands, and one such chain dominates an
    energy-histogram W2 of the whole set.

    Returns (samples Tensor[n, D] with the center of mass removed, mean acceptance rate after
    burn-in). Chains start from ``init`` or target.init_std * N(0, I).
    """
    from logz.targets.base import log_prob_and_grad

    steps = int(steps)
    burn_in = steps // 2 if burn_in is None else int(burn_in)
    if not 0 <= burn_in < steps:
        raise ValueError(f"need 0 <= burn_in < steps, got burn_in={burn_in}, steps={steps}")
    if not 0 < target_acceptance < 1:
        raise ValueError(f"target_acceptance must be in (0, 1), got {target_acceptance}")
    x = init.double().clone() if init is not None else target.init_std * torch.randn(
        n, target.dim, generator=generator, dtype=torch.float64)
    h = torch.full((x.shape[0], 1), float(step_size), dtype=torch.float64)
    lp, g = log_prob_and_grad(target, x)
    acc = 0.0
    for k in range(steps):
        prop = x + h * g + torch.sqrt(2 * h) * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        lp_p, g_p = log_prob_and_grad(target, prop)
        fwd = -((prop - x - h * g) ** 2).sum(-1) / (4 * h[:, 0])
        bwd = -((x - prop - h * g_p) ** 2).sum(-1) / (4 * h[:, 0])
        log_alpha = torch.nan_to_num(lp_p - lp + bwd - fwd, nan=-math.inf)
        accept = log_uniform(torch.rand(x.shape[0], generator=generator, dtype=torch.float64)) < log_alpha
        x = torch.where(accept[:, None], prop, x)
        lp = torch.where(accept, lp_p, lp)
        g = torch.where(accept[:, None], g_p, g)
        if k < burn_in:  # Robbins-Monro on each chain's log step, on its acceptance probability
            a = log_alpha.clamp(max=0).exp()
            h = h * torch.exp(0.1 * (a - target_acceptance))[:, None]
        else:
            acc += float(accept.double().mean())
    return target.remove_com(x), acc / (steps - burn_in)
