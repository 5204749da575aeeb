"""Log-Gaussian Cox process (LGCP) posterior on a grid: the "cox process" / "lgcp" benchmark.

Model (Møller et al. 1998; as in Heng et al. 2020 and the benchmark code of
annealed_flow_transport ``LogGaussianCoxPines`` / Blessing et al. "lgcp"):

- the unit square is cut into ``grid × grid`` bins; bin (i, j) has flat index
  ``i * grid + j`` with i the x-bin and j the y-bin; ``n`` are the point counts
  per bin (a point on the upper/right edge goes into the last bin);
- latent log-intensity x ∈ R^d, d = grid², with GP prior N(μ0 1, K),
  K[m, n] = σ² exp(-‖b_m - b_n‖ / (grid β)), b = integer bin coordinates
  (equivalently ‖Δ‖/β between bin centres in the unit square),
  σ² = 1.91, β = 1/33, μ0 = log 126 - σ²/2;
- Poisson likelihood per bin with area a = 1/d:
  log L(x) = Σ_i [x_i n_i - a exp(x_i)].

Unnormalized log-density, exactly as the reference code writes it (the
constant Σ_i [n_i log a - log n_i!] of the Poisson pmf is left out; it is
stored as ``poisson_log_normalizer``: add it to log Z for the full marginal
likelihood of the counts)::

    log p(x) = log N(x; μ0, K) + Σ_i [x_i n_i - a exp(x_i)]

Whitened parameterisation (``whitened=True``): x = μ0 + L z with K = L Lᵀ and
    log p_w(z) = log N(z; 0, I) + log L(μ0 + L z) = log p(μ0 + L z) + Σ log L_ii,
which has the same normalizer Z. The Cholesky factor is computed once.

Exact log Z is unknown (``log_Z = None``): see ``logz.bench.reference`` for a
long-SMC reference value.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from logz.targets._tensors import ParamCache
from logz.targets.base import BaseTarget, check_input
from logz.targets.data import (DATA_DIR_ENV, MalformedDataFile, PathLike, data_dir, data_line_numbers,
                               file_sha256, find_data_file, read_numeric_csv, resolve_data_file)

SIGNAL_VARIANCE = 1.91
BETA = 1.0 / 33.0
NUM_PINES = 126
PINES_FILE = "pines.csv"
_LOG_2PI = math.log(2 * math.pi)


def read_points(path: PathLike) -> np.ndarray:
    """Points of a planar pattern from a CSV: columns ``x,y`` or ``index,x,y`` (header optional).

    Returns:
        float64 array [n, 2] in the unit square.
    Raises:
        MalformedDataFile: bad lines, or a point outside [0, 1]² (naming its line).
    """
    _, arr = read_numeric_csv(path, min_columns=2)
    if arr.shape[1] not in (2, 3):
        raise MalformedDataFile(f"{path}: expected 2 columns (x,y) or 3 (index,x,y), got {arr.shape[1]}")
    pts = arr[:, -2:]
    bad = ~((pts >= 0) & (pts <= 1)).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        line = data_line_numbers(path)[i]
        raise MalformedDataFile(f"{path}, line {line}: point {pts[i].tolist()} is outside the unit square "
                                f"[0, 1]² (rescale the coordinates first)")
    return pts


def bin_counts(points: np.ndarray, grid: int) -> Tensor:
    """Counts per bin on a ``grid × grid`` partition of [0, 1]², flat index ``i * grid + j``.

    Args:
        points: array [n, 2] in the unit square.
    Returns:
        Tensor[grid²] float64. Points on the upper edge go into the last bin.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    idx = np.clip(np.floor(pts * grid).astype(np.int64), 0, grid - 1)
    flat = idx[:, 0] * grid + idx[:, 1]
    return torch.as_tensor(np.bincount(flat, minlength=grid * grid), dtype=torch.float64)


def grid_gram(grid: int, signal_variance: float = SIGNAL_VARIANCE, beta: float = BETA) -> Tensor:
    """GP prior covariance K[m, n] = σ² exp(-‖b_m - b_n‖ / (grid β)) on integer bin coordinates.

    Returns:
        Tensor[grid², grid²] float64.
    """
    ij = torch.arange(grid, dtype=torch.float64)
    coords = torch.cartesian_prod(ij, ij)  # [d, 2], row k = (k // grid, k % grid)
    dist = torch.cdist(coords, coords)
    return signal_variance * torch.exp(-dist / (grid * beta))


