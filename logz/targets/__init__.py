"""Targets: unnormalized log-densities, exact log Z and exact samples where they exist.

Registry::

    logz.targets.names()                      # ['funnel', 'gaussian', 'gmm25', ...]
    logz.targets.get("funnel", dim=10)        # keyword arguments go to the factory
    logz.targets.register("mine", factory)    # factory(**kwargs) -> Target

Adapters: :func:`from_log_prob` (any batched callable) and :func:`from_pyro`
(a Pyro model in unconstrained space).
"""

from __future__ import annotations

from functools import partial

from typing import Callable, Optional, Union

import torch

from logz.targets.base import BaseTarget, Target, check_input, checked_log_prob, log_prob_and_grad
from logz.targets.wrapped import CallableTarget, from_log_prob
from logz.targets.funnel import Funnel
from logz.targets.gaussian import Gaussian
from logz.targets.manywell import ManyWell
from logz.targets.mixture import GaussianMixture, gmm9, gmm25, gmm40, grid_mixture
from logz.targets.pyro_target import PyroTarget, from_pyro
from logz.targets.lgcp import LGCP, lgcp
from logz.targets.logistic import LogisticRegression, ionosphere, logistic, sonar
from logz.targets.particles import LennardJones, MultiDoubleWell, dw4, lj13

TargetFactory = Callable[..., Target]


def _gaussian(dim: int = 2, std: float = 1.0, mean: Union[float, torch.Tensor] = 0.0,
              cov: Optional[torch.Tensor] = None, log_Z: float = 0.0,
              name: Optional[str] = None) -> Gaussian:
    """N(mean, std² I) in ``dim`` dimensions, or N(mean, cov) when ``cov`` is given."""
    if cov is None:
        return Gaussian.isotropic(dim, std=std, mean=mean, log_Z=log_Z, name=name)
    m = torch.as_tensor(mean, dtype=torch.float64)
    if m.ndim == 0:
        m = m.expand(torch.as_tensor(cov).shape[0]).clone()
    return Gaussian(m, cov, log_Z=log_Z, name=name)


_REGISTRY: dict[str, TargetFactory] = {
    "gaussian": _gaussian,
    "gmm9": gmm9,
    "gmm25": gmm25,
    "gmm40": gmm40,
    "funnel": Funnel,
    "manywell": ManyWell,
    # data-backed targets (log_Z unknown; files from a path or $LOGZ_DATA_DIR, see targets/data.py)
    "lgcp": lgcp,
    # the same posterior (same Z, same reference record "lgcp") in whitened coordinates, x = mu0 + L z:
    # its prior is N(0, I), which samplers starting from N(0, s^2 I) need (SCLD: 59 nats low unwhitened)
    "lgcp_whitened": partial(lgcp, whitened=True),
    "ionosphere": ionosphere,
    "sonar": sonar,
    "logistic": logistic,
    "dw4": dw4,
    "lj13": lj13,
}


def names() -> list[str]:
    """Registered target names, sorted."""
    return sorted(_REGISTRY)


def register(name: str, factory: TargetFactory, overwrite: bool = False) -> None:
    """Register ``factory(**kwargs) -> Target`` under ``name`` (ValueError if taken, unless overwrite)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"target name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {type(factory).__name__}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"target {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = factory


def _checked_dim(name: str, dim) -> int:
    """``dim`` as a positive int: ValueError for 0, negatives, non-integers (2.5), bools."""
    if isinstance(dim, bool) or not isinstance(dim, (int, float)) or int(dim) != dim or dim < 1:
        raise ValueError(f"target {name!r}: dim must be a positive integer, got {dim!r}")
    return int(dim)


def get(name: str, **kwargs) -> Target:
    """Build the registered target ``name`` with ``kwargs`` passed to its factory
    (``dim``, when given, must be a positive integer: ValueError otherwise)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown target {name!r}; valid names: {', '.join(names())}")
    if "dim" in kwargs:
        kwargs["dim"] = _checked_dim(name, kwargs["dim"])
    try:
        return _REGISTRY[name](**kwargs)
    except TypeError as err:  # e.g. an argument the factory does not take
        raise ValueError(f"target {name!r}: {err}") from err


__all__ = [
    "Target", "BaseTarget", "check_input", "checked_log_prob", "log_prob_and_grad",
    "Gaussian", "GaussianMixture", "grid_mixture", "gmm9", "gmm25", "gmm40", "Funnel", "ManyWell",
    "MultiDoubleWell", "LennardJones", "dw4", "lj13",
    "CallableTarget", "from_log_prob", "PyroTarget", "from_pyro",
    "LGCP", "LogisticRegression",
    "get", "names", "register",
]
