"""Samplers: learned (PIS, DDS, DGFS, ...) and classical baselines (SMC/AIS), in one table.

Every sampler is constructed as ``get(name, target, **config)`` and follows the contract of
``logz.samplers.base.Sampler``: ``fit(iterations) -> History``, ``sample(n)`` and
``estimate_log_z(num_samples) -> LogZEstimate``; learned ones also ``log_weights``, ``save``
and ``load``. ``TABLE`` says, for each name, what builds it (a class, imported on first use,
with its default configuration), whether it learns, what it is a variant of, and one line of
description (``logz samplers`` prints it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from logz.samplers.estimators import LogZEstimate, estimate_from_log_weights


@dataclass(frozen=True)
class Entry:
    """One registered sampler.

    Attributes:
        name: the registry name.
        factory: ``factory(target, **config)``, or "module:attribute" imported on first use.
        kind: "learned" (trains, checkpoints) or "classical" (nothing to train).
        description: one line for ``logz samplers``.
        variant_of: the sampler this one is a configuration of (``dgfs_lv`` is ``dgfs`` with a
            learned variance): reports list it after that sampler and compare it with that
            sampler's published figures.
        family: "path" (PIS-type: KL / VarGrad on a reference), "gfn" (off-policy GFlowNet
            objectives: dt, lr_policy, lr_flow), "adjoint" or "classical": which budget
            settings apply (``logz.bench.budgets``).
        defaults: configuration applied before the caller's.
        calibration: where the study lives that supports this sampler's error bar (z-scores
            over many seeds, ``logz calibrate``), or None: its estimates then say that no study
            backs their error bar.
        calibration_scope: what that study covers, in words ``logz run`` prints beside it
            ("at defaults": seeds of the whole method; a learned sampler calibrated with
            ``--train-once`` says "given a trained model").
        calibration_targets: the targets on which the study supports the error bar (None: the
            claim is made for every target); on any other ``logz run`` says no study backs it.
    """

    name: str
    factory: Union[str, Callable[..., Any]]
    kind: str
    description: str
    variant_of: Optional[str] = None
    family: Optional[str] = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    calibration: Optional[str] = None
    calibration_scope: str = "at defaults"
    calibration_targets: Optional[tuple[str, ...]] = None

    def calibrated_on(self, target: str) -> bool:
        """Whether a calibration study supports this sampler's error bar on ``target``."""
        return self.calibration is not None and (self.calibration_targets is None or
                                                 target in self.calibration_targets)

    def resolve(self) -> Callable[..., Any]:
        """The factory itself (a "module:attribute" string is imported here)."""
        if isinstance(self.factory, str):
            module, attr = self.factory.split(":")
            return getattr(importlib.import_module(module), attr)
        return self.factory

    def build(self, target, **config):
        factory = self.resolve()
        merged = dict(self.defaults)
        for key, value in config.items():  # a group given as a mapping extends the default group
            default = merged.get(key)
            merged[key] = {**default, **value} if isinstance(default, Mapping) and isinstance(value, Mapping) else value
        return factory(target, **merged)


#: what SCLD's calibration studies cover (results/calibration/scld-*; logz calibrate --train-once)
SCLD_CALIBRATION_SCOPE = ("given a trained model (50 estimate seeds of one model at the sequential bench "
                          "budget; Many-Well-32 and gmm9 with the estimates' current 8 x refresh, Funnel-10 "
                          "with the earlier 1 x; not the spread over training runs)")


TABLE: dict[str, Entry] = {e.name: e for e in [
    Entry("pis", "logz.samplers.pis:PIS", "learned", family="path",
          description="Path Integral Sampler: Brownian reference from 0, PIS-Grad control, KL or VarGrad"),
    Entry("dds", "logz.samplers.dds:DDS", "learned", family="path",
          description="Denoising Diffusion Sampler: PIS's objectives on a variance-preserving OU reference"),
    Entry("dgfs", "logz.samplers.dgfs:DGFS", "learned", family="gfn",
          description="Diffusion Generative Flow Sampler: sub-trajectory balance with a learned log-flow"),
    Entry("dgfs_lv", "logz.samplers.dgfs:DGFS", "learned", variant_of="dgfs", family="gfn",
          defaults={"network": {"learned_variance": 4.0}},
          description="DGFS with a learned per-dimension policy variance (gfn-diffusion's, range 4)"),
    Entry("tb", "logz.samplers.dgfs:DGFS", "learned", family="gfn", defaults={"loss": "tb"},
          description="trajectory balance with a learned log Z, on DGFS's process and off-policy paths"),
    Entry("adjoint_sampling", "logz.samplers.adjoint_sampling:AdjointSampling", "learned", family="adjoint",
          description="Adjoint Sampling: reciprocal adjoint matching from a replay buffer (energy-efficient)"),
    Entry("cmcd", "logz.samplers.cmcd:CMCD", "learned", family="path",
          description="Controlled Monte Carlo Diffusions: annealed Langevin + learned control, log-variance or KL"),
    Entry("scld", "logz.samplers.scld:SCLD", "learned", family="path", calibration="results/calibration",
          calibration_scope=SCLD_CALIBRATION_SCOPE, calibration_targets=("funnel", "gmm9", "manywell"),
          description="Sequential Controlled Langevin Diffusions: CMCD's path as SMC (resampling, SMC's moves), replay buffer"),
    Entry("smc", "logz.samplers.smc:SMC", "classical", family="classical", calibration="results/calibration",
          description="adaptive SMC on the geometric path from a defensive Gaussian/t reference (baseline)"),
    Entry("importance", "logz.samplers.importance:ImportanceSampler", "classical", family="classical",
          calibration="results/calibration", calibration_targets=("ionosphere", "sonar"),
          description="adaptive importance sampling: Student-t proposal from the Laplace fit, refitted to "
                      "weighted moments (unimodal targets, GLM evidence)"),
    Entry("ais", "logz.samplers.smc:AIS", "classical", family="classical",
          description="annealed importance sampling: SMC's ladder and moves without resampling (baseline)"),
]}


def register(name: str, factory: Callable, *, variant_of: Optional[str] = None, kind: str = "learned",
             description: str = "", family: Optional[str] = None) -> None:
    """Add (or replace) ``factory(target, **config)`` under ``name`` in ``TABLE``."""
    if kind not in ("learned", "classical"):
        raise ValueError(f"kind must be 'learned' or 'classical', got {kind!r}")
    TABLE[name] = Entry(name, factory, kind, description, variant_of, family)


def unregister(name: str) -> None:
    """Remove ``name`` from ``TABLE`` (a no-op if absent)."""
    TABLE.pop(name, None)


def entry(name: str) -> Entry:
    """The table entry of ``name`` (ValueError listing the valid names otherwise)."""
    if name not in TABLE:
        raise ValueError(f"unknown sampler {name!r}; valid names: {', '.join(sorted(TABLE))}")
    return TABLE[name]


def variant_of(name: str) -> Optional[str]:
    """The sampler ``name`` is a variant of, or None (also for unknown names)."""
    e = TABLE.get(name)
    return None if e is None else e.variant_of


def names() -> list[str]:
    """Names of the registered samplers."""
    return sorted(TABLE)


def get(name: str, target, **config):
    """Construct the sampler ``name`` for ``target`` with its configuration. Keys
    ``"group.field"`` (the CLI's ``--config network.hidden=32``) reach a configuration group."""
    from logz.samplers.config import dotted

    return entry(name).build(target, **dotted(config))


__all__ = ["Entry", "LogZEstimate", "TABLE", "entry", "estimate_from_log_weights", "get", "names", "register",
           "unregister", "variant_of"]