def synthetic_points(grid: int, seed: int = 0, signal_variance: float = SIGNAL_VARIANCE,
                     beta: float = BETA, mean: Optional[float] = None) -> tuple[np.ndarray, Tensor]:
    """A point pattern drawn from the LGCP model itself (seeded), for use without data.

    x ~ N(μ0, K) on the grid, n_i ~ Poisson(a exp(x_i)), points uniform within their bins.

    Returns:
        (points float64 array [n, 2], latent field Tensor[grid²] float64).
    """
    g = torch.Generator().manual_seed(int(seed))
    mu0 = math.log(NUM_PINES) - 0.5 * signal_variance if mean is None else float(mean)
    chol = torch.linalg.cholesky(grid_gram(grid, signal_variance, beta))
    d = grid * grid
    x = mu0 + chol @ torch.randn(d, generator=g, dtype=torch.float64)
    counts = torch.poisson(torch.exp(x) / d, generator=g).long()
    bins = torch.repeat_interleave(torch.arange(d), counts)
    corner = torch.stack([bins // grid, bins % grid], -1).double()
    pts = (corner + torch.rand(corner.shape, generator=g, dtype=torch.float64)) / grid
    return pts.numpy(), x


class LGCP(BaseTarget):
    """Log-Gaussian Cox process posterior on a ``grid × grid`` lattice (d = grid²).

    Args:
        path: CSV of points (``x,y`` or ``index,x,y``) in the unit square. If None,
            ``data`` decides.
        grid: bins per side (40 in the benchmark: d = 1600; small grids for tests).
        whitened: parameterise by z with x = μ0 + L z (prior N(0, I) on z).
        data: with no ``path``: ``"auto"`` reads ``$LOGZ_DATA_DIR/pines.csv`` if it
            exists, else falls back (with a warning) to the synthetic pattern;
            ``"pines"`` requires that file (clear error if missing);
            ``"synthetic"`` always uses the seeded synthetic pattern.
        seed: seed of the synthetic pattern.
        signal_variance, beta, mean: σ², β, μ0 (defaults: 1.91, 1/33, log 126 - σ²/2).
        name: default ``"lgcp"`` for data, ``"lgcp_synthetic"`` for the synthetic pattern.
        init_std: scale hint; default sqrt(μ0² + σ²) (root second moment of the
            prior about the origin) unwhitened, 1 whitened.

    Attributes:
        counts: Tensor[d] float64 counts per bin. points: array [n, 2].
        is_synthetic: whether the pattern is synthetic. data_path, data_sha256: the
            file used (None if synthetic). mean, bin_area, signal_variance, beta.
        cholesky: Tensor[d, d] float64 lower factor of K. half_log_det: Σ log L_ii.
        poisson_log_normalizer: Σ_i [n_i log a - log n_i!] (left out of log_prob).
        log_Z: None (unknown).
    """

    def __init__(self, path: Optional[PathLike] = None, grid: int = 40, whitened: bool = False,
                 data: str = "auto", seed: int = 0, signal_variance: float = SIGNAL_VARIANCE,
                 beta: float = BETA, mean: Optional[float] = None, name: Optional[str] = None,
                 init_std: Optional[float] = None):
        if int(grid) != grid or grid < 1:
            raise ValueError(f"LGCP grid must be a positive integer, got {grid!r}")
        if data not in ("auto", "pines", "synthetic"):
            raise ValueError(f"LGCP data must be 'auto', 'pines' or 'synthetic', got {data!r}")
        if path is not None and data == "synthetic":
            raise ValueError("LGCP: pass either path=... or data='synthetic', not both")
        if not (signal_variance > 0 and beta > 0):
            raise ValueError(f"LGCP needs signal_variance > 0 and beta > 0, got {signal_variance}, {beta}")
        grid = int(grid)
        self.grid = grid
        self.signal_variance, self.beta = float(signal_variance), float(beta)
        self.mean = math.log(NUM_PINES) - 0.5 * self.signal_variance if mean is None else float(mean)
        self.whitened = bool(whitened)
        self.seed = int(seed)

        file: Optional[Path] = None
        if path is not None or data == "pines":
            file = resolve_data_file(PINES_FILE, path, what="LGCP point pattern")
        elif data == "auto":
            file = find_data_file(PINES_FILE)
            if file is None:
                where = (f"{DATA_DIR_ENV} is not set" if data_dir() is None
                         else f"{data_dir() / PINES_FILE} does not exist")
                warnings.warn(f"LGCP: no pines data ({where}); using a synthetic point pattern drawn "
                              f"from the model (seed={self.seed}), named 'lgcp_synthetic'. Pass "
                              f"data='synthetic' to silence this, or data='pines' to require the file.",
                              UserWarning, stacklevel=2)
        self.is_synthetic = file is None
        self.data_path = file
        if file is None:
            self.points, self.synthetic_latent = synthetic_points(grid, self.seed, self.signal_variance,
                                                                  self.beta, self.mean)
            self.data_sha256 = None
        else:
            self.points, self.synthetic_latent = read_points(file), None
            self.data_sha256 = file_sha256(file)

        d = grid * grid
        self.bin_area = 1.0 / d
        self.counts = bin_counts(self.points, grid)
        gram = grid_gram(grid, self.signal_variance, self.beta)
        chol, info = torch.linalg.cholesky_ex(gram)
        if int(info) != 0:
            raise ValueError(f"LGCP: prior covariance on a {grid}x{grid} grid is not positive definite")
        self.cholesky = chol
        self.half_log_det = float(torch.log(torch.diagonal(chol)).sum())
        self.poisson_log_normalizer = float((self.counts * math.log(self.bin_area)
                                             - torch.lgamma(self.counts + 1)).sum())
        if init_std is None:
            init_std = 1.0 if self.whitened else math.sqrt(self.mean ** 2 + self.signal_variance)
        super().__init__(d, log_Z=None, name=name or ("lgcp_synthetic" if self.is_synthetic else "lgcp"),
                         init_std=init_std)
        self._p = ParamCache(chol=chol, chol_t=chol.T.contiguous(), counts=self.counts)

    # -- parameterisation -------------------------------------------------------------------
    def to_latent(self, z: Tensor) -> Tensor:
        """Whitened z -> log-intensity x = μ0 + L z.  Tensor[B, d] -> Tensor[B, d]."""
        return self.mean + z @ self._p.like(z)["chol_t"]

    def to_white(self, x: Tensor) -> Tensor:
        """Log-intensity x -> z = L⁻¹ (x - μ0).  Tensor[B, d] -> Tensor[B, d]."""
        return torch.linalg.solve_triangular(self._p.like(x)["chol_t"], x - self.mean, upper=True, left=False)

    def log_likelihood(self, latent: Tensor) -> Tensor:
        """Σ_i [x_i n_i - a exp(x_i)] for log-intensities x.  Tensor[B, d] -> Tensor[B]."""
        counts = self._p.like(latent)["counts"]
        return (latent * counts - self.bin_area * torch.exp(latent)).sum(-1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log posterior (whitened or not, see class doc).  x: Tensor[B, d] -> Tensor[B]."""
        check_input(self, x)
        const = -0.5 * self.dim * _LOG_2PI
        if self.whitened:
            return const - 0.5 * (x * x).sum(-1) + self.log_likelihood(self.to_latent(x))
        z = self.to_white(x)
        return const - self.half_log_det - 0.5 * (z * z).sum(-1) + self.log_likelihood(x)

    def sample_prior(self, n: int, generator: Optional[torch.Generator] = None,
                     dtype: torch.dtype = torch.float32) -> Tensor:
        """Exact samples of the GP prior in this target's parameterisation.  -> Tensor[n, d].

        (Not target samples: the posterior has no exact sampler.)
        """
        z = torch.randn(int(n), self.dim, generator=generator, dtype=torch.float64)
        out = z if self.whitened else self.to_latent(z)
        return out.to(dtype)

    def __repr__(self) -> str:
        src = f"synthetic(seed={self.seed})" if self.is_synthetic else str(self.data_path)
        return (f"LGCP(name={self.name!r}, grid={self.grid}, dim={self.dim}, whitened={self.whitened}, "
                f"points={len(self.points)}, data={src})")


def lgcp(path: Optional[PathLike] = None, grid: int = 40, whitened: bool = False, data: str = "auto",
         seed: int = 0, **kwargs) -> LGCP:
    """Registry factory for :class:`LGCP` (same arguments)."""
    return LGCP(path=path, grid=grid, whitened=whitened, data=data, seed=seed, **kwargs)


__all__ = ["LGCP", "lgcp", "read_points", "bin_counts", "grid_gram", "synthetic_points"]
