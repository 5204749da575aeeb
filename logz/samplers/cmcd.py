"""Controlled Monte Carlo Diffusions (CMCD; Vargas, Padhy, Blessing & Nüsken 2023): a
``PathSampler`` whose process is annealed Langevin dynamics plus a learned control.

x_0 ~ pi0 = N(0, s0^2 I) (s0 the target's ``init_std``; optionally the defensive mixture
with a Student-t part, ``reference_mix``) is carried along gamma_beta =
pi0^(1 - beta) p~^beta by the controlled Langevin kernels of ``annealed_langevin`` (forward
with +u, backward with -u at the new point); log w = log p~(x_N) - log pi0(x_0) +
sum_k [log B_k - log F_k]. With u = 0 it is AIS with unadjusted Langevin moves; the control
removes the lag of the particles behind gamma_beta. Objectives: ``"vargrad"`` (log-variance
over detached paths, ``objectives.log_variance``, off-policy with ``exploration``) or
``"kl"`` (``objectives.elbo``). The schedule beta_k (linear / cosine, optionally learned,
monotone) and the step sizes eps_k = step_size s0^2 (optionally learned per step) are the
``Annealing`` module, trained with ``lr_flow``.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import nn

from logz.samplers import annealed_langevin as al
from logz.samplers._common import _check, _cpu_generator
from logz.samplers.base import PathSampler
from logz.samplers.compose import assemble
from logz.samplers.config import Network
from logz.samplers.objectives import Objective
from logz.samplers.objectives.elbo import ELBO
from logz.samplers.objectives.log_variance import LogVariance, LogVarianceConfig
from logz.samplers.smc_reference import DefensiveReference
from logz.sde import BrownianReference, Trajectory, gaussian_noise


class WithAnnealing(Objective):
    """An objective that also trains the sampler's ``Annealing`` (when it has parameters)."""

    def __init__(self, inner: Objective):
        self.inner, self.config, self.name = inner, inner.config, inner.name
        self.differentiate_score, self.on_policy = inner.differentiate_score, inner.on_policy

    def modules(self, s) -> dict[str, nn.Module]:
        learned = any(True for _ in s.annealing.parameters())
        return {**self.inner.modules(s), **({"annealing": s.annealing} if learned else {})}

    def simulate(self, s, iteration: int):
        return self.inner.simulate(s, iteration)

    def loss(self, s, batch):
        return self.inner.loss(s, batch)

    def __repr__(self) -> str:
        return repr(self.inner)


