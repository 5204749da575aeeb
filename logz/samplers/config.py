"""Configuration groups of the learned samplers, small frozen dataclasses.

A sampler's constructor takes its own few options directly and the rest in groups:
``network`` (sizes of the default control), ``optimiser`` (Adam), ``evaluation`` (estimates
and checkpoints during ``fit``) and ``placement`` (device, dtype, process split). Each group
is given as an instance, a mapping, or flat keywords (``hidden=32`` for ``network.hidden``);
``logz run --config network.hidden=32`` reaches the same field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, Optional, Union

import torch

from logz.samplers._common import _as_dtype, _check, _is_int


@dataclass(frozen=True)
class Network:
    """The default control: ``GradientDrift`` with ``hidden`` x ``layers`` networks.
    drift: "grad" (PIS-Grad) or "nn"; learned_variance: None, True (= 4) or a log-variance
    range; compile: ``torch.compile`` the per-step trunk (False, True or a mode)."""

    hidden: int = 64
    layers: int = 2
    drift: str = "grad"
    score_grad_clip: float = 1e2
    out_clip: float = 1e4
    learned_variance: Union[bool, float, None] = None
    compile: Union[bool, str] = False

    def validate(self) -> "Network":
        for key in ("hidden", "layers"):
            v = getattr(self, key)
            _check(key, _is_int(v) and v >= 1, v, "an integer >= 1")
        _check("drift", self.drift in ("grad", "nn"), self.drift, "'grad' or 'nn'")
        _check("learned_variance", self.learned_variance in (None, False, True) or
               (isinstance(self.learned_variance, (int, float)) and self.learned_variance > 0),
               self.learned_variance, "None, a bool or a log-variance range > 0")
        _check("compile", self.compile in (False, True) or isinstance(self.compile, str), self.compile,
               "False, True or a torch.compile mode")
        return self

    @property
    def log_var_range(self) -> Optional[float]:
        return 4.0 if self.learned_variance is True else (float(self.learned_variance) if self.learned_variance
                                                         else None)


@dataclass(frozen=True)
class Optimiser:
    """Adam: ``lr`` (the control's), ``lr_flow`` (a learned flow / log Z, where there is one),
    weight decay, gradient-norm clipping (None: off) and a schedule (``training.make_schedule``)."""

    lr: float = 1e-3
    lr_flow: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: Optional[float] = 1.0
    lr_schedule: Any = None

    def validate(self) -> "Optimiser":
        _check("lr_flow", isinstance(self.lr_flow, (int, float)) and self.lr_flow > 0, self.lr_flow, "> 0")
        return self


@dataclass(frozen=True)
class Evaluation:
    """``LogZEstimate`` every ``eval_every`` iterations of ``fit`` (``eval_samples`` paths, in
    batches of ``eval_batch_size``) and checkpoints every ``checkpoint_every`` to ``checkpoint_path``."""

    eval_every: Optional[int] = None
    eval_samples: int = 2000
    eval_batch_size: int = 2000
    checkpoint_every: Optional[int] = None
    checkpoint_path: Optional[str] = None

    def validate(self) -> "Evaluation":
        for key in ("eval_samples", "eval_batch_size"):
            v = getattr(self, key)
            _check(key, _is_int(v) and v >= 2, v, "an integer >= 2")
        return replace(self, eval_samples=int(self.eval_samples), eval_batch_size=int(self.eval_batch_size))


@dataclass(frozen=True)
class Placement:
    """Where and how: ``device``, ``dtype``, ``shard`` (a ``logz.distributed.Shard``; default
    torch.distributed's group when initialised) and ``defer_checks`` (validate the target's values
    on the device, read once per simulation; default on off the CPU)."""

    device: Any = None
    dtype: Union[str, torch.dtype] = torch.float32
    shard: Any = None
    defer_checks: Optional[bool] = None

    def validate(self) -> "Placement":
        return replace(self, dtype=_as_dtype(self.dtype))

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device) if self.device is not None else torch.device("cpu")

    def deferred(self) -> bool:
        return self.torch_device.type != "cpu" if self.defer_checks is None else bool(self.defer_checks)

    def resolved_shard(self):
        from logz.distributed import resolve

        return resolve(self.shard)


GROUPS: dict[str, type] = {"network": Network, "optimiser": Optimiser, "evaluation": Evaluation,
                           "placement": Placement}


def group(cls: type, value, flat: dict, aliases: Optional[Mapping[str, str]] = None, default=None):
    """The ``cls`` group from ``value`` (an instance, a mapping or None) updated by the keys of
    ``flat`` that name its fields (popped; ``aliases`` maps other flat names to fields), validated."""
    base = default if default is not None else cls()
    if isinstance(value, Mapping):
        base = _replace(cls, base, dict(value))
    elif isinstance(value, cls):
        base = value
    elif value is not None:
        raise ValueError(f"{cls.__name__.lower()} must be a {cls.__name__}, a mapping or None, got {value!r}")
    names = {f.name for f in fields(cls)}
    picked = {}
    for key in list(flat):
        field = (aliases or {}).get(key, key)
        if field in names:
            picked[field] = flat.pop(key)
    return _replace(cls, base, picked).validate()


def _replace(cls: type, base, changes: dict):
    unknown = set(changes) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__.lower()} option(s) {sorted(unknown)}; valid: "
                         f"{sorted(f.name for f in fields(cls))}")
    return replace(base, **changes)


def dotted(config: Mapping[str, Any]) -> dict:
    """``{"network.hidden": 8, "seed": 1}`` -> ``{"network": {"hidden": 8}, "seed": 1}`` (the CLI's
    ``--config group.key=value``); a group given both ways is merged."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if "." in key:
            name, field = key.split(".", 1)
            sub = out.setdefault(name, {})
            if not isinstance(sub, dict):
                raise ValueError(f"--config {key}: {name!r} is already given as a whole")
            sub[field] = value
        else:
            out[key] = value
    return out


def reject_unknown(name: str, flat: Mapping[str, Any]) -> None:
    if flat:
        raise TypeError(f"{name} got unexpected option(s) {sorted(flat)}")


__all__ = ["Evaluation", "GROUPS", "Network", "Optimiser", "Placement", "dotted", "group", "reject_unknown"]
