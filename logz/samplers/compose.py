"""Assembling a ``PathSampler`` from its parts: the checks every composition shares, the
default control (``GradientDrift`` on the sampler's score), the fingerprint its checkpoints
carry, and the trainer over the control and the objective's own modules."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from logz.samplers._common import _check, _is_int
from logz.samplers.config import Evaluation, Network, Optimiser, Placement, group, reject_unknown
from logz.samplers.nets import FourierMLP, GradientDrift
from logz.sde import LinearReference, uniform_grid
from logz.targets.base import target_name


def assemble(sampler, target, *, reference: LinearReference, T: float, num_steps: int, batch_size: int,
             objective, control: Optional[nn.Module], seed: int, groups: tuple, flat: dict,
             defaults: tuple = (None, None, None, None), aliases: Optional[dict] = None,
             fingerprint: Optional[dict] = None, extra_state: Optional[Callable[[], dict]] = None,
             load_extra_state: Optional[Callable[[dict], None]] = None) -> None:
    """Validate, build the control and ``sampler._build`` the shell, then its trainer.

    ``groups``: (network, optimiser, evaluation, placement) as given by the caller; ``flat``:
    the remaining keywords, routed to their group (``aliases``: other flat names of fields);
    ``defaults``: the sampler's own default groups. ``fingerprint``: entries beyond the
    network's that a checkpoint must match.
    """
    dim = getattr(target, "dim", None)
    _check("target.dim", _is_int(dim) and dim >= 1, dim, "a positive integer")
    _check("num_steps", _is_int(num_steps) and num_steps >= 1, num_steps, "an integer >= 1")
    _check("T", isinstance(T, (int, float)) and T > 0, T, "> 0")
    _check("batch_size", _is_int(batch_size) and batch_size >= 2, batch_size, "an integer >= 2")
    _check("seed", _is_int(seed), seed, "an integer")
    flat = dict(flat)
    net, opt, ev, place = (group(cls, value, flat, aliases, default) for cls, value, default in
                           zip((Network, Optimiser, Evaluation, Placement), groups, defaults))
    reject_unknown(type(sampler).__name__, flat)
    if net.log_var_range is not None and control is not None:
        raise ValueError("learned_variance configures the default drift network; a custom control "
                         "learns its noise by returning (u, log_scale) itself")
    device = place.torch_device
    times = uniform_grid(float(T), int(num_steps), dtype=place.dtype, device=device)
    sampler.objective = objective  # the score of the default control reads it
    if control is not None:
        _check("control", isinstance(control, nn.Module), control, "a torch.nn.Module u(x, t)")
        control = control.to(device=device, dtype=place.dtype)
    else:
        with torch.random.fork_rng(devices=[]):  # init from `seed`, global RNG untouched
            torch.manual_seed(int(seed))
            control = GradientDrift(
                int(dim), sampler.score if net.drift == "grad" else None, hidden=net.hidden, layers=net.layers,
                T=float(T), grad_clip=net.score_grad_clip, out_clip=net.out_clip,
                log_var_range=net.log_var_range).to(device=device, dtype=place.dtype)
    if net.compile is not False and isinstance(control, GradientDrift) and isinstance(control.net, FourierMLP):
        control.net.compile_trunk(None if net.compile is True else net.compile)
    fp = {"sampler": sampler.name, "target": target_name(target), "dim": int(dim),
              "hidden": int(net.hidden), "layers": int(net.layers), "drift": net.drift, "dtype": str(place.dtype)}
    if net.log_var_range is not None:
        fp["learned_variance"] = float(net.log_var_range)
    sampler._build(target, reference=reference, times=times, scheme=sampler.scheme, control=control,
                   objective=objective, batch_size=batch_size, evaluation=ev, placement=place, seed=seed,
                   fingerprint=fp)
    sampler.network, sampler.optimiser, sampler.evaluation = net, opt, ev
    sampler.loss = objective.name
    extra = objective.modules(sampler)
    sampler.fingerprint.update(fingerprint or {})
    lr = opt.lr if not extra else {"control": opt.lr, **{k: opt.lr_flow for k in extra}}
    sampler._make_trainer({"control": control, **extra}, lr, opt, ev, extra_state, load_extra_state)


__all__ = ["assemble"]
