"""Samplers: learned (PIS, DDS, DGFS, ...) and classical baselines (SMC/AIS).

Every sampler is constructed as ``Sampler(target, **config)`` and has ``fit(iterations)``,
``sample(n)`` and ``estimate_log_z(num_samples) -> LogZEstimate``.
"""

from __future__ import annotations

from typing import Callable, Optional

from logz.samplers.estimators import LogZEstimate, estimate_from_log_weights

_REGISTRY: dict[str, Callable] = {}
_VARIANT_OF: dict[str, str] = {}


def register(name: str, factory: Callable, *, variant_of: Optional[str] = None) -> None:
    """Register ``factory(target, **config)`` under ``name``.

    ``variant_of``: the registered sampler this one is a configuration of (``dgfs_lv`` is
    ``dgfs`` with a learned variance): reports list it after that sampler and compare it with
    that sampler's published figures.
    """
    _REGISTRY[name] = factory
    if variant_of is not None:
        _VARIANT_OF[name] = variant_of
    else:
        _VARIANT_OF.pop(name, None)


def variant_of(name: str) -> Optional[str]:
    """The sampler ``name`` is a variant of (``register(..., variant_of=)``), or None."""
    _load_builtin()
    return _VARIANT_OF.get(name)


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


__all__ = ["LogZEstimate", "estimate_from_log_weights", "get", "names", "register", "variant_of"]
