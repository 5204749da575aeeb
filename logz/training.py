"""Training machinery shared by the learned samplers (PIS, DDS, DGFS, ...) and the fine-tuners
(flow matching, Adjoint Matching and its baselines): one loop, one ``History``, one checkpoint
format. It sits beside ``logz.distributed`` so that neither ``logz.samplers`` nor
``logz.finetune`` imports the other to train.

A model supplies a ``step(iteration) -> dict`` callable that draws a batch and returns
``{"loss": scalar Tensor, ...}`` plus optional scalar metrics (``"log_z"``: a running
estimate from the batch, shown on the progress bar). ``Trainer`` does the rest:

- Adam (per-module learning rates, weight decay), gradient-norm clipping, an optional
  learning-rate schedule ``factor(iteration)``;
- the loop ``fit(iterations)`` with a tqdm progress bar (loss, running log Z);
- a ``History`` of losses, gradient norms, metrics and periodic ``LogZEstimate``s;
- ``save(path)`` / ``load(path)`` checkpoints (state dicts, optimizer, RNG states,
  iteration, history, a fingerprint of the configuration: tensors and plain data only,
  written atomically by ``write_checkpoint``, read back by ``read_checkpoint`` with
  ``torch.load(weights_only=True)`` so loading a file never runs code from it, matched to the
  trainer by ``check_checkpoint``): a ``fit`` resumed from a checkpoint continues
  bit-identically to an uninterrupted run on CPU;
- invalid values: a ``ValueError`` from the step (e.g. a target returning NaN, see
  ``logz.targets.base.checked_log_prob``), a non-finite loss or gradient stops training
  with a ``TrainingError`` naming the iteration; no update is applied and the last
  checkpoint written (``checkpoint_every``) is left untouched.

A step may compute its gradients itself (e.g. chunked backward for memory) and return a
loss that does not require grad; the trainer then skips ``backward``.

Distributed (``shard``, see ``logz.distributed``): the step computes the global loss from
gathered per-path tensors; the trainer averages gradients over ranks before clipping (so
every rank applies the same update), runs the step under ``Shard.guard`` (an error on one
rank stops every rank with a ``TrainingError``, no hang), shows the progress bar and writes
checkpoints on rank 0 only; every rank loads the same checkpoint file, whatever the world
size that wrote it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from logz.distributed import SINGLE, PeerError, Shard

if TYPE_CHECKING:
    from logz.samplers.estimators import LogZEstimate

__all__ = ["CHECKPOINT_FORMAT", "History", "SCHEDULES", "Step", "Trainer", "TrainingError",
           "check_checkpoint", "cosine_schedule", "make_schedule", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = "logz-trainer/1"
Step = Callable[[int], Mapping[str, Tensor]]


class TrainingError(ValueError):
    """Training stopped on an invalid value; the message names the iteration."""


@dataclass
class History:
    """What ``fit`` recorded, cumulative over calls (and across save/load).

    Attributes:
        loss: training loss per iteration.
        grad_norm: gradient norm per iteration, before clipping.
        log_z: running log Z estimate from each training batch (NaN if the step gives none).
        metrics: other scalar metrics the step returned, by name, per iteration.
        eval_iterations: iterations (count completed) at which ``estimates`` were taken.
        estimates: ``LogZEstimate`` of each periodic evaluation.
        wall_time: seconds spent in ``fit``.
    """

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    log_z: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    eval_iterations: list[int] = field(default_factory=list)
    estimates: list[LogZEstimate] = field(default_factory=list)
    wall_time: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["estimates"] = [e.to_dict() for e in self.estimates]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "History":
        d = dict(d)
        if d.get("estimates"):
            # only a sampler's history holds estimates; importing their type here (not at the
            # top) keeps ``import logz.training`` (and the fine-tuners) free of ``logz.samplers``
            from logz.samplers.estimators import LogZEstimate
            d["estimates"] = [LogZEstimate(**e) for e in d["estimates"]]
        return cls(**d)


def cosine_schedule(total: int, final_factor: float = 0.0, warmup: int = 0) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over ``warmup`` iterations, then cosine decay to
    ``final_factor`` at iteration ``total`` (constant after)."""
    if total < 1 or warmup < 0 or not 0 <= final_factor <= 1:
        raise ValueError(f"cosine_schedule needs total >= 1, warmup >= 0, 0 <= final_factor <= 1, "
                         f"got {total}, {warmup}, {final_factor}")

    def factor(it: int) -> float:
        if it < warmup:
            return (it + 1) / warmup
        frac = min(1.0, (it - warmup) / max(1, total - warmup))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * frac))
    return factor


