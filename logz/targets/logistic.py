"""Bayesian logistic regression posteriors: Ionosphere (d = 35), Sonar (d = 61), or any (X, y).

Model (as in the DDS / Blessing et al. benchmarks): features standardized per
column (mean 0, population std 1; constant columns left at 0), a bias column
of ones prepended, weights θ ∈ R^d with prior N(0, I), labels y ∈ {-1, 1}::

    log p(θ) = log N(θ; 0, I) + Σ_i log σ(y_i · x_iᵀ θ)

(normalized prior, exact Bernoulli likelihood, so Z is the marginal likelihood
of the labels). Exact log Z is unknown (``log_Z = None``).

Data: ``ionosphere.csv`` / ``sonar.csv`` (first column y in {-1, 1} or {0, 1},
header optional) from a user path or ``$LOGZ_DATA_DIR``. Missing files raise
an error naming the path and the variable; there is NO silent synthetic
fallback for the named data sets. :func:`synthetic_logistic` (registry name
``"logistic"``) is the seeded synthetic data set that works anywhere.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from logz.targets._tensors import ParamCache
from logz.targets.base import BaseTarget, check_input
from logz.targets.data import (MalformedDataFile, PathLike, data_line_numbers, file_sha256,
                               read_numeric_csv, resolve_data_file)

ArrayLike = Union[Tensor, np.ndarray, list]
_LOG_2PI = math.log(2 * math.pi)


def standardize_with_bias(X: ArrayLike) -> Tensor:
    """Standardize columns (population std; constant columns -> 0) and prepend a bias column of ones.

    Args:
        X: [n, p] features.
    Returns:
        Tensor[n, p + 1] float64.
    """
    X = torch.as_tensor(np.asarray(X, dtype=np.float64) if not isinstance(X, Tensor) else X,
                        dtype=torch.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"features must be a non-empty 2-D array [n, p], got shape {tuple(X.shape)}")
    std = X.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    Z = (X - X.mean(0)) / std
    return torch.cat([torch.ones(X.shape[0], 1, dtype=torch.float64), Z], dim=1)


def to_pm1(y: ArrayLike) -> Tensor:
    """Labels in {-1, 1} or {0, 1} -> Tensor[n] float64 in {-1, 1} (ValueError otherwise)."""
    y = torch.as_tensor(np.asarray(y, dtype=np.float64) if not isinstance(y, Tensor) else y,
                        dtype=torch.float64).reshape(-1)
    vals = set(torch.unique(y).tolist())
    if vals <= {-1.0, 1.0}:
        return y.clone()
    if vals <= {0.0, 1.0}:
        return 2 * y - 1
    raise ValueError(f"labels must be in {{-1, 1}} or {{0, 1}}, got values {sorted(vals)[:10]}")


def read_classification_csv(path: PathLike) -> tuple[Tensor, Tensor]:
    """Read ``y,x1,...,xp`` rows (header optional) -> (X Tensor[n, p], y Tensor[n] in {-1, 1}).

    Raises:
        MalformedDataFile: naming the file and line of the first malformed row or bad label.
    """
    _, arr = read_numeric_csv(path, min_columns=2)
    y = arr[:, 0]
    pm = np.isin(y, (-1.0, 1.0)).all()
    zo = np.isin(y, (0.0, 1.0)).all()
    if not (pm or zo):
        ok = np.isin(y, (-1.0, 1.0)) if np.isin(y, (-1.0, 1.0)).mean() >= 0.5 else np.isin(y, (0.0, 1.0))
        i = int(np.flatnonzero(~ok)[0])
        line = data_line_numbers(path)[i]
        raise MalformedDataFile(f"{path}, line {line}: label (first column) {y[i]!r} is not in "
                                f"{{-1, 1}} or {{0, 1}}")
    return torch.as_tensor(arr[:, 1:]), to_pm1(y)


class LogisticRegression(BaseTarget):
    """Posterior over weights θ ∈ R^d of Bayesian logistic regression (see module doc).

    Args:
        X: [n, p] raw features (standardized and given a bias column here, so
            d = p + 1), or the already-prepared design matrix if ``standardize=False``.
        y: [n] labels in {-1, 1} or {0, 1}.
        standardize: standardize X and prepend a bias column (default True).
        prior_std: prior N(0, prior_std² I) (1 in the benchmark).
        name, init_std: as in BaseTarget (init_std default 1, the prior scale).

    Attributes:
        design: Tensor[n, d] float64 prepared design matrix. labels: Tensor[n] in {-1, 1}.
        data_path, data_sha256: the file used, if any. log_Z: None.
    """

    def __init__(self, X: ArrayLike, y: ArrayLike, standardize: bool = True, prior_std: float = 1.0,
                 name: Optional[str] = None, init_std: float = 1.0):
        design = standardize_with_bias(X) if standardize else torch.as_tensor(
            np.asarray(X, dtype=np.float64) if not isinstance(X, Tensor) else X, dtype=torch.float64)
        labels = to_pm1(y)
        if design.ndim != 2 or labels.shape[0] != design.shape[0]:
            raise ValueError(f"X and y disagree: X has shape {tuple(design.shape)}, y has "
                             f"{labels.shape[0]} labels")
        if not prior_std > 0:
            raise ValueError(f"prior_std must be > 0, got {prior_std!r}")
        super().__init__(design.shape[1], log_Z=None, name=name or "logistic", init_std=init_std)
        self.design, self.labels = design, labels
        self.prior_std = float(prior_std)
        self.num_data = design.shape[0]
        self.data_path: Optional[Path] = None
        self.data_sha256: Optional[str] = None
        self._const = -0.5 * self.dim * _LOG_2PI - self.dim * math.log(self.prior_std)
        # y_i x_i: the likelihood is Σ_i log σ((y_i x_i)ᵀ θ).
        self._p = ParamCache(signed_design=labels[:, None] * design)

    def log_likelihood(self, theta: Tensor) -> Tensor:
        """Σ_i log σ(y_i x_iᵀ θ).  theta: Tensor[B, d] -> Tensor[B]."""
        return F.logsigmoid(theta @ self._p.like(theta)["signed_design"].T).sum(-1)

    def log_prob(self, theta: Tensor) -> Tensor:
        """log N(θ; 0, prior_std² I) + log-likelihood.  theta: Tensor[B, d] -> Tensor[B]."""
        check_input(self, theta)
        prior = self._const - 0.5 * (theta * theta).sum(-1) / self.prior_std ** 2
        return prior + self.log_likelihood(theta)

    @classmethod
    def from_csv(cls, path: PathLike, name: Optional[str] = None, **kwargs) -> "LogisticRegression":
        """Target from a ``y,x1,...,xp`` CSV file (see :func:`read_classification_csv`)."""
        p = Path(path)
        if not p.is_file():
            resolve_data_file(p.name, p, what=f"logistic regression {name or p.stem!r}")  # raises
        X, y = read_classification_csv(p)
        t = cls(X, y, name=name or p.stem, **kwargs)
        t.data_path, t.data_sha256 = p, file_sha256(p)
        return t

    def __repr__(self) -> str:
        return (f"LogisticRegression(name={self.name!r}, dim={self.dim}, n={self.num_data}, "
                f"data={str(self.data_path) if self.data_path else 'in-memory'})")


def _named(file: str, name: str, expected_dim: int, path: Optional[PathLike], **kwargs) -> LogisticRegression:
    p = resolve_data_file(file, path, what=f"logistic regression data set {name!r}")
    t = LogisticRegression.from_csv(p, name=name, **kwargs)
    if path is None and t.dim != expected_dim:
        raise MalformedDataFile(f"{p}: the {name} data set should give d = {expected_dim} "
                                f"(bias + {expected_dim - 1} features), got d = {t.dim}")
    return t


def ionosphere(path: Optional[PathLike] = None, **kwargs) -> LogisticRegression:
    """Ionosphere (351 × 34 features, d = 35) from ``path`` or ``$LOGZ_DATA_DIR/ionosphere.csv``."""
    return _named("ionosphere.csv", "ionosphere", 35, path, **kwargs)


def sonar(path: Optional[PathLike] = None, **kwargs) -> LogisticRegression:
    """Sonar (208 × 60 features, d = 61) from ``path`` or ``$LOGZ_DATA_DIR/sonar.csv``."""
    return _named("sonar.csv", "sonar", 61, path, **kwargs)


def synthetic_classification(num_data: int = 100, num_features: int = 10, seed: int = 0
                             ) -> tuple[Tensor, Tensor]:
    """Seeded synthetic data: X ~ N(0, I) [n, p]; y ~ Bernoulli(σ(x̃ᵀ θ*)) in {-1, 1}, θ* ~ N(0, I).

    x̃ is the standardized design with bias. Returns (X Tensor[n, p], y Tensor[n]) float64.
    """
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(num_data, num_features, generator=g, dtype=torch.float64)
    theta = torch.randn(num_features + 1, generator=g, dtype=torch.float64)
    p = torch.sigmoid(standardize_with_bias(X) @ theta)
    y = torch.where(torch.rand(num_data, generator=g, dtype=torch.float64) < p, 1.0, -1.0)
    return X, y.double()


def synthetic_logistic(num_data: int = 100, num_features: int = 10, seed: int = 0,
                       name: Optional[str] = None, **kwargs) -> LogisticRegression:
    """Logistic regression on :func:`synthetic_classification` data (d = num_features + 1)."""
    X, y = synthetic_classification(num_data, num_features, seed)
    return LogisticRegression(X, y, name=name or "logistic", **kwargs)


def logistic(X: Optional[ArrayLike] = None, y: Optional[ArrayLike] = None, path: Optional[PathLike] = None,
             num_data: int = 100, num_features: int = 10, seed: int = 0, **kwargs) -> LogisticRegression:
    """Registry factory: on (X, y) if given, else on the CSV ``path``, else the synthetic data set."""
    if (X is None) != (y is None):
        raise ValueError("logistic: pass both X and y, or neither")
    if X is not None:
        if path is not None:
            raise ValueError("logistic: pass either (X, y) or path, not both")
        return LogisticRegression(X, y, **kwargs)
    if path is not None:
        return LogisticRegression.from_csv(path, **kwargs)
    return synthetic_logistic(num_data, num_features, seed, **kwargs)


__all__ = ["LogisticRegression", "ionosphere", "sonar", "logistic", "synthetic_logistic",
           "synthetic_classification", "standardize_with_bias", "to_pm1", "read_classification_csv"]
