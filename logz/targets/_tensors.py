"""Small tensor helpers shared by the target modules (private).

Targets keep their parameters as float64 master copies on the CPU and cast
them lazily to the dtype/device of the input, caching one copy per
``(dtype, device)`` so repeated ``log_prob`` calls pay no conversion cost.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

Device = Union[str, torch.device, None]


class ParamCache:
    """float64 master copies of named parameters, cast and cached per (dtype, device).

    Example::

        p = ParamCache(mean=torch.zeros(3))
        p.like(x)["mean"]        # mean with x's dtype and device
        p.master["mean"]         # the float64 CPU original
    """

    def __init__(self, **params: Union[Tensor, float, list]):
        self.master: dict[str, Tensor] = {
            k: torch.as_tensor(v, dtype=torch.float64).detach().clone().cpu() for k, v in params.items()}
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, Tensor]] = {}

    def get(self, dtype: torch.dtype, device: Device = None) -> dict[str, Tensor]:
        """All parameters cast to ``dtype`` on ``device`` (cached)."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        key = (dtype, dev)
        if key not in self._cache:
            self._cache[key] = {k: v.to(dtype=dtype, device=dev) for k, v in self.master.items()}
        return self._cache[key]

    def like(self, x: Tensor) -> dict[str, Tensor]:
        """All parameters with the dtype and device of ``x``."""
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return self.get(dtype, x.device)


def rng_device(generator: Optional[torch.Generator]) -> torch.device:
    """The device random numbers are drawn on: the generator's, else the CPU."""
    return generator.device if generator is not None else torch.device("cpu")


def finish_samples(x: Tensor, dtype: Optional[torch.dtype], device: Device) -> Tensor:
    """Cast float64 samples to the requested output dtype (float32 default) and device."""
    return x.to(dtype=dtype or torch.float32, device=device if device is not None else x.device)


def check_num_samples(n: int) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"number of samples must be a non-negative integer, got {n!r}")
    return int(n)