SCHEDULES = {"cosine": cosine_schedule}


def make_schedule(spec) -> Optional[Callable[[int], float]]:
    """A learning-rate factor from ``spec``: None, a callable ``factor(iteration)``, or a
    plain mapping such as ``{"kind": "cosine", "total": 5000, "final_factor": 0.01}`` (JSON-able,
    so benchmark budgets and records can carry it)."""
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        kind = kwargs.pop("kind", None)
        if kind not in SCHEDULES:
            raise ValueError(f"lr_schedule kind must be one of {sorted(SCHEDULES)}, got {kind!r}")
        try:
            return SCHEDULES[kind](**kwargs)
        except TypeError as e:
            raise ValueError(f"bad lr_schedule {dict(spec)!r}: {e}") from None
    raise ValueError(f"lr_schedule must be None, a callable factor(iteration) or a mapping "
                     f"with a 'kind', got {spec!r}")


def read_checkpoint(path) -> dict:
    """The contents of a checkpoint file, read with ``torch.load(weights_only=True)``: tensors and
    plain data only, so a crafted file cannot run code. FileNotFoundError if ``path`` is missing;
    ValueError if it is corrupted or holds anything else (e.g. a pickled object)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise ValueError(f"checkpoint {path!r} is corrupted or not a logz checkpoint "
                         f"({type(err).__name__}: {str(err)[:200]})") from err


def write_checkpoint(state: Mapping[str, Any], path) -> None:
    """Write ``state`` (tensors and plain data) to ``path`` atomically: a crash mid-write leaves
    the old file intact."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def check_checkpoint(state: Mapping[str, Any], *, name: str, fingerprint: Mapping[str, Any],
                     modules: Mapping[str, Any], generators: Mapping[str, Any],
                     source: str = "checkpoint") -> None:
    """ValueError naming the mismatch unless ``state`` is a ``CHECKPOINT_FORMAT`` checkpoint
    written by ``name`` with this ``fingerprint`` and the same module and generator names."""
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{source} is not a {CHECKPOINT_FORMAT} checkpoint")
    if state.get("name") != name:
        raise ValueError(f"{source} was written by {state.get('name')!r}, not {name!r}")
    theirs = state.get("fingerprint", {})
    diff = {k: (theirs.get(k), v) for k, v in fingerprint.items() if theirs.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs this {b!r}" for k, (a, b) in diff.items())
        raise ValueError(f"{source} does not match this {name} configuration ({detail})")
    if set(state["modules"]) != set(modules) or set(state["generators"]) != set(generators):
        raise ValueError(f"{source} holds modules {sorted(state['modules'])} and generators "
                         f"{sorted(state['generators'])}; expected {sorted(modules)} and "
                         f"{sorted(generators)}")


def _adam(modules: Mapping[str, nn.Module], lr, weight_decay: float, betas, name: str
          ) -> tuple[torch.optim.Adam, list, list[float]]:
    """Adam over the trainable parameters of ``modules``, one parameter group (and learning
    rate) per module. Returns (optimizer, all trainable parameters, base learning rates);
    ValueError on a bad rate, decay or betas, or no trainable parameter."""
    lrs = dict(lr) if isinstance(lr, Mapping) else {k: lr for k in modules}
    if set(lrs) != set(modules):
        raise ValueError(f"lr must give one rate per module {sorted(modules)}, got {sorted(lrs)}")
    for k, v in lrs.items():
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"learning rate for {k!r} must be > 0, got {v!r}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if len(tuple(betas)) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{name}: the trained modules {sorted(modules)} have no trainable parameters")
    groups = [{"params": [p for p in m.parameters() if p.requires_grad], "lr": float(lrs[k]), "name": k}
              for k, m in modules.items()]
    optimizer = torch.optim.Adam(groups, weight_decay=weight_decay, betas=tuple(betas))
    return optimizer, params, [float(lrs[k]) for k in modules]


def _positive_int_or_none(name: str, v) -> Optional[int]:
    if v is None:
        return None
    if isinstance(v, bool) or int(v) != v or v < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
    return int(v)


