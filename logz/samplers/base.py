"""The sampler contract, and the shell that every path-space sampler is built from.

``Sampler``: what every registered sampler does (``fit``, ``sample``, ``estimate_log_z``);
``LearnedSampler`` adds ``log_weights`` and ``save``/``load``. ``PathSampler`` is a learned
sampler made of three parts:

- a **reference process** (``logz.sde.LinearReference``) on a time grid, with its integration
  scheme ("euler" or the exact-transition "exact");
- a **control** u(x, t) (an ``nn.Module``; a ``TimeConditioned`` one has its time branch
  computed once per simulation);
- an **objective** (``logz.samplers.objectives``): how a training batch is simulated and scored.

The shell owns what they share: simulation on the shared core (``logz.sde.integrate``, noise
from the sampler's ``Shard``), the importance weights log w = log p~(x_N) + sum log P_B -
sum log P_F - log p_0(x_0) of fresh paths, ``estimate_log_z`` (plus the EUBO from exact target
samples, drawn backwards through the reference bridge), training through ``Trainer``
(checkpoints, history) and the data-parallel split of every batch (``logz.distributed``).
PIS, DDS, DGFS, TB, DB, VarGrad, dgfs_lv and Adjoint Sampling are compositions of these parts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from logz.samplers._common import _check, _has_exact_samples, _is_int
from logz.samplers.estimators import LogZEstimate, estimate_from_log_weights, reliability
from logz.samplers.learned_path_smc import learned_path_log_z
from logz.samplers.nets import GridControl, TimeConditioned
from logz.samplers.paths import exact_sample_log_weights, fresh_log_weights
from logz.samplers.sequential import segment_ends
from logz.samplers.smc_result import combine_replicates, replicate_layout
from logz.samplers.training import History, Trainer
from logz.sde import LinearReference, integrate, path_log_densities
from logz.targets.base import checked_log_prob, log_prob_and_grad, target_name


@runtime_checkable
class Sampler(Protocol):
    """What every registered sampler does (SMC and AIS included: their ``fit`` learns nothing
    and returns an empty ``History``)."""

    def fit(self, iterations: int, progress: bool = True) -> History: ...  # pragma: no cover
    def sample(self, n: int) -> Tensor: ...  # pragma: no cover
    def estimate_log_z(self, num_samples: int = 2000, progress: Optional[bool] = None) -> LogZEstimate: ...  # pragma: no cover


@runtime_checkable
class LearnedSampler(Sampler, Protocol):
    """A sampler with trained state: importance weights of fresh samples and checkpoints."""

    def log_weights(self, num_samples: int) -> tuple[Tensor, Tensor]: ...  # pragma: no cover
    def save(self, path: str) -> None: ...  # pragma: no cover
    def load(self, path: str) -> None: ...  # pragma: no cover


class PathSampler:
    """A controlled SDE sampler: reference process + control + objective (module docstring).

    Subclasses only assemble the parts (``_build``); every behaviour lives here or in the
    objective. Attributes set by ``_build``: target, dim, dtype, device, seed, shard, T,
    num_steps, times, reference, scheme, control, objective, batch_size, local_batch_size,
    eval_samples, eval_batch_size, defer_checks, generator, eval_generator, trainer.
    """

    name = "path_sampler"

    def _build(self, target, *, reference: LinearReference, times: Tensor, scheme: str, control: nn.Module,
               objective, batch_size: int, evaluation, placement, seed: int, fingerprint: dict,
               policy=None) -> None:
        """Store the parts, seed the RNG streams and set up the split over processes.
        ``policy``: the drift u(x, t) the SDE sees when it is built on the control module rather
        than being it (Adjoint Sampling's u = -sigma(t) A(x, t)); None: the control itself."""
        self._policy = policy
        self.target, self.dim = target, int(target.dim)
        self.reference, self.times, self.scheme = reference, times, scheme
        self.T, self.num_steps = float(times[-1]), times.numel() - 1
        self.control, self.objective, self.seed = control, objective, int(seed)
        self.dtype, self.device = placement.dtype, placement.torch_device
        self.defer_checks = placement.deferred()
        self._invalid: Optional[Tensor] = None
        self.eval_samples, self.eval_batch_size = evaluation.eval_samples, evaluation.eval_batch_size
        self.generator = torch.Generator(device=self.device).manual_seed(2 * self.seed)
        self.eval_generator = torch.Generator(device=self.device).manual_seed(2 * self.seed + 1)
        self.fingerprint = dict(fingerprint)
        self.shard = placement.resolved_shard()
        # every rank must run the same configuration and seed (checked before any division)
        self.shard.check_same(f"{self.name} configuration", {
            **self.fingerprint, "T": self.T, "num_steps": self.num_steps, "objective": repr(objective),
            "seed": self.seed, "batch_size": batch_size, "reference": repr(reference),
            "eval": (evaluation.eval_samples, evaluation.eval_batch_size)})
        self.batch_size = int(batch_size)
        self.local_batch_size = self.shard.local_size(self.batch_size, "batch_size")
        self.shard.local_size(self.eval_batch_size, "eval_batch_size")

    def _make_trainer(self, modules: dict, lr, optimiser, evaluation, extra_state=None, load_extra_state=None) -> None:
        self.trainer = Trainer(
            modules, self._step, lr=lr, weight_decay=optimiser.weight_decay, grad_clip=optimiser.grad_clip,
            lr_schedule=optimiser.lr_schedule, generators={"train": self.generator, "eval": self.eval_generator},
            evaluate=lambda: self.estimate_log_z(self.eval_samples), eval_every=evaluation.eval_every,
            checkpoint_every=evaluation.checkpoint_every, checkpoint_path=evaluation.checkpoint_path,
            fingerprint=self.fingerprint, name=self.name, extra_state=extra_state,
            load_extra_state=load_extra_state, shard=self.shard)

    # --- the process ------------------------------------------------------------------
    def initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x_0 Tensor[n, dim] and log p_0(x_0) Tensor[n] (0 for the point mass at 0)."""
        if self.reference.init_std == 0:
            x0 = torch.zeros(n, self.dim, dtype=self.dtype, device=self.device)
            return x0, x0.new_zeros(n)
        x0 = self.reference.init_std * self.shard.randn((n, self.dim), generator=generator,
                                                        dtype=self.dtype, device=self.device)
        return x0, self.reference.log_marginal(x0, 0.0)

    def score(self, x: Tensor) -> Tensor:
        """grad log p~(x), validated (ValueError naming the target on NaN/inf); differentiable
        when the objective asks for it (``differentiate_score``)."""
        create_graph = self.objective.differentiate_score and torch.is_grad_enabled() and x.requires_grad
        invalid = self._invalid  # a device flag inside a simulation off the CPU (no host syncs)
        if create_graph:
            return log_prob_and_grad(self.target, x, create_graph=True, invalid=invalid)[1]
        if self.objective.checkpoint_steps is None:
            return log_prob_and_grad(self.target, x, invalid=invalid)[1]
        # a detached score's own small graph must not go through the saved-tensor hooks of
        # gradient checkpointing (they would keep it alive: ~10x the memory, ~10x slower);
        # entering the context costs as much as a few ops, so only when checkpointing
        with torch.autograd.graph.saved_tensors_hooks(_identity, _identity):
            return log_prob_and_grad(self.target, x, invalid=invalid)[1]

    def log_reward(self, x: Tensor) -> Tensor:
        """log p~(x), validated (ValueError naming the target on NaN / +inf)."""
        return checked_log_prob(self.target, x)

    @property
    def on_grid(self) -> bool:
        """The SDE's drift is the control itself and ``TimeConditioned``: simulations compute its
        time branch once per grid and can record its values (``GridControl``)."""
        return self._policy is None and isinstance(self.control, TimeConditioned)

    def grid_control(self, times: Tensor, record_controls: bool = False) -> Optional[GridControl]:
        """The control on the grid ``times[:-1]`` with its time branch computed once, or None
        when not ``on_grid`` (the drift is then called as is)."""
        if not self.on_grid:
            return None
        return GridControl(self.control, times[:-1], record_controls=record_controls)

    def policy(self):
        """The control as the SDE sees it: the control module, or the drift built on it."""
        return self.control if self._policy is None else self._policy

    def simulate(self, x0: Tensor, times: Tensor, generator: torch.Generator, *,
                 record_controls: bool = False, **kw) -> tuple:
        """``integrate`` under the control: (Trajectory, the ``GridControl`` used or None).

        With ``defer_checks`` (default off the CPU) the target's values inside the time loop are
        validated on the device and read once, after the loop: no host synchronisation per step."""
        if not self.defer_checks:
            return self._simulate(x0, times, generator, record_controls, **kw)
        self._invalid = torch.zeros((), dtype=torch.bool, device=self.device)
        try:
            out = self._simulate(x0, times, generator, record_controls, **kw)
            if bool(self._invalid):  # the one synchronisation of the simulation
                raise ValueError(f"target {target_name(self.target)!r}: log_prob was NaN or +inf, or its "
                                 f"gradient not finite, during the simulation (checked after the time "
                                 f"loop, defer_checks=True; set defer_checks=False to find the row)")
        finally:
            self._invalid = None
        return out

    def _simulate(self, x0, times, generator, record_controls, **kw) -> tuple:
        control = self.grid_control(times, record_controls)
        tr = integrate(self.reference, x0, times, self.policy() if control is None else control,
                       scheme=self.scheme, noise=self.shard.noise(generator), **kw)
        if control is not None and control.calls != len(times) - 1:
            raise RuntimeError(f"integrate called the control {control.calls} times on "
                               f"{len(times) - 1} steps; GridControl assumes one call per step")
        return tr, control

    def step_log_densities(self, states: Tensor, k0: int = 0, k1: Optional[int] = None,
                           controls=None) -> tuple[Tensor, Tensor]:
        """(log P_F, log P_B) of steps k0..k1-1 of stored paths under the current control,
        Tensor[k1-k0, B] each. ``controls``: the control's values at states[k0:k1] if known."""
        k1 = self.num_steps if k1 is None else k1
        times = self.times[k0:k1 + 1]
        control = None if controls is not None else (self.grid_control(times) or self.policy())
        return path_log_densities(self.reference, states[k0:k1 + 1], times, control, scheme=self.scheme,
                                  controls=controls)

    def rescore(self, states: Tensor, k0: int = 0, k1: Optional[int] = None, controls=None) -> Tensor:
        """sum over steps k0..k1-1 of log P_B - log P_F under the current control, Tensor[B]."""
        log_f, log_b = self.step_log_densities(states, k0, k1, controls)
        return (log_b - log_f).sum(0)

    # --- training -----------------------------------------------------------------------
    def _step(self, iteration: int) -> dict:
        return self.objective.step(self, iteration)

    def fit(self, iterations: int, progress: bool = True) -> History:
        """Train for ``iterations`` more iterations; returns the cumulative ``History``."""
        return self.trainer.fit(iterations, progress=progress)

    @property
    def history(self) -> History:
        return self.trainer.history

    def save(self, path: str) -> None:
        """Checkpoint networks, optimizer, RNG states, iteration and history."""
        self.trainer.save(path)

    def load(self, path: str) -> None:
        """Restore a checkpoint from ``save`` (ValueError if corrupted or mismatched)."""
        self.trainer.load(path)

    # --- estimates ----------------------------------------------------------------------
    def seed_estimates(self, seed: int) -> None:
        """Restart the estimates' noise (``eval_generator``) where a sampler built with
        ``seed=seed`` starts it, leaving the model, the training noise and the iteration as they
        are: independent estimates from one trained model (``logz calibrate --train-once``).
        The estimate streams (2 seed + 1) never meet a training stream (2 seed)."""
        _check("seed", _is_int(seed) and seed >= 0, seed, "an integer >= 0")
        self.eval_generator.manual_seed(2 * int(seed) + 1)

    def log_weights(self, num_samples: int, *, generator: Optional[torch.Generator] = None,
                    progress: Optional[bool] = False) -> tuple[Tensor, Tensor]:
        """Fresh on-policy paths: (x_N Tensor[n, dim], log w Tensor[n]), in batches of
        ``eval_batch_size``. Distributed: each rank simulates its share and every rank returns all n."""
        _check("num_samples", _is_int(num_samples) and num_samples >= 1, num_samples, "an integer >= 1")
        return fresh_log_weights(self, num_samples, self.eval_generator if generator is None else generator,
                                 progress)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n samples x_N ~ the learned sampler, Tensor[n, dim] (not reweighted)."""
        return self.log_weights(n)[0]

    def estimate_log_z(self, num_samples: int = 2000, progress: Optional[bool] = None, *, resample: bool = False,
                       segments: Optional[int] = None, replicates: Optional[int] = None, resample_threshold: float = 0.3,
                       mcmc_steps: int = 0) -> LogZEstimate:
        """Importance-weighted log Z, its standard error, the ELBO and the ESS from
        ``num_samples`` fresh paths; plus the EUBO when the target has exact samples.

        ``resample=True`` (samplers with ``intermediate_log_densities``, e.g. DGFS with a
        learned log-flow): the SMC-corrected estimate instead, sequential importance
        resampling along the learned path (``learned_path_smc``): ``replicates`` independent
        systems of num_samples // replicates particles (None: SMC's calibrated
        ``smc_result.replicates_for(num_samples)``, 40 of 50 at 2000), the path cut into ``segments`` pieces
        (None: min(8, num_steps)), a replicate resampled when its ESS / P falls below
        ``resample_threshold``, ``mcmc_steps`` MALA moves targeting the intermediate density at
        each inner segment end; log Z^ unbiased in Z^, error bar from the replicates."""
        _check("resample", isinstance(resample, bool), resample, "True or False")
        if resample:
            return self._smc_corrected_estimate(num_samples, segments, replicates, resample_threshold, mcmc_steps)
        if segments is not None or mcmc_steps:
            raise ValueError("segments= and mcmc_steps= apply only with resample=True")
        _check("num_samples", _is_int(num_samples) and num_samples >= 2, num_samples, "an integer >= 2")
        _, log_w = self.log_weights(num_samples, progress=progress)
        log_w_target = self.target_log_weights(num_samples) if _has_exact_samples(self.target) else None
        return estimate_from_log_weights(log_w, log_w_target)

    #: whether ``intermediate_log_density(x, k)`` gives log-densities on the grid (log gamma_k,
    #: 0 < k < N), so that ``estimate_log_z(resample=True)`` can run SMC along the path
    intermediate_log_densities: bool = False

    def intermediate_log_density(self, x: Tensor, k: int) -> Tensor:
        """log gamma_k(x) Tensor[B] at grid index 0 < k < N of states x Tensor[B, dim]."""
        raise NotImplementedError(f"{self.name} defines no intermediate log-densities")

    def _smc_corrected_estimate(self, num_samples, segments, replicates, resample_threshold,
                                mcmc_steps) -> LogZEstimate:
        if not self.intermediate_log_densities:
            raise ValueError(f"resample=True needs intermediate log-densities along the path (a learned "
                             f"log-flow: dgfs with loss 'subtb' or 'db'); {self.name} with objective "
                             f"{self.objective!r} has none")
        replicates, particles = replicate_layout(num_samples, replicates)
        _check("resample_threshold", isinstance(resample_threshold, (int, float)) and not isinstance(
            resample_threshold, bool) and 0 <= resample_threshold <= 1, resample_threshold, "in [0, 1]")
        _check("mcmc_steps", _is_int(mcmc_steps) and mcmc_steps >= 0, mcmc_steps, "an integer >= 0")
        ends = segment_ends(self.num_steps, min(8, self.num_steps) if segments is None else segments)
        if self.shard.active:
            raise ValueError("resample=True runs in one process only (its particle systems are not split)")
        result = learned_path_log_z(self, replicates, particles, ends,
                                    resample_threshold=float(resample_threshold), generator=self.eval_generator,
                                    mcmc_steps=int(mcmc_steps))
        est = combine_replicates(result.log_z, result.log_weights)
        if not _has_exact_samples(self.target):
            return est
        # the particles move by the learned kernels only: mass the learned path never reaches is
        # missed by the SMC estimate too; the EUBO of the same path (exact samples) sees it
        lw_t = self.target_log_weights(num_samples)
        eubo_, eubo_se = float(lw_t.mean()), float(lw_t.std() / math.sqrt(lw_t.numel()))
        # log Z^ - EUBO has both spreads: the replicate estimate's is not negligible here
        ok, reason = reliability(est.log_z, None, est.num_samples, eubo_=eubo_,
                                 eubo_stderr=math.hypot(eubo_se, est.stderr))
        return dataclasses.replace(est, eubo=eubo_, reliable=est.reliable and ok,
                                   reason="; ".join(filter(None, [est.reason, reason])))

    def target_log_weights(self, num_samples: int) -> Tensor:
        """log w of paths drawn backwards from exact target samples through the reference
        bridge (the EUBO's integrand), Tensor[n]."""
        return exact_sample_log_weights(self, num_samples)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target={target_name(self.target)!r}, dim={self.dim}, "
                f"T={self.T}, num_steps={self.num_steps}, objective={self.objective!r}, "
                f"reference={self.reference!r}, iteration={self.trainer.iteration})")


def _identity(x: Tensor) -> Tensor:
    return x


__all__ = ["LearnedSampler", "PathSampler", "Sampler"]
