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


_OTHER_DTYPE = {torch.float32: torch.float64, torch.float64: torch.float32}

MIN_ROWS_ALL_ZERO = 8
"""A batch of at least this many distinct rows that all have log p = -inf means the sampler is
looking where the target has no mass: an error naming ``init_std`` (fewer can be bad luck;
identical rows, e.g. a diffusion's start at the origin, are one point)."""


def _dtype_hint(target, x: Tensor, fn: Callable[[Tensor], Tensor]) -> str:
    """If ``fn`` (the target's log-density) failed on x because it computes in the other
    floating dtype, say so and how to fix it; else ""."""
    other = _OTHER_DTYPE.get(x.dtype)
    if other is None:
        return ""
    try:
        with torch.no_grad():
            fn(x.detach()[:2].to(other))
    except Exception:  # noqa: BLE001 - not a dtype problem (or not only one)
        return ""
    short = str(other).replace("torch.", "")
    return (f"; it runs in {other} but the sampler works in {x.dtype}: construct the sampler with "
            f"dtype={other} (CLI: --config dtype={short}), or make log_prob follow x.dtype "
            f"(e.g. cast its parameters with .to(x.dtype))")


def call_log_prob(target, x: Tensor, fn: Optional[Callable[[Tensor], Tensor]] = None) -> Tensor:
    """``fn(x)`` (default ``target.log_prob``) in the caller's dtype: the working dtype is
    x's, a floating output in another dtype is cast to it (differentiably). Anything the
    function raises other than ``ValueError`` becomes a ``ValueError`` naming the target; when
    the cause is that it computes in the other floating dtype, the message names both dtypes
    and the fix (``dtype=`` on the sampler)."""
    fn = fn or target.log_prob
    try:
        out = fn(x)
    except ValueError:
        raise
    except Exception as err:  # noqa: BLE001 - user code: explain, never a bare internal error
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        hint = _dtype_hint(target, x, fn)
        raise ValueError(f"target {target_name(target)!r}: log_prob raised {type(err).__name__} "
                         f"on input of shape {tuple(x.shape)} and dtype {x.dtype}: {first}{hint}") from err
    if isinstance(out, Tensor) and out.dtype != x.dtype and x.is_floating_point():
        if out.is_complex():
            raise ValueError(f"target {target_name(target)!r}: log_prob returned a complex tensor "
                             f"({out.dtype}); it must be real")
        out = out.to(x.dtype)
    return out


def _raise_if_all_zero(target, x: Tensor, out: Tensor) -> None:
    if (x.shape[0] >= MIN_ROWS_ALL_ZERO and bool((out == -math.inf).all())
            and torch.unique(x.detach(), dim=0).shape[0] >= MIN_ROWS_ALL_ZERO):
        spread = float(x.detach().abs().max())
        raise ValueError(
            f"target {target_name(target)!r}: log_prob is -inf (zero density) at all {x.shape[0]} points "
            f"the sampler evaluated (|x| <= {spread:.3g}): its reference distribution misses the "
            f"target's support. Set init_std (on the target, e.g. from_log_prob(..., init_std=...), or "
            f"the sampler's init_std=) to the scale of the region where log_prob is finite, or shift "
            f"the target so that region contains the origin")


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

    The output is cast to x's dtype (the sampler's working dtype). Raises
    ``ValueError`` naming the target if the output is not shaped [B], contains
    NaN or +inf (``-inf`` is allowed: zero density, but not at every one of
    ``MIN_ROWS_ALL_ZERO`` or more rows: that names ``init_std``), or if log_prob
    itself raises (see :func:`call_log_prob`).

    Args:
        x: Tensor[B, dim].
    Returns:
        Tensor[B].
    """
    out = call_log_prob(target, x)
    _checked_shape(target, x, out)
    # samplers call this on every step: one reduction and one read on the fast path (NaN and
    # +inf make the sum NaN or +inf; -inf alone makes it -inf), the diagnosis only on failure
    _check_total(target, x, out, float(out.detach().sum()))
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
            lp, grad = call_log_prob(target, x if create_graph else x.detach(),
                                     lambda y: _cast_pair(analytic(y), y.dtype))
        _checked_shape(target, x, lp)
        if grad.shape != x.shape:
            raise ValueError(f"target {target_name(target)!r}: log_prob_and_grad returned a gradient of "
                             f"shape {tuple(grad.shape)} for x of shape {tuple(x.shape)}")
        total = lp.sum()
        if invalid is None:
            _check_total(target, x, lp, float(total.detach()))
    else:
        with torch.enable_grad():
            xg = x if (x.requires_grad and create_graph) else x.detach().requires_grad_(True)
            lp = call_log_prob(target, xg)
            _checked_shape(target, x, lp)
            # the sum is the autograd root and the fast values check: NaN or +inf anywhere in lp
            # make it NaN or +inf (-inf alone passes); a finite sum that overflows passes the
            # full check
            total = lp.sum()
            if invalid is None:
                _check_total(target, x, lp, float(total.detach()))
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


def _cast_pair(pair, dtype: torch.dtype):
    """A target's (log_prob, grad) pair with floating tensors in ``dtype``."""
    if isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(t, Tensor) for t in pair):
        return tuple(t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t for t in pair)
    raise ValueError(f"log_prob_and_grad must return a (Tensor[B], Tensor[B, dim]) pair, "
                     f"got {type(pair).__name__}")


def _check_total(target, x: Tensor, lp: Tensor, total: float) -> None:
    """The value checks of ``checked_log_prob`` given lp's sum, read once."""
    if not total < math.inf:
        _raise_if_bad_values(target, x, lp)
    if total == -math.inf:
        _raise_if_all_zero(target, x, lp)


LogProbFn = Callable[[Tensor], Tensor]