class Trainer:
    """Adam + clipping + schedule + progress bar + history + checkpoints around a ``step``.

    Args:
        modules: the trained networks by name (their parameters are optimized; their
            state dicts are checkpointed).
        step: ``step(iteration) -> {"loss": Tensor[], optional "log_z": Tensor[], ...}``;
            ``iteration`` counts completed updates (0 first).
        lr: learning rate, or one per module name.
        weight_decay: Adam (L2) weight decay.
        betas: Adam's moment decay rates.
        grad_clip: max total gradient norm (None: no clipping).
        lr_schedule: ``factor(iteration) -> float`` multiplying every learning rate, or a
            mapping for :func:`make_schedule` (e.g. ``{"kind": "cosine", "total": 5000}``).
        generators: RNG streams to checkpoint, by name.
        evaluate: ``() -> LogZEstimate``, run every ``eval_every`` iterations.
        checkpoint_every / checkpoint_path: write a checkpoint every so many iterations.
        fingerprint: configuration that a checkpoint must match to be loaded.
        name: shown in messages and the progress bar.
        extra_state / load_extra_state: ``() -> dict`` / ``(dict) -> None`` for state that is
            not in a module (a replay buffer, an adapted MCMC step size), checkpointed with the
            rest so that a resumed ``fit`` stays bit-identical.
        shard: this process's ``logz.distributed.Shard`` (default: one process).
    """

    def __init__(self, modules: Mapping[str, nn.Module], step: Step, *,
                 lr: Union[float, Mapping[str, float]] = 1e-3, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), grad_clip: Optional[float] = 1.0,
                 lr_schedule: Union[None, Callable[[int], float], Mapping[str, Any]] = None,
                 generators: Optional[Mapping[str, torch.Generator]] = None,
                 evaluate: Optional[Callable[[], LogZEstimate]] = None, eval_every: Optional[int] = None,
                 checkpoint_every: Optional[int] = None, checkpoint_path: Optional[str] = None,
                 fingerprint: Optional[Mapping[str, Any]] = None, name: str = "sampler",
                 extra_state: Optional[Callable[[], dict]] = None,
                 load_extra_state: Optional[Callable[[dict], None]] = None, shard: Shard = SINGLE):
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip!r}")
        self.modules = dict(modules)
        self.optimizer, self.params, self.base_lrs = _adam(self.modules, lr, weight_decay, betas, name)
        self.checkpoint_every = _positive_int_or_none("checkpoint_every", checkpoint_every)
        self.eval_every = _positive_int_or_none("eval_every", eval_every)
        if self.checkpoint_every and not checkpoint_path:
            raise ValueError("checkpoint_every needs a checkpoint_path")
        if self.eval_every and evaluate is None:
            raise ValueError("eval_every needs an evaluate function")
        self.step = step
        self.grad_clip = grad_clip
        self.lr_schedule = make_schedule(lr_schedule)
        self.generators = dict(generators or {})
        self.evaluate = evaluate
        self.checkpoint_path = checkpoint_path
        self.fingerprint = dict(fingerprint or {})
        self.name = name
        self.extra_state, self.load_extra_state = extra_state, load_extra_state
        self.shard = shard
        self.iteration = 0
        self.last_checkpoint: Optional[tuple[int, str]] = None
        self.history = History()

    # --- loop ---------------------------------------------------------------------
    def fit(self, iterations: int, progress: bool = True) -> History:
        """Run ``iterations`` more updates; returns the (cumulative) history."""
        if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
            raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
        from tqdm.auto import tqdm

        start = time.perf_counter()
        running = math.nan
        progress = progress and self.shard.is_main
        bar = tqdm(total=int(iterations), desc=self.name, disable=not progress, leave=False)
        try:
            for _ in range(int(iterations)):
                it = self.iteration
                loss, grad_norm, out = self._update(it)
                batch_log_z = float(out["log_z"]) if "log_z" in out else math.nan
                h = self.history
                h.loss.append(loss)
                h.grad_norm.append(grad_norm)
                h.log_z.append(batch_log_z)
                for k, v in out.items():
                    if k not in ("loss", "log_z"):
                        h.metrics.setdefault(k, []).append(float(v))
                self.iteration += 1
                if math.isfinite(batch_log_z):
                    running = batch_log_z if not math.isfinite(running) else 0.95 * running + 0.05 * batch_log_z
                if self.eval_every and self.iteration % self.eval_every == 0:
                    h.eval_iterations.append(self.iteration)
                    h.estimates.append(self.evaluate())
                    running = h.estimates[-1].log_z
                if self.checkpoint_every and self.iteration % self.checkpoint_every == 0:
                    self.save(self.checkpoint_path)  # rank 0 writes
                bar.update(1)
                if progress:
                    bar.set_postfix(loss=f"{loss:.4g}", log_z=f"{running:.4f}", refresh=False)
        finally:
            bar.close()
            self.history.wall_time += time.perf_counter() - start
        return self.history

    def _update(self, it: int) -> tuple[float, float, Mapping[str, Tensor]]:
        if self.lr_schedule is not None:
            factor = float(self.lr_schedule(it))
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base * factor
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with self.shard.guard():
                out = self.step(it)
                if "loss" not in out:
                    raise ValueError("the step returned no 'loss'")
                loss = out["loss"]
                if not bool(torch.isfinite(loss.detach())):
                    raise ValueError(f"the loss is {float(loss.detach())}")
                if loss.requires_grad:
                    loss.backward()
            grad_norm = self._reduce_and_clip()
        except (ValueError, PeerError) as err:
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingError(f"{self.name}: training stopped at iteration {it} "
                                f"({it} updates completed; this one was not applied): {err}. "
                                f"{self._checkpoint_note()}") from err
        self.optimizer.step()
        return float(loss.detach()), grad_norm, out

    def _reduce_and_clip(self) -> float:
        """Average gradients over ranks, clip them; the norm before clipping (ValueError if not finite)."""
        self.shard.average_gradients(self.params)
        max_norm = self.grad_clip if self.grad_clip is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        if not math.isfinite(grad_norm):
            raise ValueError(f"the gradient norm is {grad_norm}")
        return grad_norm

    def apply(self, loss: Tensor) -> float:
        """One extra update now, from ``loss`` (backward, clipping, Adam step), for a step that
        makes several updates per iteration (e.g. DGFS ``minibatches``); the trainer still makes
        the update of the loss the step returns. Returns the gradient norm before clipping;
        ValueError on a non-finite loss or gradient (then ``fit`` stops with a TrainingError)."""
        if not bool(torch.isfinite(loss.detach())):
            raise ValueError(f"the loss is {float(loss.detach())}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self._reduce_and_clip()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _checkpoint_note(self) -> str:
        if self.last_checkpoint is None:
            return "No checkpoint was written in this session."
        it, path = self.last_checkpoint
        return f"The last good checkpoint is {path!r} (iteration {it})."

    # --- checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "name": self.name, "fingerprint": self.fingerprint,
                "iteration": self.iteration,
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "optimizer": self.optimizer.state_dict(),
                "generators": {k: g.get_state() for k, g in self.generators.items()},
                "history": self.history.to_dict(),
                **({"extra": self.extra_state()} if self.extra_state else {})}

    def save(self, path: str) -> None:
        """Write a checkpoint atomically (a crash mid-write leaves the old file intact).
        Distributed: rank 0 writes (the state is the same on every rank)."""
        path = os.fspath(path)
        if self.shard.is_main:
            write_checkpoint(self.state_dict(), path)
        self.last_checkpoint = (self.iteration, path)

    def load(self, path: str) -> None:
        """Restore a checkpoint written by ``save``; ValueError if it is corrupted or mismatched."""
        path = os.fspath(path)
        with self.shard.guard():  # a missing / bad file on one rank stops every rank
            self.load_state_dict(read_checkpoint(path), source=repr(path))
        self.shard.agree()
        self.last_checkpoint = (self.iteration, path)

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        check_checkpoint(state, name=self.name, fingerprint=self.fingerprint, modules=self.modules,
                         generators=self.generators, source=source)
        try:
            for k, m in self.modules.items():
                m.load_state_dict(state["modules"][k])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(f"{source} does not fit this {self.name}'s networks: {err}") from err
        for k, g in self.generators.items():
            g.set_state(state["generators"][k])
        self.iteration = int(state["iteration"])
        self.history = History.from_dict(state["history"])
        if self.load_extra_state:
            self.load_extra_state(state.get("extra", {}))
