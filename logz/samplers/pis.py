"""Path Integral Sampler (PIS; Zhang & Chen 2022).

A controlled SDE carries x_0 = 0 to the target:

    dX = g u(X, t) dt + g dW,  t: 0 -> T,   (reference: Brownian motion, X_T ~ N(0, g^2 T I))

and u is learned so that the law of X_T is p = p~/Z. With Euler–Maruyama steps on a
uniform grid, the path-space log-weight (Girsanov, exact for the discrete chain) is

    log w = log p~(x_N) + sum_k log P_B(x_k | x_{k+1}) - sum_k log P_F(x_{k+1} | x_k),

P_B the reference's Brownian bridge: E[log w] = ELBO <= log Z and logmeanexp(log w)
is the importance-weighted estimate. Losses (``logz.samplers.losses``):
``"kl"`` — reparameterised KL, control cost + terminal log-ratio, backpropagated
through the trajectory (optionally with gradient checkpointing over time chunks);
``"vargrad"`` — log-variance of log w over detached paths (optionally simulated with
exploration noise), scored under the current control by the values the simulation itself
computed (kept with their graph), or, with gradient checkpointing, re-scored chunk by chunk.

The control is ``GradientDrift`` ("PIS-Grad": NN(x, t) + c(t) grad log p~(x)) or, with
``drift="nn"``, the plain network. ``PIS`` is also the base of ``DDS`` (``dds.py``),
which changes only the reference process and the integrator.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from logz.distributed import Shard, resolve
from logz.samplers import losses, register
from logz.samplers.estimators import LogZEstimate, estimate_from_log_weights
from logz.samplers._common import (_as_dtype, _batch_major, _check, _cpu_generator, _has_exact_samples,
                                   _is_int, _log_mean_exp)
from logz.samplers.nets import FourierMLP, GradientDrift, GridControl
from logz.samplers.training import History, Trainer
from logz.sde import BrownianReference, LinearReference, integrate, path_log_densities, uniform_grid
from logz.targets.base import checked_log_prob, log_prob_and_grad, target_name

class PIS:
    """Path Integral Sampler: ``fit``, ``sample``, ``estimate_log_z``, ``save``/``load``.

    Args:
        target: object with ``dim`` and ``log_prob(x: Tensor[B, dim]) -> Tensor[B]``.
        diffusion: g of the Brownian reference (default sqrt(0.2)). T: horizon (5).
        num_steps: Euler–Maruyama steps (100).
        hidden, layers: network width and depth (64, 2). drift: "grad" (PIS-Grad) or "nn".
        control: a custom control network u(x, t) -> Tensor[B, dim] (nn.Module; t is 0-dim
            or Tensor[B]) instead of the default ``GradientDrift``.
        loss: "kl" or "vargrad". lr: Adam learning rate. batch_size: paths per iteration.
        grad_clip: max gradient norm (None: off). lr_schedule: factor(iteration), a
            ``training.make_schedule`` mapping (``{"kind": "cosine", "total": 5000}``) or None.
        weight_decay: Adam weight decay. exploration: noise multiplier of the behaviour
            process for "vargrad" (1 = on-policy).
        grad_checkpoint_steps: time steps per recomputed chunk ("kl": gradient
            checkpointing; "vargrad": chunked re-scoring and backward). None: off.
        differentiate_score: "kl" differentiates through grad log p~ along the path
            (exact reparameterisation gradient, needs second derivatives); the reference
            code detaches it (False, cheaper).
        score_grad_clip, out_clip: clipping of grad log p~ and of u.
        learned_variance: None/False (the reference's fixed noise), True (= 4.0) or r > 0:
            the drift network also outputs a per-dimension noise scale, the step variance
            times exp(+-r) at most (``GradientDrift(log_var_range=r)``, gfn-diffusion's
            learned variance). Needs an off-policy / log-density loss ("vargrad", DGFS's).
        eval_every: a ``LogZEstimate`` every so many iterations during ``fit``
            (``eval_samples`` paths). eval_batch_size: paths per batch in estimates.
        seed: seeds the networks' initialisation and the training / evaluation RNGs.
        device, dtype: where and in which precision everything runs.
        checkpoint_every, checkpoint_path: periodic checkpoints during ``fit``.
        shard: a ``logz.distributed.Shard`` to split every batch over processes (default:
            torch.distributed's default group when initialised, else one process).
            ``batch_size``, ``eval_samples`` and ``eval_batch_size`` stay GLOBAL and must be
            divisible by the world size; a run on any world size equals the one-process run
            with the same seed, up to float rounding (see ``logz.distributed``).
        defer_checks: validate the target's values inside the time loop on the device and
            read the verdict once per simulation (no host synchronisation per step; the error
            cannot name the row). Default: on for CUDA, off on the CPU.
        compile: ``torch.compile`` the drift network's per-step part (``FourierMLP.compile_trunk``):
            False, True (torch.compile's default mode) or a mode name ("reduce-overhead":
            CUDA graphs on GPUs; "max-autotune"). The first iterations pay the compilation.
    """

    name = "pis"
    scheme = "euler"

    def __init__(self, target, *, diffusion: float = math.sqrt(0.2), T: float = 5.0,
                 num_steps: int = 100, hidden: int = 64, layers: int = 2, drift: str = "grad",
                 loss: str = "kl", lr: float = 1e-3, batch_size: int = 256,
                 grad_clip: Optional[float] = 1.0, lr_schedule=None, weight_decay: float = 0.0,
                 exploration: float = 1.0, grad_checkpoint_steps: Optional[int] = None,
                 differentiate_score: bool = False, score_grad_clip: float = 1e2,
                 out_clip: float = 1e4, eval_every: Optional[int] = None, eval_samples: int = 2000,
                 eval_batch_size: int = 2000, seed: int = 0, device=None,
                 dtype: Union[str, torch.dtype] = torch.float32, control: Optional[nn.Module] = None,
                 checkpoint_every: Optional[int] = None, checkpoint_path: Optional[str] = None,
                 shard: Optional[Shard] = None, defer_checks: Optional[bool] = None,
                 compile: Union[bool, str] = False, learned_variance: Union[bool, float, None] = None):
        dim = getattr(target, "dim", None)
        _check("target.dim", _is_int(dim) and dim >= 1, dim, "a positive integer")
        _check("T", isinstance(T, (int, float)) and T > 0, T, "> 0")
        _check("num_steps", _is_int(num_steps) and num_steps >= 1, num_steps, "an integer >= 1")
        _check("drift", drift in ("grad", "nn"), drift, "'grad' or 'nn'")
        _check("loss", loss in losses.LOSSES, loss, f"one of {sorted(losses.LOSSES)}")
        _check("batch_size", _is_int(batch_size) and batch_size >= 2, batch_size, "an integer >= 2")
        _check("exploration", isinstance(exploration, (int, float)) and exploration > 0, exploration, "> 0")
        _check("grad_checkpoint_steps", grad_checkpoint_steps is None or
               (_is_int(grad_checkpoint_steps) and grad_checkpoint_steps >= 1),
               grad_checkpoint_steps, "None or an integer >= 1")
        for key in ("eval_samples", "eval_batch_size"):
            v = locals()[key]
            _check(key, _is_int(v) and v >= 2, v, "an integer >= 2")
        _check("seed", _is_int(seed), seed, "an integer")
        _check("learned_variance", learned_variance in (None, False, True) or
               (isinstance(learned_variance, (int, float)) and learned_variance > 0),
               learned_variance, "None, a bool or a log-variance range > 0")
        log_var_range = 4.0 if learned_variance is True else (learned_variance or None)
        if log_var_range is not None and control is not None:
            raise ValueError("learned_variance configures the default drift network; a custom control "
                             "learns its noise by returning (u, log_scale) itself")
        if loss == "kl" and log_var_range is not None:
            raise ValueError("learned_variance needs loss='vargrad' (or DGFS): the KL loss uses the "
                             "Girsanov control cost, which holds for the reference's fixed noise only")
        if loss == "kl" and exploration != 1.0:
            raise ValueError("exploration != 1 needs an off-policy loss (loss='vargrad'); "
                             "the KL loss is on-policy")
        self.target, self.dim = target, int(dim)
        self.dtype = _as_dtype(dtype)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.T, self.num_steps, self.loss = float(T), int(num_steps), loss
        self.batch_size, self.exploration = int(batch_size), float(exploration)
        self.grad_checkpoint_steps = grad_checkpoint_steps
        self.differentiate_score = bool(differentiate_score)
        self.eval_samples, self.eval_batch_size = int(eval_samples), int(eval_batch_size)
        self.seed = int(seed)
        self.diffusion = diffusion
        self.reference = self._build_reference()
        self.times = uniform_grid(self.T, self.num_steps, dtype=self.dtype, device=self.device)
        if control is not None:
            _check("control", isinstance(control, nn.Module), control, "a torch.nn.Module u(x, t)")
            self.control = control.to(device=self.device, dtype=self.dtype)
        else:
            with torch.random.fork_rng(devices=[]):  # init from `seed`, global RNG untouched
                torch.manual_seed(self.seed)
                self.control = GradientDrift(
                    self.dim, self._score if drift == "grad" else None, hidden=hidden, layers=layers,
                    T=self.T, grad_clip=score_grad_clip, out_clip=out_clip, log_var_range=log_var_range,
                ).to(device=self.device, dtype=self.dtype)
        _check("compile", compile in (False, True) or isinstance(compile, str), compile,
               "False, True or a torch.compile mode")
        if compile is not False and isinstance(getattr(self.control, "net", None), FourierMLP):
            self.control.net.compile_trunk(None if compile is True else compile)
        self.defer_checks = self.device.type != "cpu" if defer_checks is None else bool(defer_checks)
        self._invalid: Optional[Tensor] = None
        self.generator = torch.Generator(device=self.device).manual_seed(2 * self.seed)
        self.eval_generator = torch.Generator(device=self.device).manual_seed(2 * self.seed + 1)
        fingerprint = {"sampler": self.name, "target": target_name(target), "dim": self.dim,
                       "hidden": int(hidden), "layers": int(layers), "drift": drift,
                       "dtype": str(self.dtype)}
        if log_var_range is not None:
            fingerprint["learned_variance"] = float(log_var_range)
        self.shard = resolve(shard)
        # every rank must run the same configuration and seed (checked before any division)
        self.shard.check_same(f"{self.name} configuration", {
            **fingerprint, "T": self.T, "num_steps": self.num_steps, "loss": loss, "lr": lr,
            "batch_size": self.batch_size, "seed": self.seed, "eval": (self.eval_samples, self.eval_batch_size),
            "reference": repr(self.reference)})
        self.local_batch_size = self.shard.local_size(self.batch_size, "batch_size")
        self.shard.local_size(self.eval_batch_size, "eval_batch_size")
        self.trainer = Trainer(
            {"control": self.control}, self._step, lr=lr, weight_decay=weight_decay,
            grad_clip=grad_clip, lr_schedule=lr_schedule,
            generators={"train": self.generator, "eval": self.eval_generator},
            evaluate=lambda: self.estimate_log_z(self.eval_samples), eval_every=eval_every,
            checkpoint_every=checkpoint_every, checkpoint_path=checkpoint_path,
            fingerprint=fingerprint, name=self.name, shard=self.shard)

    # --- the process ------------------------------------------------------------------
    def _build_reference(self) -> LinearReference:
        """Brownian motion from 0 with diffusion ``self.diffusion`` (DDS overrides this)."""
        g = self.diffusion
        _check("diffusion", isinstance(g, (int, float)) and not isinstance(g, bool) and g > 0, g, "> 0")
        return BrownianReference(float(g))

    def _initial(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """x_0 Tensor[n, dim] and log p_0(x_0) Tensor[n] (0 for the point mass at 0)."""
        if self.reference.init_std == 0:
            x0 = torch.zeros(n, self.dim, dtype=self.dtype, device=self.device)
            return x0, x0.new_zeros(n)
        x0 = self.reference.init_std * self.shard.randn((n, self.dim), generator=generator,
                                                        dtype=self.dtype, device=self.device)
        return x0, self.reference.log_marginal(x0, 0.0)

    def _score(self, x: Tensor) -> Tensor:
        """grad log p~(x), validated (ValueError naming the target on NaN/inf)."""
        create_graph = self.differentiate_score and torch.is_grad_enabled() and x.requires_grad
        invalid = self._invalid  # a device flag inside a simulation off the CPU (no host syncs)
        if create_graph:
            return log_prob_and_grad(self.target, x, create_graph=True, invalid=invalid)[1]
        if self.grad_checkpoint_steps is None:
            return log_prob_and_grad(self.target, x, invalid=invalid)[1]
        # a detached score's own small graph must not go through the saved-tensor hooks of
        # gradient checkpointing (they would keep it alive: ~10x the memory, ~10x slower);
        # entering the context costs as much as a few ops, so only when checkpointing
        with torch.autograd.graph.saved_tensors_hooks(_identity, _identity):
            return log_prob_and_grad(self.target, x, invalid=invalid)[1]

    def _log_reward(self, x: Tensor) -> Tensor:
        return checked_log_prob(self.target, x)

    def _integrate(self, x0: Tensor, times: Tensor, generator: torch.Generator, **kw):
        return self._integrate_with(x0, times, generator, **kw)[0]

    def _integrate_with(self, x0: Tensor, times: Tensor, generator: torch.Generator, *,
                        record_controls: bool = False, **kw) -> tuple:
        """``integrate`` under the control: (Trajectory, the ``GridControl`` used, or None for a
        custom control). ``record_controls``: see ``GridControl`` (detached paths, control
        values kept with their graph).

        With ``defer_checks`` (default off the CPU) the target's values inside the time loop
        are validated on the device and read once, after the loop: no host synchronisation
        per step."""
        if not self.defer_checks:
            return self._integrate_unchecked(x0, times, generator, record_controls=record_controls, **kw)
        self._invalid = torch.zeros((), dtype=torch.bool, device=self.device)
        try:
            out = self._integrate_unchecked(x0, times, generator, record_controls=record_controls, **kw)
            if bool(self._invalid):  # the one synchronisation of the simulation
                raise ValueError(f"target {target_name(self.target)!r}: log_prob was NaN or +inf, or its "
                                 f"gradient not finite, during the simulation (checked after the time "
                                 f"loop, defer_checks=True; set defer_checks=False to find the row)")
        finally:
            self._invalid = None
        return out

    def _integrate_unchecked(self, x0: Tensor, times: Tensor, generator: torch.Generator, *,
                             record_controls: bool = False, **kw) -> tuple:
        if not hasattr(self.control, "time_features"):  # a custom control
            return integrate(self.reference, x0, times, self.control, scheme=self.scheme,
                             generator=generator, shard=self.shard, **kw), None
        # time branch once per simulation
        control = GridControl(self.control, times[:-1], record_controls=record_controls)
        tr = integrate(self.reference, x0, times, control, scheme=self.scheme, generator=generator,
                       shard=self.shard, **kw)
        if control.calls != len(times) - 1:
            raise RuntimeError(f"integrate called the control {control.calls} times on "
                               f"{len(times) - 1} steps; GridControl assumes one call per step")
        return tr, control

    # --- losses -----------------------------------------------------------------------
    def _step(self, iteration: int) -> dict[str, Tensor]:
        if self.loss == "kl":
            return self._kl_step()
        return self._vargrad_step()

    def _kl_step(self) -> dict[str, Tensor]:
        x0, log_p0 = self._initial(self.local_batch_size, self.generator)
        x_N, cost, ratio = self._simulate_with_grad(x0)
        log_r = self._log_reward(x_N)
        # one gather of the per-path terms: every rank computes the global loss (logz.distributed)
        cost, log_r, log_ref, log_w = self.shard.gather(torch.stack(
            [cost, log_r, self.reference.terminal_log_prob(x_N, self.T), (ratio - log_p0).detach()]), dim=1)
        loss = losses.kl_loss(cost, log_r, log_ref)
        log_w = (log_r + log_w).detach()
        return {"loss": loss / self.dim, "log_z": _log_mean_exp(log_w), "elbo": log_w.mean()}

    def _simulate_with_grad(self, x0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Differentiable simulation: (x_N, control cost, sum log P_B - sum log P_F), all [B]."""
        chunk = self.grad_checkpoint_steps
        if chunk is None or chunk >= self.num_steps:
            tr = self._integrate(x0, self.times, self.generator, keep_path=False, keep_steps=False)
            return tr.final, tr.control_cost, tr.log_backward_sum - tr.log_forward_sum
        x, cost, ratio = x0, x0.new_zeros(len(x0)), x0.new_zeros(len(x0))
        for k0 in range(0, self.num_steps, chunk):
            times = self.times[k0:min(k0 + chunk, self.num_steps) + 1]
            rng_state, rng_after = self.generator.get_state(), []

            def run(x_in: Tensor, times=times, rng_state=rng_state, rng_after=rng_after):
                # the chunk's noise comes from a copy of the RNG state, so the recomputation
                # in backward draws exactly the same increments
                gen = torch.Generator(device=self.device)
                gen.set_state(rng_state)
                tr = self._integrate(x_in, times, gen, keep_path=False, keep_steps=False)
                rng_after.append(gen.get_state())
                return tr.final, tr.control_cost, tr.log_backward_sum - tr.log_forward_sum

            x, c, r = checkpoint(run, x, use_reentrant=False)
            self.generator.set_state(rng_after[0])
            cost, ratio = cost + c, ratio + r
        return x, cost, ratio

    def _vargrad_step(self) -> dict[str, Tensor]:
        chunk = self.grad_checkpoint_steps
        chunked = chunk is not None and chunk < self.num_steps
        # Unchunked, the simulation keeps its control values with their graph (the paths stay
        # detached, see GridControl): log w needs u(x_k, t_k) under the current parameters,
        # exactly what the simulation computed, so nothing is re-evaluated. Chunked (bounded
        # memory) or with a custom control, paths are simulated without graph and re-scored.
        record = not chunked and hasattr(self.control, "time_features")
        with torch.no_grad():
            x0, log_p0 = self._initial(self.local_batch_size, self.generator)
        with torch.set_grad_enabled(record and torch.is_grad_enabled()):
            tr, control = self._integrate_with(x0, self.times, self.generator, record_controls=record,
                                               log_densities=False, keep_steps=False,
                                               noise_scale=self.exploration)
        with torch.no_grad():
            log_r = self._log_reward(tr.final)
        states = tr.states
        if not chunked:
            log_w = log_r + self._rescore(states, 0, self.num_steps, control.controls if record else None) - log_p0
            log_w = self.shard.gather(log_w)
            loss = losses.log_variance_loss(log_w)
            log_w = log_w.detach()
        else:  # two passes: log w without graph, then per-chunk backward of sum_i c_i log w_i
            with torch.no_grad():
                log_w = log_r - log_p0 + sum(self._rescore(states, k0, min(k0 + chunk, self.num_steps))
                                             for k0 in range(0, self.num_steps, chunk))
                log_w = self.shard.gather(log_w)
            # this rank's paths' coefficients, times the world size: the trainer averages gradients
            weights = (losses.vargrad_weights(log_w)[self.shard.rows(self.local_batch_size)]
                       * (self.shard.world_size / self.dim))
            for k0 in range(0, self.num_steps, chunk):
                part = self._rescore(states, k0, min(k0 + chunk, self.num_steps))
                (weights * part).sum().backward()
            loss = losses.log_variance_loss(log_w)
        return {"loss": loss / self.dim, "log_z": _log_mean_exp(log_w), "elbo": log_w.mean()}

    def _rescore(self, states: Tensor, k0: int, k1: int, controls: Optional[Tensor] = None) -> Tensor:
        """sum over steps k0..k1-1 of log P_B - log P_F under the current control, Tensor[B].
        ``controls``: the control's values at states[k0:k1] if known (Tensor[k1-k0, B, dim])."""
        control = None
        if controls is None:
            control = (GridControl(self.control, self.times[k0:k1])
                       if hasattr(self.control, "time_features") else self.control)
        log_f, log_b = path_log_densities(self.reference, states[k0:k1 + 1], self.times[k0:k1 + 1],
                                          control, scheme=self.scheme, controls=controls)
        return (log_b - log_f).sum(0)

    # --- public API ---------------------------------------------------------------------
    def fit(self, iterations: int, progress: bool = True) -> History:
        """Train for ``iterations`` more iterations; returns the cumulative ``History``."""
        return self.trainer.fit(iterations, progress=progress)

    @property
    def history(self) -> History:
        return self.trainer.history

    @torch.no_grad()
    def log_weights(self, num_samples: int, *, generator: Optional[torch.Generator] = None,
                    progress: bool = False) -> tuple[Tensor, Tensor]:
        """Fresh on-policy paths: (x_N Tensor[n, dim], log w Tensor[n]), in batches.

        Distributed: each rank simulates its share and every rank returns all n."""
        _check("num_samples", _is_int(num_samples) and num_samples >= 1, num_samples, "an integer >= 1")
        generator = self.eval_generator if generator is None else generator
        from tqdm.auto import tqdm

        local = self.shard.local_size(num_samples, "num_samples")
        batch = self.eval_batch_size // self.shard.world_size
        xs, log_ws = [], []
        sizes = [min(batch, local - i) for i in range(0, local, batch)]
        with self.shard.guard():
            for n in tqdm(sizes, desc=f"{self.name} estimate", disable=not (progress and self.shard.is_main),
                          leave=False):
                x0, log_p0 = self._initial(n, generator)
                tr = self._integrate(x0, self.times, generator, keep_path=False, keep_steps=False)
                xs.append(tr.final)
                log_ws.append(self._log_reward(tr.final) + tr.log_path_ratio - log_p0)
        x, log_w = torch.cat(xs), torch.cat(log_ws)
        if not self.shard.active:
            return x, log_w
        # rank-major order: ranks' batches interleave, so regroup each eval batch's rows
        x, log_w = self.shard.gather(x), self.shard.gather(log_w)
        return _batch_major(x, sizes, self.shard.world_size), _batch_major(log_w, sizes, self.shard.world_size)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """n samples x_N ~ the learned sampler, Tensor[n, dim] (not reweighted)."""
        return self.log_weights(n)[0]

    def estimate_log_z(self, num_samples: int = 2000, progress: bool = False) -> LogZEstimate:
        """Importance-weighted log Z, its standard error, the ELBO and the ESS from
        ``num_samples`` fresh paths; plus the EUBO when the target has exact samples."""
        _check("num_samples", _is_int(num_samples) and num_samples >= 2, num_samples, "an integer >= 2")
        _, log_w = self.log_weights(num_samples, progress=progress)
        log_w_target = self.target_log_weights(num_samples) if _has_exact_samples(self.target) else None
        return estimate_from_log_weights(log_w, log_w_target)

    @torch.no_grad()
    def target_log_weights(self, num_samples: int) -> Tensor:
        """log w of paths drawn backwards from exact target samples through the reference
        bridge (the EUBO's integrand), Tensor[n]."""
        gen, shard = self.eval_generator, self.shard
        local = shard.local_size(num_samples, "num_samples")
        # every rank draws all n exact samples (one CPU stream) and keeps its rows
        x = self.target.sample(num_samples, generator=_cpu_generator(gen))[shard.rows(local)]
        x = x.to(self.device, self.dtype)
        b, r = self.reference.backward_coefficients(self.times)
        states = [x]
        for k in range(self.num_steps - 1, -1, -1):
            eps = shard.randn(x.shape, generator=gen, dtype=self.dtype, device=self.device)
            x = b[k] * x + r[k] * eps
            states.append(x)
        states = torch.stack(states[::-1])
        if self.reference.init_std > 0:
            log_p0 = self.reference.log_marginal(states[0], 0.0)
        else:
            log_p0 = states.new_zeros(local)
        with shard.guard():
            log_w = self._log_reward(states[-1]) - log_p0
            for k0 in range(0, self.num_steps, 10):  # bounded memory
                log_w = log_w + self._rescore(states, k0, min(k0 + 10, self.num_steps))
        return shard.gather(log_w)

    def save(self, path: str) -> None:
        """Checkpoint networks, optimizer, RNG states, iteration and history."""
        self.trainer.save(path)

    def load(self, path: str) -> None:
        """Restore a checkpoint from ``save`` (ValueError if corrupted or mismatched)."""
        self.trainer.load(path)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target={target_name(self.target)!r}, dim={self.dim}, "
                f"T={self.T}, num_steps={self.num_steps}, loss={self.loss!r}, "
                f"reference={self.reference!r}, iteration={self.trainer.iteration})")


def _identity(x: Tensor) -> Tensor:
    return x


register("pis", PIS)
