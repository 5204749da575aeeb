"""Samplers: learned (PIS, DDS, DGFS, ...) and classical baselines (SMC/AIS).

Every sampler is constructed as ``Sampler(target, **config)`` and has ``fit(iterations)``,
``sample(n)`` and ``estimate_log_z(num_samples) -> LogZEstimate``.
"""

from __future__ import annotations

from typing import Callable

from logz.samplers.estimators import LogZEstimate, estimate_from_log_weights

_REGISTRY: dict[str, Callable] = {}


def register(name: str, factory: Callable) -> None:
    """Register ``factory(target, **config)`` under ``name``."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    """Names of the registered samplers."""
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str, target, **config):
    """Construct the sampler ``name`` for ``target`` with its configuration."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](target, **config)


_BUILTIN_MODULES = ["logz.samplers.smc", "logz.samplers.pis", "logz.samplers.dds",
                    "logz.samplers.adjoint_sampling", "logz.samplers.dgfs"]


def _load_builtin() -> None:
    import importlib

    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


__all__ = ["LogZEstimate", "estimate_from_log_weights", "get", "names", "register"]
