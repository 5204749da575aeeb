"""The target contract and the checks every sampler runs on a target's output.

A target is any object with ``dim: int`` and ``log_prob(x) -> Tensor[B]`` for
``x: Tensor[B, dim]`` (unnormalized, differentiable). Optional attributes:
``log_Z: float | None`` (exact), ``sample(n, generator=None) -> Tensor[n, dim]``
(exact samples), ``name: str`` and ``init_std: float`` (a scale hint that
samplers use for their reference Gaussian when the user gives none).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Protocol, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Target(Protocol):
    dim: int

    def log_prob(self, x: Tensor) -> Tensor:  # pragma: no cover - protocol
        ...


def target_name(target) -> str:
    return getattr(target, "name", None) or type(target).__name__


class BaseTarget:
    """Convenience base class: stores ``dim``, ``log_Z``, ``name``, ``init_std``.

    Subclasses implement ``log_prob`` and, where exact samples exist, ``sample``.
    """

    has_exact_samples = False

    def __init__(self, dim: int, log_Z: Optional[float] = None, name: Optional[str] = None,
                 init_std: float = 1.0):
        if int(dim) != dim or dim < 1:
            raise ValueError(f"target dim must be a positive integer, got {dim!r}")
        self.dim = int(dim)
        self.log_Z = None if log_Z is None else float(log_Z)
        self.name = name or type(self).__name__.lower()
        self.init_std = float(init_std)

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        raise NotImplementedError(f"target {self.name!r} has no exact sampler")

    # Optional: ``log_prob_and_grad(x) -> (Tensor[B], Tensor[B, dim])``, the log-density and
    # its gradient in closed form (torch ops, so still differentiable in x). Samplers call it
    # through ``logz.targets.base.log_prob_and_grad`` instead of an autograd pass per step
    # (about a fifth of a PIS / DGFS iteration on Funnel-10). Tests check it against autograd.

    def energy(self, x: Tensor) -> Tensor:
        """E(x) = -log_prob(x), shape [B]."""
        return -self.log_prob(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, log_Z={self.log_Z})"


def check_input(target, x: Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` has shape [B, target.dim]."""
    if x.ndim != 2 or x.shape[-1] != target.dim:
        raise ValueError(
            f"target {target_name(target)!r} expects x of shape [B, {target.dim}], got {tuple(x.shape)}")


def _checked_shape(target, x: Tensor, out) -> None:
    if not isinstance(out, Tensor):
        raise ValueError(f"target {target_name(target)!r}: log_prob must return a torch.Tensor, "
                         f"got {type(out).__name__}")
    if out.shape != (x.shape[0],):
        raise ValueError(
            f"target {target_name(target)!r}: log_prob returned shape {tuple(out.shape)} for input of shape "
            f"{tuple(x.shape)}; expected [{x.shape[0]}] (one value per row)")


def _raise_if_bad_values(target, x: Tensor, out: Tensor) -> None:
    """The full (slower) check of ``checked_log_prob``, with the message naming the row."""
    bad = torch.isnan(out) | (out == math.inf)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"target {target_name(target)!r}: log_prob returned {out[i].item()} at input row {i} "
            f"(x[{i}] = {x[i].detach().cpu().tolist()[:8]}{'...' if x.shape[1] > 8 else ''}); "
            f"{int(bad.sum())} of {x.shape[0]} values are NaN or +inf")


def checked_log_prob(target, x: Tensor) -> Tensor:
    """``target.log_prob(x)`` with its output validated.

    Raises ``ValueError`` naming the target if the output is not shaped [B],
    or contains NaN or +inf (``-inf`` is allowed: zero density).

    Args:
        x: Tensor[B, dim].
    Returns:
        Tensor[B].
    """
    out = target.log_prob(x)
    _checked_shape(target, x, out)
    # samplers call this on every step: one comparison and one reduction on the fast path
    # (NaN and +inf both fail `< inf`; -inf passes), the diagnosis only on failure
    if not bool((out < math.inf).all()):
        _raise_if_bad_values(target, x, out)
    return out


def log_prob_and_grad(target, x: Tensor, create_graph: bool = False,
                      invalid: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Validated log-density and its gradient in x.

    Args:
        x: Tensor[B, dim]; need not require grad.
        create_graph: keep the graph of the gradient (for losses that
            differentiate through the score).
        invalid: a 0-dim bool tensor on x's device to DEFER the value checks: instead of
            reading the values on the host (a device synchronisation, which a CUDA time
            loop must avoid), ``invalid |= (NaN or +inf in log_prob, or non-finite gradient)``
            is updated in place; the caller checks it once, after its loop.
    Returns:
        (log_prob Tensor[B], grad Tensor[B, dim]). Raises ``ValueError`` naming the
        target if log_prob is NaN or +inf (as ``checked_log_prob``), is not
        differentiable in x, or the gradient is not finite.
    """
    analytic = getattr(target, "log_prob_and_grad", None)
    if callable(analytic):
        # the target's closed-form gradient (``BaseTarget.log_prob_and_grad``): no autograd
        # pass per call; with create_graph its torch ops stay differentiable in x
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            lp, grad = analytic(x if create_graph else x.detach())
        _checked_shape(target, x, lp)
        if grad.shape != x.shape:
            raise ValueError(f"target {target_name(target)!r}: log_prob_and_grad returned a gradient of "
                             f"shape {tuple(grad.shape)} for x of shape {tuple(x.shape)}")
        total = lp.sum()
        if invalid is None and not float(total.detach()) < math.inf:
            _raise_if_bad_values(target, x, lp)
    else:
        with torch.enable_grad():
            xg = x if (x.requires_grad and create_graph) else x.detach().requires_grad_(True)
            lp = target.log_prob(xg)
            _checked_shape(target, x, lp)
            # the sum is the autograd root and the fast values check: NaN or +inf anywhere in lp
            # make it NaN or +inf (-inf alone passes); a finite sum that overflows passes the
            # full check
            total = lp.sum()
            if invalid is None and not float(total.detach()) < math.inf:
                _raise_if_bad_values(target, x, lp)
            if not lp.requires_grad:
                raise ValueError(
                    f"target {target_name(target)!r}: log_prob is not differentiable in x (its output has "
                    f"no autograd graph); this sampler needs gradients. Write log_prob with torch "
                    f"operations.")
            (grad,) = torch.autograd.grad(total, xg, create_graph=create_graph)
    if invalid is not None:
        invalid |= ~(total.detach() < math.inf) | ~torch.isfinite(grad.detach().sum())
    # likewise one reduction for the gradient (isfinite(grad).all() is several ops); a sum that
    # only overflows is told apart by the full check
    elif not math.isfinite(float(grad.detach().sum())):
        bad_rows = (~torch.isfinite(grad)).any(-1)
        if bool(bad_rows.any()):
            i = int(bad_rows.nonzero()[0, 0])
            raise ValueError(
                f"target {target_name(target)!r}: gradient of log_prob is not finite at input row {i} "
                f"(x[{i}] = {x[i].detach().cpu().tolist()[:8]})")
    if not create_graph:
        lp, grad = lp.detach(), grad.detach()
    return lp, grad


LogProbFn = Callable[[Tensor], Tensor]