class CMCD(PathSampler):
    """CMCD: ``fit``, ``sample``, ``estimate_log_z``, ``log_weights``, ``save``/``load``.

    Args:
        target: ``dim``, ``log_prob``, ``init_std`` (the scale of pi0 unless ``init_std`` given).
        num_steps: Langevin steps N (128). batch_size: paths per iteration.
        loss: "vargrad" (log-variance, detached paths) or "kl" (reparameterised -ELBO).
        exploration: noise multiplier of the behaviour process ("vargrad" only).
        schedule: "linear" or "cosine" beta_k; learn_schedule: train it (monotone).
        step_size: eps_k / s0^2 (0.01); learn_step_size: train eps_k per step.
        reference_df, reference_mix: pi0 = (1 - mix) N(0, s0^2 I) + mix t_df(0, s0^2 I), SMC's
            defensive reference (``smc_reference``: heavy tails keep p~ / pi0 of finite variance
            on heavier-tailed targets); mix 0 (the default) or df = inf: the Gaussian.
        score_clip: the kernels clip grad log p~ elementwise to +-score_clip (None: 1 / (step_size
            s0), so that one step's score term moves a particle by at most s0 at the initial eps;
            without it a funnel's neck throws particles to |x| ~ 100 and training diverges). The
            default network's output u is clipped to the same bound (``network.out_clip``):
            with the shared default 1e4 a learned control moved Funnel-10 particles by ~90 in
            one step and training stopped on a zero-density batch (3 of 3 seeds).
        control: a custom u(x, t) (nn.Module) instead of the default network (``drift="nn"``:
            the Langevin term already carries the score).
        network, optimiser, evaluation, placement: ``logz.samplers.config`` groups.
    """

    name = "cmcd"
    scheme = "euler"
    on_grid = False  # the kernels call the control as is (no recorded GridControl values)
    losses = ("vargrad", "kl")

    def __init__(self, target, *, num_steps: int = 128, batch_size: int = 256, loss: str = "vargrad",
                 exploration: float = 1.0, schedule: str = "linear", learn_schedule: bool = False,
                 step_size: float = 0.01, learn_step_size: bool = False, init_std: Optional[float] = None,
                 reference_df: float = 3.0, reference_mix: float = 0.0,
                 score_clip: Optional[float] = None, control: Optional[nn.Module] = None, seed: int = 0, network=None,
                 optimiser=None, evaluation=None, placement=None, **flat):
        _check("loss", loss in self.losses, loss, " or ".join(map(repr, self.losses)))
        if loss != "vargrad" and exploration != 1.0:
            raise ValueError(f"exploration != 1 needs the off-policy loss 'vargrad'; {loss!r} is on-policy")
        s0 = getattr(target, "init_std", 1.0) if init_std is None else init_std
        for key, v in (("init_std", s0), ("step_size", step_size), ("score_clip", score_clip)):
            _check(key, (v is None and key == "score_clip") or (isinstance(v, (int, float)) and
                   not isinstance(v, bool) and math.isfinite(v) and v > 0), v, "a finite number > 0")
        s0 = float(s0)
        self.pi0 = DefensiveReference.checked(target.dim, s0, reference_df, reference_mix)
        # default: one step's score term moves a particle by at most s0 (at the initial eps)
        self.score_clip = 1.0 / (step_size * s0) if score_clip is None else float(score_clip)
        self.annealing = al.Annealing(num_steps, step_size * s0 ** 2, schedule, learn_schedule,
                                      learn_step_size)
        inner = self._objective(loss, exploration)
        assemble(self, target, reference=BrownianReference(1.0, init_std=s0), T=1.0, num_steps=num_steps,
                 batch_size=batch_size, objective=WithAnnealing(inner), control=control, seed=seed,
                 groups=(network, optimiser, evaluation, placement), flat=flat,
                 defaults=(Network(drift="nn", out_clip=self.score_clip), None, None, None),
                 fingerprint={"schedule": schedule, "learn_schedule": bool(learn_schedule),
                              "learn_step_size": bool(learn_step_size), "step_size": float(step_size),
                              "score_clip": score_clip, "reference_df": self.pi0.df,
                              "reference_mix": self.pi0.mix},
                 extra_state=lambda: self._extra_state(), load_extra_state=lambda st: self._load_extra_state(st))
        if self.network.log_var_range is not None:
            raise ValueError("learned_variance is not defined for CMCD (the kernels' noise is sqrt(2 eps_k))")
        self.annealing.to(device=self.device, dtype=self.dtype)

    def _objective(self, loss: str, exploration: float) -> Objective:
        return ELBO() if loss == "kl" else LogVariance(LogVarianceConfig(exploration))

    def _extra_state(self) -> dict:
        """Training state outside the modules, checkpointed by the trainer (none for CMCD)."""
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    # --- the process: annealed Langevin kernels instead of the shared core -----------------
    def initial(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x_0 ~ pi0, Tensor[n, dim], and log pi0(x_0), Tensor[n] (the Gaussian pi0 draws as the shell)."""
        if self.pi0.mix == 0:
            return super().initial(n, generator)
        x0 = self.pi0.sample(1, n, generator=generator, shard=self.shard, dtype=self.dtype, device=self.device)[0]
        return x0, self.pi0.log_prob(x0)

    def _kernel_args(self, times=None) -> dict:
        return dict(betas=self.annealing.betas(), eps=self.annealing.step_sizes(), pi0=self.pi0,
                    times=self.times if times is None else times, score=self.kernel_score, control=self.policy())

    def kernel_score(self, x: torch.Tensor) -> torch.Tensor:
        """grad log p~ as the kernels use it: clipped elementwise to +-score_clip (as the reference
        code's ``stable_langevin``, there at 1e3), so a funnel's neck cannot throw a particle out;
        both kernels of a step use the same clipped value, so the weights stay exact."""
        return self.score(x).clamp(-self.score_clip, self.score_clip)

    def particle_log_p(self, x: torch.Tensor) -> torch.Tensor:
        """log p~ of the sequential estimator's particles (``sequential``): validated here
        (ValueError naming the target on NaN / +inf); SCLD maps those to -inf instead."""
        return self.log_reward(x)

    def _simulate(self, x0, times, generator, record_controls, *, keep_path: bool = True,
                  keep_steps: bool = True, log_densities: bool = True, noise_scale: float = 1.0, **kw):
        if times.numel() != self.times.numel():
            raise ValueError(f"{self.name} simulates its whole grid ({self.num_steps} steps), got "
                             f"{times.numel() - 1} steps")
        args = self._kernel_args(times)
        terms = al.simulate(x0, 0, self.num_steps, draw=self.shard.noise(generator), noise_scale=noise_scale,
                            **args)
        zeros = x0.new_zeros(len(x0))
        log_f = log_b = None
        if log_densities:
            log_f, log_b = al.log_densities(terms, args["betas"][1:], args["eps"], self.pi0)
        tr = Trajectory(times=times, final=terms.states[-1], states=terms.states if keep_path else None,
                        log_forward=log_f if keep_steps else None, log_backward=log_b if keep_steps else None,
                        log_forward_sum=zeros if log_f is None else log_f.sum(0),
                        log_backward_sum=zeros if log_b is None else log_b.sum(0),
                        log_initial=zeros, control_cost=zeros)
        return tr, None

    def path_terms(self, states: torch.Tensor, k0: int = 0) -> al.PathTerms:
        """Scores and controls of stored states [M+1, B, d] (x_{k0}..x_{k0+M}), one batched call each."""
        M1, B, d = states.shape
        flat = states.reshape(M1 * B, d)
        t = self.times[k0:k0 + M1].repeat_interleave(B)
        u = self.policy()(flat, t)
        return al.PathTerms(states, self.kernel_score(flat).view(M1, B, d), u.view(M1, B, d))

    def step_log_densities(self, states, k0: int = 0, k1: Optional[int] = None, controls=None):
        """(log F_k, log B_k) of steps k0..k1-1 of stored paths [N+1, B, d] under the current
        control, schedule and step sizes, Tensor[k1-k0, B] each."""
        k1 = self.num_steps if k1 is None else k1
        terms = self.path_terms(states[k0:k1 + 1], k0)
        return al.log_densities(terms, self.annealing.betas()[k0 + 1:k1 + 1],
                                self.annealing.step_sizes()[k0:k1], self.pi0)

    @torch.no_grad()
    def target_log_weights(self, num_samples: int) -> Optional[torch.Tensor]:
        """log w of paths drawn backwards from exact target samples through the B_k (the EUBO's
        integrand), Tensor[n]; None, with a warning, when those paths leave the target's domain
        (non-finite log p~ or score: the uncontrolled backward kernels of an untrained sampler
        on a funnel's neck), so that the estimate itself still comes back."""
        # every rank draws the same samples and paths (eval_generator is seeded alike on all ranks)
        x = self.target.sample(num_samples, generator=_cpu_generator(self.eval_generator)).to(self.device, self.dtype)
        try:
            terms = al.simulate(x, 0, self.num_steps, draw=gaussian_noise(self.eval_generator), backward=True,
                                **self._kernel_args())
            log_f, log_b = al.log_densities(terms, self.annealing.betas()[1:], self.annealing.step_sizes(),
                                            self.pi0)
            log_p0 = self.pi0.log_prob(terms.states[0])
            log_w = self.log_reward(terms.states[-1]) - log_p0 + (log_b - log_f).sum(0)
        except ValueError as err:
            warnings.warn(f"{self.name}: no EUBO, the backward paths from exact samples left the target's "
                          f"domain ({err})", RuntimeWarning, stacklevel=2)
            return None
        if not bool(torch.isfinite(log_w).all()):
            warnings.warn(f"{self.name}: no EUBO, non-finite backward-path weights", RuntimeWarning, stacklevel=2)
            return None
        return log_w


__all__ = ["CMCD", "WithAnnealing"]
