"""Wrap any batched log-density callable as a target."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from logz.targets._tensors import Device, check_num_samples, finish_samples
from logz.targets.base import BaseTarget, call_log_prob, check_input

SampleFn = Callable[[int, Optional[torch.Generator]], Tensor]


class CallableTarget(BaseTarget):
    """A target whose ``log_prob`` is a user function.

    Args:
        fn: maps Tensor[B, dim] to Tensor[B]; should be built from torch
            operations so it is differentiable (``checked_log_prob`` and
            ``log_prob_and_grad`` from ``logz.targets.base`` validate it).
        dim: the dimension.
        log_Z: exact log normalizer of exp(fn), if known.
        name: defaults to ``fn.__name__`` (or ``"callable"`` for lambdas).
        init_std: scale hint for samplers' reference Gaussian.
        sample_fn: optional exact sampler ``sample_fn(n, generator) -> Tensor[n, dim]``.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], dim: int, log_Z: Optional[float] = None,
                 name: Optional[str] = None, init_std: float = 1.0,
                 sample_fn: Optional[SampleFn] = None):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        default = getattr(fn, "__name__", None)
        if default in (None, "<lambda>"):
            default = "callable"
        super().__init__(dim, log_Z=log_Z, name=name or default, init_std=init_std)
        self.fn = fn
        self.sample_fn = sample_fn
        self.has_exact_samples = sample_fn is not None

    def log_prob(self, x: Tensor) -> Tensor:
        """x: Tensor[B, dim] -> Tensor[B], in x's dtype (a function computing in the other
        floating dtype is explained: see ``logz.targets.base.call_log_prob``)."""
        check_input(self, x)
        return call_log_prob(self, x, self.fn)

    def sample(self, n: int, generator: Optional[torch.Generator] = None, *,
               dtype: Optional[torch.dtype] = None, device: Device = None) -> Tensor:
        """Exact samples from ``sample_fn``, Tensor[n, dim] (float32 unless ``dtype`` is given)."""
        if self.sample_fn is None:
            return super().sample(n, generator)
        out = self.sample_fn(check_num_samples(n), generator)
        if out.shape != (n, self.dim):
            raise ValueError(f"target {self.name!r}: sample_fn returned shape {tuple(out.shape)}, "
                             f"expected ({n}, {self.dim})")
        return finish_samples(out, dtype, device)


def from_log_prob(fn: Callable[[Tensor], Tensor], dim: int, log_Z: Optional[float] = None,
                  name: Optional[str] = None, init_std: float = 1.0,
                  sample_fn: Optional[SampleFn] = None) -> CallableTarget:
    """Wrap a batched log-density ``fn: Tensor[B, dim] -> Tensor[B]`` as a target."""
    return CallableTarget(fn, dim, log_Z=log_Z, name=name, init_std=init_std, sample_fn=sample_fn)
