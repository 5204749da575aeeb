"""Diffusion Generative Flow Samplers (DGFS; Zhang, Chen, Liu, Courville & Bengio 2023).

The forward process is that of PIS with g = sigma (``pis.py``), from x_0 = 0 on N steps of
size dt (T = N dt):  x_{k+1} = x_k + sigma u(x_k, t_k) dt + sigma sqrt(dt) eps, u the
PIS-Grad drift; the backward kernel P_B is the reference's Brownian bridge (log P_B := 0 on
the first step). Besides the drift DGFS learns a log-flow, parameterised as in the
reference code,

    log F(x, t) = NN_flow(t, x) + (t/T) log R(x) + (1 - t/T) log N(x; 0, sigma^2 max(0.01 T, t) I),

pinned to log R at t = T, NN_flow zero-initialised, and trains both with sub-trajectory
balance (``losses.subtb_loss``): every pair i < j of a path gives a residual, so the
learning signal reaches the drift from short segments, not only through the terminal
reward. ``loss=`` swaps in TB (learned scalar log Z), VarGrad or DB (``losses.GFN_LOSSES``).
``learned_variance=`` lets the drift network also set the per-dimension step noise
(gfn-diffusion's policy; ``dgfs_lv`` in the registry): the fixed sigma sqrt(dt) cannot be
narrower than a narrow target direction (the Funnel's neck) nor wider than a wide one.

DGFS is a ``PathSampler`` composition: Brownian reference (g = sigma, T = N dt) + PIS-Grad
control + a GFlowNet objective (``objectives.subtb`` / ``tb`` / ``db`` / ``log_variance``) trained
on off-policy paths (``behaviour.py``). Paths are detached: training can use a behaviour policy with extra noise (``exploration``,
decaying linearly to 0 over ``exploration_decay_iterations``), and backward paths drawn
through the bridge from a reward-prioritised replay buffer whose states may be refined by
MALA (``replay.py``). The forward paths' drift values are kept, with their graph, from their
own simulation (the drift at x_k under the current parameters is exactly what the simulation
computed, so nothing is re-evaluated); replayed paths are re-scored in one batched call
(``logz.sde.path_log_densities``); the flow net sees all [N, B] non-terminal states in one call.

Estimators (``estimate_log_z``, from ``PathSampler``): importance-weighted log Z, ELBO and ESS from
fresh on-policy paths, EUBO from exact target samples; with ``resample=True`` the SMC-corrected
estimate, the learned log-flow as intermediate densities (``learned_path_smc``, ``docs/smc_corrected.md``); ``learned_log_z`` is log Z (TB) or
log F(0, 0) (flow losses). The reference code takes one Adam step per PATH (a batch of 256
paths = 256 updates per iteration); logz takes one step per batch unless ``minibatches`` asks
for more (``minibatches=batch_size`` is the reference's schedule).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from logz.samplers._common import _check
from logz.samplers.base import PathSampler
from logz.samplers.behaviour import Behaviour, OffPolicyPaths
from logz.samplers.compose import assemble
from logz.samplers.config import Optimiser, group
from logz.samplers.objectives.db import DB
from logz.samplers.objectives.gfn import GFNConfig
from logz.samplers.objectives.log_variance import PathVarGrad
from logz.samplers.objectives.subtb import LearnedFlow, SubTB, SubTBConfig
from logz.samplers.objectives.tb import TB
from logz.samplers.paths import block_draw, bridge_paths
from logz.sde import BrownianReference

LOSSES = ("subtb", "tb", "db", "vargrad")
#: DGFS's optimiser defaults: the reference code's (Adam 1e-4 policy / 1e-3 flow, weight decay 1e-7, no clipping)
DGFS_OPTIMISER = Optimiser(lr=1e-4, lr_flow=1e-3, weight_decay=1e-7, grad_clip=None)


def gfn_objective(loss: str, flow: Optional[nn.Module], config: SubTBConfig):
    """The objective ``loss`` with its options (``config``: SubTB's; TB and VarGrad take the common ones)."""
    _check("loss", loss in LOSSES, loss, f"one of {sorted(LOSSES)}")
    if flow is not None and loss not in ("subtb", "db"):
        raise ValueError(f"flow= is a log-flow network; loss={loss!r} learns no log_flow")
    if loss in ("subtb", "db"):
        return (SubTB if loss == "subtb" else DB)(config, flow)
    return (TB if loss == "tb" else PathVarGrad)(GFNConfig(config.log_reward_min, config.minibatches))


class DGFS(PathSampler):
    """DGFS / TB / DB / VarGrad path sampler: ``fit``, ``sample``, ``estimate_log_z``,
    ``save``/``load``, ``plot``. Defaults are the reference code's (batch 256, N = 100, dt = 0.01,
    sigma = 1, FourierMLP 2 x 64, Adam lr 1e-4 policy / 1e-3 flow, weight decay 1e-7, no clipping).

    Args:
        target: object with ``dim`` and a differentiable ``log_prob``.
        loss: "subtb" (DGFS), "tb", "db" or "vargrad".
        num_steps, dt, sigma: the Euler grid (T = num_steps * dt) and the diffusion.
        batch_size: paths per iteration.
        objective: the objective's options (``objectives.subtb.SubTBConfig``; also as flat keywords):
            subtb_lambda (lambda of the pair weights lambda^(j-i)), subtb_pairs (None: all pairs,
            or a number drawn per iteration, for long N), log_reward_min (log R is clamped below
            at this value; reference: -1e6), minibatches (Adam updates per iteration, each on every
            K-th path; the reference code makes one update per PATH, ``minibatches=batch_size``).
        behaviour: exploration noise and replay (``behaviour.Behaviour``: exploration,
            exploration_decay_iterations, replay, replay_fraction, replay_prioritized,
            rank_weight, local_search, local_search_every, local_search_steps,
            local_search_step_size, target_acceptance; also as flat keywords).
        flow: a custom module ``flow(x Tensor[M, dim], t Tensor[M]) -> Tensor[M]`` giving the
            whole log F (no interpolation added) instead of the default parameterisation.
        control, seed, network, optimiser (``lr_policy`` = optimiser.lr, ``lr_flow``), evaluation,
            placement: as for ``PIS``.
    """

    name = "dgfs"
    scheme = "euler"

    def __init__(self, target, *, loss: str = "subtb", num_steps: int = 100, dt: float = 0.01,
                 sigma: float = 1.0, batch_size: int = 256, objective=None, flow: Optional[nn.Module] = None,
                 behaviour=None, control: Optional[nn.Module] = None, seed: int = 0, network=None,
                 optimiser=None, evaluation=None, placement=None, **flat: Any):
        for key in ("diffusion", "T", "lr", "grad_checkpoint_steps", "differentiate_score"):
            if key in flat:
                raise ValueError(f"DGFS has no {key!r} option (use sigma, dt, num_steps, lr_policy, lr_flow)")
        _check("dt", isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0, dt, "> 0")
        flat = dict(flat)
        options = group(SubTBConfig, objective, flat)
        minibatches = options.minibatches
        _check("minibatches", 1 <= minibatches <= batch_size, minibatches, "an integer in [1, batch_size]")
        behaviour = group(Behaviour, behaviour, flat)
        objective = gfn_objective(loss, flow, options)
        self.sigma, self.dt = float(sigma), float(dt)
        replay = behaviour.replay
        assemble(self, target, reference=BrownianReference(float(sigma)), T=float(num_steps * dt),
                 num_steps=num_steps, batch_size=batch_size, objective=objective, control=control, seed=seed,
                 groups=(network, optimiser, evaluation, placement), flat=flat,
                 defaults=(None, DGFS_OPTIMISER, None, None), aliases={"lr_policy": "lr"},
                 fingerprint={"loss": loss, "sigma": self.sigma, "dt": self.dt, "custom_flow": flow is not None,
                              "replay": bool(replay), **({"minibatches": minibatches} if minibatches > 1 else {})},
                 extra_state=lambda: self.behaviour.state_dict(),
                 load_extra_state=lambda state: self.behaviour.load_state_dict(state))
        if minibatches > 1 and self.shard.active:
            raise ValueError("DGFS minibatches > 1 runs in one process only (distributed training "
                             "averages one update per iteration over ranks)")
        self.shard.check_same("dgfs configuration", {"objective": repr(objective), "behaviour": behaviour})
        self.behaviour = OffPolicyPaths(self, behaviour, self.sigma, self.dt)

    # --- the parts, by the names of their ideas ------------------------------------------------
    @property
    def flow(self) -> Optional[nn.Module]:
        return self.objective.flow if isinstance(self.objective, LearnedFlow) else None

    @property
    def log_z_param(self) -> Optional[nn.Module]:
        return self.objective.log_z if isinstance(self.objective, TB) else None

    @property
    def buffer(self):
        return self.behaviour.buffer

    def noise_scale(self, iteration: int) -> float:
        return self.behaviour.noise_scale(iteration)

    def log_flow(self, states: Tensor, log_reward: Tensor) -> Tensor:
        """log F at every state, Tensor[N+1, B] (``objectives.subtb.LearnedFlow.log_flow``)."""
        return self.objective.log_flow(self, states, log_reward)

    @property
    def intermediate_log_densities(self) -> bool:
        """A learned log-flow (loss "subtb" or "db") gives log-densities along the path:
        ``estimate_log_z(resample=True)`` runs SMC along it (``learned_path_smc``)."""
        return self.flow is not None

    def intermediate_log_density(self, x: Tensor, k: int) -> Tensor:
        """log F(x, t_k) Tensor[B] of states x Tensor[B, dim] at grid index 0 < k < N (log R
        clamped at ``log_reward_min``, as in training)."""
        if self.flow is None:
            raise ValueError(f"loss={self.loss!r} learns no log-flow: no intermediate log-densities")
        return self.objective.log_flow_at(self, x, k, self.objective.log_reward(self, x))

    def _behaviour_paths(self, iteration: int) -> tuple[Tensor, int]:
        with torch.no_grad():
            return self.behaviour.paths(self, iteration)[:2]

    def bridge_paths(self, x_final: Tensor, generator) -> Tensor:
        """Paths ending at x_final Tensor[n, dim], drawn backwards through the reference bridge
        to x_0 = 0: Tensor[N+1, n, dim]."""
        x = x_final.to(self.dtype)
        return bridge_paths(self.reference, self.times, x, block_draw(generator, self.num_steps, x))

    @property
    def learned_log_z(self) -> Optional[float]:
        """The loss's own log Z: the TB parameter or log F(x_0 = 0, t = 0); None for VarGrad."""
        return self.objective.learned_log_z(self)

    def plot(self, path: Optional[str] = None, num_samples: int = 1000):
        """Diagnostics figure (matplotlib ``Figure``, Agg; never shown): loss, log Z curve,
        ESS and, for 2-D targets, samples over the density contours. Saved to ``path`` if given."""
        from logz.samplers.diagnostics import diagnostics_figure

        fig = diagnostics_figure(self, num_samples)
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig

    def __repr__(self) -> str:
        return (f"DGFS(target={self.target!r}, dim={self.dim}, loss={self.loss!r}, num_steps={self.num_steps}, "
                f"dt={self.dt}, sigma={self.sigma}, iteration={self.trainer.iteration})")
