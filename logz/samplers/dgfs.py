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

Paths are detached: training can use a behaviour policy with extra noise (``exploration``,
decaying linearly to 0 over ``exploration_decay_iterations``), and backward paths drawn
through the bridge from a reward-prioritised replay buffer whose states may be refined by
MALA (``replay.py``). The forward paths' drift values are kept, with their graph, from their
own simulation (the drift at x_k under the current parameters is exactly what the simulation
computed, so nothing is re-evaluated); replayed paths are re-scored in one batched call
(``logz.sde.path_log_densities``); the flow net sees all [N, B] non-terminal states in one call.

Estimators (``estimate_log_z``, from ``PIS``): importance-weighted log Z, ELBO and ESS from
fresh on-policy paths, EUBO from exact target samples; ``learned_log_z`` is log Z (TB) or
log F(0, 0) (flow losses). The reference code takes one Adam step per PATH (a batch of 256
paths = 256 updates per iteration); logz takes one step per batch unless ``minibatches`` asks
for more (``minibatches=batch_size`` is the reference's schedule).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from logz.samplers import losses, register
from logz.samplers.nets import FourierMLP, GridControl, LogZ
from logz.samplers._common import _check, _is_int, _log_mean_exp
from logz.samplers.pis import PIS
from logz.samplers.replay import ReplayBuffer, mala
from logz.samplers.training import Trainer
from logz.sde import path_log_densities, split_control
from logz.sde.reference import gaussian_log_prob
from logz.targets.base import log_prob_and_grad


class DGFS(PIS):
    """DGFS / TB / DB / VarGrad path sampler: ``fit``, ``sample``, ``estimate_log_z``,
    ``save``/``load``, ``plot``. Defaults are the reference code's (batch 256, N = 100, dt = 0.01,
    sigma = 1, FourierMLP 2 x 64, Adam lr 1e-4 policy / 1e-3 flow, weight decay 1e-7, no clipping).

    Args:
        target: object with ``dim`` and a differentiable ``log_prob``.
        loss: "subtb" (DGFS), "tb", "db" or "vargrad".
        subtb_lambda: lambda of the pair weights lambda^(j-i). subtb_pairs: None (all pairs) or
            a number of pairs drawn per iteration (for long N).
        num_steps, dt, sigma: the Euler grid (T = num_steps * dt) and the diffusion.
        hidden, layers: sizes of the drift and flow networks.
        lr_policy, lr_flow: Adam rates of the drift and of the flow net / learned log Z.
        exploration: extra behaviour-policy noise std per step (gfn-diffusion's
            exploration_factor; 0 = on-policy), added in variance to sigma^2 dt.
        exploration_decay_iterations: the extra std decays linearly to 0 over so many
            iterations (None: constant).
        replay: False, True or a capacity: keep forward terminal states in a ``ReplayBuffer``
            (True: 100 batches) and train on ``replay_fraction`` of each batch from it.
        replay_prioritized, rank_weight: the buffer's sampling priority.
        local_search: refine a buffer batch by ``local_search_steps`` MALA steps every
            ``local_search_every`` iterations (needs replay); step size starts at
            ``local_search_step_size`` and adapts to ``target_acceptance``.
        log_reward_min: log R is clamped below at this value in the losses (reference: -1e6).
        minibatches: Adam updates per iteration, each on every ``minibatches``-th path of the
            iteration's (detached) batch; 1: one update on the whole batch. The reference code
            makes one update per PATH (``minibatches=batch_size``): 256 updates per iteration.
        flow: a custom module ``flow(x Tensor[M, dim], t Tensor[M]) -> Tensor[M]`` giving the
            whole log F (no interpolation added) instead of the default parameterisation.
        **config: other ``PIS`` options (drift, control, learned_variance, grad_clip, lr_schedule, eval_every,
            eval_samples, eval_batch_size, checkpoint_every, checkpoint_path, seed, device, dtype,
            score_grad_clip, out_clip).
    """

    name = "dgfs"

    def __init__(self, target, *, loss: str = "subtb", subtb_lambda: float = 2.0,
                 subtb_pairs: Optional[int] = None, num_steps: int = 100, dt: float = 0.01,
                 sigma: float = 1.0, hidden: int = 64, layers: int = 2, lr_policy: float = 1e-4,
                 lr_flow: float = 1e-3, weight_decay: float = 1e-7, batch_size: int = 256,
                 grad_clip: Optional[float] = None, exploration: float = 0.0,
                 exploration_decay_iterations: Optional[int] = None,
                 replay: Union[bool, int] = False, replay_fraction: float = 0.5,
                 replay_prioritized: str = "rank", rank_weight: float = 1e-2,
                 local_search: bool = False, local_search_every: int = 100,
                 local_search_steps: int = 200, local_search_step_size: float = 1e-3,
                 target_acceptance: float = 0.574, log_reward_min: float = -1e6,
                 flow: Optional[nn.Module] = None, minibatches: int = 1, seed: int = 0, **config: Any):
        for key in ("diffusion", "T", "lr", "grad_checkpoint_steps", "differentiate_score"):
            if key in config:
                raise ValueError(f"DGFS has no {key!r} option (use sigma, dt, num_steps, lr_policy, lr_flow)")
        _check("loss", loss in losses.GFN_LOSSES, loss, f"one of {sorted(losses.GFN_LOSSES)}")
        _check("dt", isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0, dt, "> 0")
        _check("num_steps", _is_int(num_steps) and num_steps >= 1, num_steps, "an integer >= 1")
        _check("subtb_lambda", isinstance(subtb_lambda, (int, float)) and subtb_lambda > 0, subtb_lambda, "> 0")
        _check("subtb_pairs", subtb_pairs is None or (_is_int(subtb_pairs) and subtb_pairs >= 1),
               subtb_pairs, "None or an integer >= 1")
        _check("exploration", isinstance(exploration, (int, float)) and exploration >= 0, exploration, ">= 0")
        _check("exploration_decay_iterations", exploration_decay_iterations is None or
               (_is_int(exploration_decay_iterations) and exploration_decay_iterations >= 1),
               exploration_decay_iterations, "None or an integer >= 1")
        _check("replay", isinstance(replay, bool) or (_is_int(replay) and replay >= 1), replay,
               "a bool or a capacity >= 1")
        _check("replay_fraction", isinstance(replay_fraction, (int, float)) and 0 < replay_fraction < 1,
               replay_fraction, "in (0, 1)")
        _check("local_search", not local_search or bool(replay), local_search, "False without replay")
        for key, v in (("local_search_every", local_search_every), ("local_search_steps", local_search_steps)):
            _check(key, _is_int(v) and v >= 1, v, "an integer >= 1")
        _check("local_search_step_size", local_search_step_size > 0, local_search_step_size, "> 0")
        _check("target_acceptance", 0 < target_acceptance < 1, target_acceptance, "in (0, 1)")
        _check("lr_flow", isinstance(lr_flow, (int, float)) and lr_flow > 0, lr_flow, "> 0")
        _check("minibatches", _is_int(minibatches) and 1 <= minibatches <= batch_size, minibatches,
               "an integer in [1, batch_size]")
        super().__init__(target, diffusion=sigma, T=float(num_steps * dt), num_steps=num_steps,
                         hidden=hidden, layers=layers, loss="vargrad", lr=lr_policy, batch_size=batch_size,
                         grad_clip=grad_clip, weight_decay=weight_decay, seed=seed, **config)
        if minibatches > 1 and self.shard.active:
            raise ValueError("DGFS minibatches > 1 runs in one process only (distributed training "
                             "averages one update per iteration over ranks)")
        self.minibatches = int(minibatches)
        self.loss, self.sigma, self.dt = loss, float(sigma), float(dt)
        self.subtb_lambda, self.subtb_pairs = float(subtb_lambda), subtb_pairs
        self.exploration, self.exploration_decay_iterations = float(exploration), exploration_decay_iterations
        self.replay_fraction, self.log_reward_min = float(replay_fraction), float(log_reward_min)
        self.local_search, self.local_search_every = bool(local_search), int(local_search_every)
        self.local_search_steps, self.target_acceptance = int(local_search_steps), float(target_acceptance)
        self.local_search_step_size = float(local_search_step_size)
        self.shard.check_same("dgfs configuration", {
            "loss": loss, "subtb": (self.subtb_lambda, subtb_pairs), "lr": (lr_policy, lr_flow),
            "exploration": (self.exploration, exploration_decay_iterations),
            "replay": (replay, replay_fraction, replay_prioritized, rank_weight, local_search)})
        # replay buffers and local search are per rank (each rank keeps its own paths' states),
        # drawn from a per-rank stream; one process: the training stream itself
        self.local_generator = (torch.Generator(device=self.device).manual_seed(self.shard.derive_seed(self.seed))
                                if self.shard.active else self.generator)
        self.buffer = None
        if replay:
            capacity = 100 * self.local_batch_size if replay is True else int(replay)
            self.buffer = ReplayBuffer(capacity, self.dim, prioritized=replay_prioritized,
                                       rank_weight=rank_weight, dtype=self.dtype, device=self.device)
        self.subtb_weights = losses.subtb_weights(self.num_steps, self.subtb_lambda, self.dtype, self.device)
        need = losses.GFN_LOSS_NEEDS[loss]
        if flow is not None and need != "log_flow":
            raise ValueError(f"flow= is used by the flow losses ('subtb', 'db'), not by loss={loss!r}")
        self.local_search_acceptance: Optional[float] = None  # of the last local search
        modules: dict[str, nn.Module] = {"control": self.control}
        self.flow, self.log_z_param = None, None
        if need == "log_flow":
            if flow is not None:
                _check("flow", isinstance(flow, nn.Module), flow, "a torch.nn.Module f(x, t)")
                self.flow = flow.to(device=self.device, dtype=self.dtype)
            else:
                with torch.random.fork_rng(devices=[]):  # init from the seed, global RNG untouched
                    torch.manual_seed(self.seed + 7919)
                    self.flow = FourierMLP(self.dim, 1, hidden=hidden, layers=layers, T=self.T,
                                           zero_init=True).to(device=self.device, dtype=self.dtype)
            modules["flow"] = self.flow
        elif need == "log_Z":
            self.log_z_param = LogZ().to(device=self.device, dtype=self.dtype)
            modules["flow"] = self.log_z_param
        old = self.trainer  # PIS built a trainer for the drift alone: rebuild with the flow
        fingerprint = {**old.fingerprint, "loss": loss, "sigma": self.sigma, "dt": self.dt,
                       "custom_flow": flow is not None, "replay": bool(replay),
                       **({"minibatches": self.minibatches} if self.minibatches > 1 else {})}
        self.trainer = Trainer(
            modules, self._step, lr={"control": lr_policy, "flow": lr_flow} if len(modules) > 1 else lr_policy,
            weight_decay=weight_decay, grad_clip=grad_clip, lr_schedule=old.lr_schedule,
            generators=old.generators, evaluate=old.evaluate, eval_every=old.eval_every,
            checkpoint_every=old.checkpoint_every, checkpoint_path=old.checkpoint_path,
            fingerprint=fingerprint, name=self.name, extra_state=self._extra_state,
            load_extra_state=self._load_extra_state, shard=self.shard)

    # --- pieces ---------------------------------------------------------------------------
    def noise_scale(self, iteration: int) -> float:
        """Behaviour-noise multiplier at ``iteration``: sqrt(1 + e^2 / (sigma^2 dt)), e the
        (decayed) exploration std — the additive-variance exploration of gfn-diffusion."""
        e = self.exploration
        if self.exploration_decay_iterations:
            e *= max(0.0, 1.0 - iteration / self.exploration_decay_iterations)
        return math.sqrt(1.0 + e * e / (self.sigma ** 2 * self.dt))

    def _log_reward_all(self, x: Tensor) -> Tensor:
        """log R clamped below at ``log_reward_min`` (so -inf rewards give finite residuals)."""
        return self._log_reward(x).clamp_min(self.log_reward_min)

    def log_flow(self, states: Tensor, log_reward: Tensor) -> Tensor:
        """log F at every state of paths on the training grid: Tensor[N+1, B], row N = log R.

        Args:
            states: Tensor[N+1, B, dim]; log_reward: Tensor[N+1, B], log R at every state.
        """
        N1, B, d = states.shape
        # row N is pinned to log R at t = T: the net runs on the N earlier rows only
        x, t, N = states[:-1], self.times[:-1], N1 - 1
        if isinstance(self.flow, FourierMLP):  # time branch once per grid time, not per row
            nn_out = self.flow.forward_with_features(x, self.flow.time_features(t)[:, None, :]).squeeze(-1)
            var = (self.sigma ** 2) * t.clamp_min(0.01 * self.T)
            log_ref = gaussian_log_prob(x, 0.0, var.view(N, 1, 1))
            frac = (t / self.T).view(N, 1)
            out = nn_out + frac * log_reward[:-1] + (1 - frac) * log_ref
        else:
            out = self.flow(x.reshape(N * B, d), t.repeat_interleave(B)).view(N, B)
        return torch.cat([out, log_reward[-1:]])

    def step_log_densities(self, states: Tensor, controls: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """(log P_F, log P_B) of every step of stored paths under the current drift, Tensor[N, B] each.

        ``controls``: the drift's values at states[:-1], Tensor[N, B, dim], if already known
        (kept with their graph by the simulation); else the drift is evaluated here."""
        control = None
        if controls is None:
            control = (GridControl(self.control, self.times[:-1])
                       if hasattr(self.control, "time_features") else self.control)
        return path_log_densities(self.reference, states, self.times, control, scheme=self.scheme,
                                  controls=controls)

    @torch.no_grad()
    def bridge_paths(self, x_final: Tensor, generator: torch.Generator) -> Tensor:
        """Paths ending at x_final Tensor[n, dim], drawn backwards through the reference
        bridge to x_0 = 0: Tensor[N+1, n, dim]."""
        b, r = self.reference.backward_coefficients(self.times)
        eps = torch.randn((self.num_steps,) + tuple(x_final.shape), generator=generator,
                          dtype=self.dtype, device=self.device)
        x, out = x_final.to(self.dtype), [x_final.to(self.dtype)]
        for k in range(self.num_steps - 1, -1, -1):
            x = b[k] * x + r[k] * eps[k]
            out.append(x)
        return torch.stack(out[::-1])

    def _behaviour_paths(self, iteration: int) -> tuple[Tensor, int]:
        """States Tensor[N+1, B, dim] (forward paths first) and the number of forward paths."""
        with torch.no_grad():
            return self._behaviour_paths_and_controls(iteration)[:2]

    def _behaviour_paths_and_controls(self, iteration: int) -> tuple[Tensor, int, Optional[Tensor]]:
        """``_behaviour_paths`` and the drift's values at states[:-1] under the current
        parameters, with their graph (Tensor[N, B, dim]; None for a custom drift, which is then
        evaluated by ``step_log_densities``). The states themselves carry no graph.

        The forward paths' drift values are those their simulation computed (kept by
        ``GridControl(record_controls=True)``), so the policy and grad log p~ are not
        re-evaluated at their N*B states; the replayed paths' in one batched call."""
        gen, B = self.generator, self.local_batch_size
        record = hasattr(self.control, "time_features")
        n_buf = 0
        with torch.no_grad():
            if self.buffer is not None and len(self.buffer) > 0:
                n_buf = min(B - 1, max(1, round(self.replay_fraction * B)))
                if self.local_search and iteration % self.local_search_every == 0:
                    self._refine_buffer()
            x0, _ = self._initial(B - n_buf, gen)
        with torch.set_grad_enabled(record and torch.is_grad_enabled()):
            tr, control = self._integrate_with(x0, self.times, gen, record_controls=record, log_densities=False,
                                               keep_steps=False, noise_scale=self.noise_scale(iteration))
        controls = control.controls if record else None
        if n_buf == 0:
            return tr.states, B, controls
        with torch.no_grad():
            x_buf, _ = self.buffer.sample(n_buf, self.local_generator)
            back = self.bridge_paths(x_buf, self.local_generator)
        if controls is not None:
            N, d = self.num_steps, self.dim
            t_flat = self.times[:-1].repeat_interleave(n_buf)
            u_fwd, ls_fwd = split_control(controls, torch.Size((N, B - n_buf, d)), "recorded controls")
            u_back, ls_back = split_control(
                GridControl(self.control, self.times[:-1])(back[:-1].reshape(N * n_buf, d), t_flat),
                torch.Size((N * n_buf, d)))
            u = torch.cat([u_fwd, u_back.view(N, n_buf, d)], dim=1)
            # a learned noise also carries its per-dimension log_scale along
            controls = u if ls_fwd is None else (u, torch.cat([ls_fwd, ls_back.view(N, n_buf, d)], dim=1))
        return torch.cat([tr.states, back], dim=1), B - n_buf, controls

    def _refine_buffer(self) -> None:
        """Local search: MALA on a prioritised batch from the buffer; the results join it."""
        x, _ = self.buffer.sample(self.local_batch_size, self.local_generator)
        res = mala(lambda y: log_prob_and_grad(self.target, y), x, steps=self.local_search_steps,
                   step_size=self.local_search_step_size, generator=self.local_generator,
                   target_acceptance=self.target_acceptance)
        self.local_search_step_size = res.step_size
        self.local_search_acceptance = float(res.acceptance[-10:].mean())
        self.buffer.add(res.x, res.log_prob)

    def _step(self, iteration: int) -> dict[str, Tensor]:
        K = self.minibatches
        if K == 1:
            states, n_fwd, controls = self._behaviour_paths_and_controls(iteration)
        else:  # the drift is re-evaluated per minibatch, after the previous update
            states, n_fwd = self._behaviour_paths(iteration)
            controls = None
        with torch.no_grad():
            N1, B, d = states.shape
            log_r_all = None
            if self.flow is not None:  # log R at every state, one batched call
                log_r_all = self._log_reward_all(states.reshape(N1 * B, d)).view(N1, B)
                log_r = log_r_all[-1]
            else:
                log_r = self._log_reward_all(states[-1])
            if self.buffer is not None:
                self.buffer.add(states[-1, :n_fwd], log_r[:n_fwd])
        if K == 1:
            loss, learned, log_w = self._loss(states, controls, log_r_all, log_r)
            fwd = torch.cat([torch.arange(n_fwd, device=self.device) + r * B for r in range(self.shard.world_size)])
            log_w = log_w[fwd]
        else:
            # K Adam updates, each on every K-th path (forward and replayed paths mixed alike);
            # K = batch_size is the reference code's one update per path
            log_w = torch.empty(B, dtype=self.dtype, device=self.device)
            for k in range(K):
                cols = torch.arange(k, B, K, device=self.device)
                loss, learned, lw = self._loss(states[:, cols], None,
                                               None if log_r_all is None else log_r_all[:, cols], log_r[cols])
                log_w[cols] = lw
                if k < K - 1:
                    self.trainer.apply(loss)
            log_w = log_w[:n_fwd]
        out: dict[str, Tensor] = {"loss": loss}
        if learned is not None:
            out["learned_log_z"] = learned
        with torch.no_grad():  # batch estimates: only meaningful for on-policy forward paths
            n = log_w.numel()
            on_policy = self.noise_scale(iteration) == 1.0 and n >= 2
            nan = log_w.new_tensor(math.nan)
            out["log_z"] = _log_mean_exp(log_w) if on_policy else nan
            out["elbo"] = log_w.mean() if on_policy else nan
            out["ess"] = (torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)) / n
                          if on_policy else nan)
        return out

    def _loss(self, states: Tensor, controls: Optional[Tensor], log_r_all: Optional[Tensor],
              log_r: Tensor) -> tuple[Tensor, Optional[Tensor], Tensor]:
        """The configured loss of paths states Tensor[N+1, b, dim] (divided by dim^2 as the
        reference code divides every residual by dim), the loss's own log Z (or None), and
        every gathered path's log-weight log R + sum log P_B - sum log P_F (detached, Tensor[b_global])."""
        log_pf, log_pb = self.step_log_densities(states, controls)
        N = self.num_steps
        rows = [log_pf, log_pb, log_r[None]]
        if self.flow is not None:
            rows.append(self.log_flow(states, log_r_all)[:-1])
        # one gather of every per-path term: each rank computes the loss of the global batch
        # (logz.distributed); ranks' columns come rank by rank, forward paths first in each
        gathered = self.shard.gather(torch.cat(rows), dim=1)
        log_pf, log_pb, log_r = gathered[:N], gathered[N:2 * N], gathered[2 * N]
        learned = None
        if self.flow is not None:
            log_f = torch.cat([gathered[2 * N + 1:], log_r[None]])
            learned = log_f[0, 0].detach()  # every path starts at x_0 = 0, t = 0
        if self.loss == "subtb":
            loss = losses.subtb_loss(log_pf, log_pb, log_f, weights=self.subtb_weights,
                                     num_pairs=self.subtb_pairs, generator=self.generator)
        elif self.loss == "db":
            loss = losses.detailed_balance_loss(log_pf, log_pb, log_f)
        elif self.loss == "tb":
            loss = losses.trajectory_balance_loss(log_pf, log_pb, log_r, self.log_z_param())
            learned = self.log_z_param().detach()
        else:
            loss = losses.vargrad_path_loss(log_pf, log_pb, log_r)
        log_w = (log_r + log_pb.sum(0) - log_pf.sum(0)).detach()
        return loss / self.dim ** 2, learned, log_w

    # --- state beyond the networks ----------------------------------------------------------
    def _extra_state(self) -> dict:
        state: dict[str, Any] = {"local_search_step_size": self.local_search_step_size}
        if self.buffer is not None:
            state["buffer"] = self.buffer.state_dict()
        return state

    def _load_extra_state(self, state: dict) -> None:
        self.local_search_step_size = float(state.get("local_search_step_size", self.local_search_step_size))
        if self.buffer is not None:
            if "buffer" not in state:
                raise ValueError("checkpoint has no replay buffer, but this DGFS uses one")
            self.buffer.load_state_dict(state["buffer"])

    # --- public extras ------------------------------------------------------------------------
    @property
    def learned_log_z(self) -> Optional[float]:
        """The loss's own log Z: the TB parameter or log F(x_0 = 0, t = 0); None for VarGrad."""
        if self.log_z_param is not None:
            return float(self.log_z_param().detach())
        if self.flow is None:
            return None
        with torch.no_grad():
            states = torch.zeros(self.num_steps + 1, 1, self.dim, dtype=self.dtype, device=self.device)
            log_r = self._log_reward_all(states[:, 0]).view(-1, 1)
            return float(self.log_flow(states, log_r)[0, 0])

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


register("dgfs", DGFS)
register("tb", lambda target, **config: DGFS(target, **{"loss": "tb", **config}))
# DGFS with gfn-diffusion's learned per-dimension policy variance (log-variance range 4)
register("dgfs_lv", lambda target, **config: DGFS(target, **{"learned_variance": 4.0, **config}),
         variant_of="dgfs")
