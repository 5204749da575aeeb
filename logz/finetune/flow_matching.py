"""Conditional flow matching with the linear (rectified / OT) path, and PF-ODE sampling and likelihood.

Path x_t = (1 - t) x0 + t x1, x0 ~ N(0, I) at t = 0 (noise), x1 ~ data at t = 1.
The velocity network regresses the conditional target x1 - x0 (Lipman et al. 2022):

    L(theta) = E_{t ~ U[0,1], x0, x1} |v_theta(x_t, t) - (x1 - x0)|^2.

Sampling integrates dx/dt = v with the shared ODE solvers (``logz.sde.odeint``).
Likelihood integrates the PF-ODE backward with the instantaneous change of variables
log p_1(x_1) = log N(x_0; 0, I) - int_0^1 div v(x_t, t) dt, the divergence exact
(d vector-Jacobian products; default for d <= 10) or Hutchinson's estimator
(one Rademacher probe per path, fixed along the path; unbiased for log p).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from logz.finetune.interpolants import Interpolant, make_interpolant
from logz.finetune.nets import VelocityMLP
from logz.sde import odeint, uniform_grid
from logz.training import History, Trainer, read_checkpoint

Velocity = Callable[[Tensor, Tensor], Tensor]


def sample_ode(velocity: Velocity, n: int, dim: int, *, num_steps: int = 100, method: str = "rk4",
               generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32,
               device=None, x0: Optional[Tensor] = None) -> Tensor:
    """Samples x_1 of dx/dt = v(x, t) from x_0 ~ N(0, I) (or the given x0). Tensor[n, dim]."""
    if x0 is None:
        x0 = torch.randn(int(n), int(dim), generator=generator, dtype=dtype, device=device)
    times = uniform_grid(1.0, num_steps, dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        return odeint(velocity, x0, times, method=method)


def _divergence(v: Tensor, x: Tensor, probe: Optional[Tensor]) -> Tensor:
    """div_x v, exact (d VJPs) or Hutchinson with ``probe`` [B, d]. Returns Tensor[B]."""
    if probe is not None:
        (vjp,) = torch.autograd.grad(v, x, probe, create_graph=False)
        return (vjp * probe).sum(-1)
    div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(x.shape[1]):
        (g,) = torch.autograd.grad(v[:, i].sum(), x, retain_graph=i + 1 < x.shape[1])
        div = div + g[:, i]
    return div


def log_prob_ode(velocity: Velocity, x: Tensor, *, num_steps: int = 100, method: str = "rk4",
                 divergence: str = "auto", generator: Optional[torch.Generator] = None) -> Tensor:
    """log p_1(x) of the flow dx/dt = v from N(0, I), by the PF-ODE. x: Tensor[B, d] -> Tensor[B].

    ``divergence``: "exact", "hutchinson" or "auto" (exact for d <= 10).
    """
    if x.ndim != 2:
        raise ValueError(f"x must be Tensor[B, d], got {tuple(x.shape)}")
    B, d = x.shape
    if divergence == "auto":
        divergence = "exact" if d <= 10 else "hutchinson"
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact', 'hutchinson' or 'auto', got {divergence!r}")
    probe = None
    if divergence == "hutchinson":
        probe = torch.randint(0, 2, (B, d), generator=generator, device=x.device).to(x.dtype) * 2 - 1

    def reversed_field(state: Tensor, s: Tensor) -> Tensor:
        # s = 1 - t runs 0 -> 1 while t runs 1 -> 0; state = [x, accumulated -div]
        with torch.enable_grad():
            xs = state[:, :d].detach().requires_grad_(True)
            v = velocity(xs, 1 - s)
            div = _divergence(v, xs, probe)
        return torch.cat([-v.detach(), div.detach()[:, None]], dim=-1)

    state0 = torch.cat([x.detach(), torch.zeros(B, 1, dtype=x.dtype, device=x.device)], dim=-1)
    times = uniform_grid(1.0, num_steps, dtype=x.dtype, device=x.device)
    out = odeint(reversed_field, state0, times, method=method)
    x0, int_div = out[:, :d], out[:, d]
    log_p0 = -0.5 * (x0 ** 2).sum(-1) - 0.5 * d * math.log(2 * math.pi)
    return log_p0 - int_div


def data_source(data, dtype: torch.dtype, device=None, *, model_dim: Optional[int] = None
                ) -> tuple[Callable[[int, torch.Generator], Tensor], int]:
    """Training rows for flow models: ``draw(n, generator) -> Tensor[n, d]`` from a data tensor
    Tensor[n, d] (rows drawn with replacement) or from a logz target's ``sample``, and d.
    ``model_dim``: the dimension a model already has (a mismatch is a ValueError)."""
    if isinstance(data, Tensor):
        if data.ndim != 2:
            raise ValueError(f"data must be Tensor[n, d], got {tuple(data.shape)}")
        data = data.to(device=device, dtype=dtype)
        draw = lambda n, g: data[torch.randint(0, data.shape[0], (n,), generator=g, device=data.device)]  # noqa: E731
        dim = data.shape[1]
    elif hasattr(data, "sample") and hasattr(data, "dim"):
        draw = lambda n, g: data.sample(n, generator=g).to(device=device, dtype=dtype)  # noqa: E731
        dim = int(data.dim)
    else:
        raise TypeError("fit(data): data must be a Tensor[n, d] or a target with sample(n, generator=...) and dim")
    if model_dim is not None and model_dim != dim:
        raise ValueError(f"model dim {model_dim} does not match data dim {dim}")
    return draw, dim


class FlowMatching:
    """Conditional flow-matching base model on the linear path.

    Args:
        dim: data dimension (inferred from data/target at ``fit`` if None).
        net: velocity network v(x, t); default ``VelocityMLP(dim, hidden, depth)``.
        hidden, depth: default network size.
        lr, batch_size: Adam step size and minibatch size.
        lr_schedule: ``"cosine"`` (default): the learning rate decays to 0 by a cosine over the
            iterations of the first ``fit``; or None (constant), or a ``logz.training.make_schedule``
            spec such as ``{"kind": "cosine", "total": 5000}`` (fixed up front, so a fit resumed
            from a checkpoint continues it bit-identically).
        seed: seeds the initialization and the training noise.
        device, dtype: where training runs (float32 default).
        interpolant: the path, "linear" (default), "gvp", "vp" or an ``Interpolant``
            (``logz.finetune.interpolants``); the velocity target is alpha' x1 + sigma' x0.
    Attributes after ``fit``: ``velocity`` (the trained network), ``history`` (a
    ``logz.training.History``), ``trainer``; ``save`` / ``load`` checkpoint the training.
    """

    name = "flow_matching"

    def __init__(self, dim: Optional[int] = None, net: Optional[nn.Module] = None, *, hidden: int = 128,
                 depth: int = 3, lr: float = 2e-3, batch_size: int = 256,
                 lr_schedule: Union[str, None, Mapping[str, Any], Callable[[int], float]] = "cosine",
                 seed: int = 0, device=None, dtype: torch.dtype = torch.float32,
                 interpolant: Union[str, Interpolant] = "linear"):
        self.interpolant = make_interpolant(interpolant)
        self.dim, self.hidden, self.depth = dim, int(hidden), int(depth)
        self.lr, self.batch_size, self.seed = float(lr), int(batch_size), int(seed)
        if isinstance(lr_schedule, str) and lr_schedule != "cosine":
            raise ValueError(f"lr_schedule must be 'cosine', None, a mapping or a callable, got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        self.device, self.dtype = torch.device(device or "cpu"), dtype
        self.velocity: Optional[nn.Module] = net
        self.trainer: Optional[Trainer] = None  # built at the first fit or load (the dimension is known then)
        self._draw: Optional[Callable[[int, torch.Generator], Tensor]] = None

    def fit(self, data: Union[Tensor, object], iterations: int = 2000, progress: bool = False) -> History:
        """Train on a data tensor Tensor[n, d] or on ``data.sample`` of a logz target. A further
        call (or one after ``load``) continues the training: optimizer, data stream, schedule."""
        draw, self.dim = data_source(data, self.dtype, self.device, model_dim=self.dim)
        if self.trainer is None:
            schedule = self.lr_schedule
            if schedule == "cosine":
                schedule = {"kind": "cosine", "total": max(int(iterations), 1)}
            self._build(schedule)
        elif self.trainer.lr_schedule is not None and self.trainer.lr_schedule(self.trainer.iteration) == 0:
            warnings.warn(f"FlowMatching: the learning-rate schedule {self.trainer.fingerprint['lr_schedule']} "
                          f"has reached 0 at iteration {self.trainer.iteration} (the default cosine spans the "
                          f"first fit), so these iterations change nothing; pass lr_schedule=None or a "
                          f"longer schedule to train further", UserWarning, stacklevel=2)
        self._draw = draw
        self.velocity.train()
        try:
            return self.trainer.fit(iterations, progress=progress)
        finally:
            self.velocity.eval()

    def _build(self, schedule) -> None:
        """The network (unless given) and its ``Trainer`` with learning-rate ``schedule``."""
        if self.velocity is None:
            torch.manual_seed(self.seed)
            self.velocity = VelocityMLP(self.dim, self.hidden, self.depth)
        self.velocity.to(self.device, self.dtype)
        fingerprint = {"dim": self.dim, "net": type(self.velocity).__name__, "hidden": self.hidden,
                       "depth": self.depth, "lr": self.lr, "batch_size": self.batch_size,
                       "dtype": str(self.dtype),
                       "lr_schedule": schedule if schedule is None or isinstance(schedule, Mapping)
                       else getattr(schedule, "__qualname__", type(schedule).__name__)}
        if self.interpolant.name != "linear":   # (linear-path checkpoints keep their fingerprint)
            fingerprint["interpolant"] = repr(self.interpolant)
        self.trainer = Trainer({"velocity": self.velocity}, self._step, lr=self.lr, grad_clip=None,
                               lr_schedule=schedule, fingerprint=fingerprint, name=self.name,
                               generators={"data": torch.Generator(device="cpu").manual_seed(self.seed)})

    def _step(self, iteration: int) -> dict[str, Tensor]:
        g = self.trainer.generators["data"]
        x1 = self._draw(self.batch_size, g)
        x0 = torch.randn(x1.shape, generator=g, dtype=self.dtype).to(self.device)
        t = self.interpolant.sample_time(x1.shape[0], g, self.dtype).to(self.device)
        xt, target = self.interpolant.pair(x0, x1, t)
        return {"loss": (self.velocity(xt, t) - target).pow(2).sum(-1).mean()}

    @property
    def history(self) -> History:
        """What ``fit`` recorded (``logz.training.History``: ``loss`` per iteration, ...), cumulative."""
        return self.trainer.history if self.trainer is not None else History()

    def save(self, path: str) -> None:
        """Checkpoint the network, optimizer, data-stream RNG, iteration and history, with this
        configuration's fingerprint (tensors and plain data)."""
        if self.trainer is None:
            raise RuntimeError("FlowMatching: nothing to save before fit()")
        self.trainer.save(path)

    def load(self, path: str) -> None:
        """Restore a checkpoint written by ``save`` (into a fresh or a fitted model of the same
        configuration); a ``fit`` after it continues bit-identically. Read with
        ``torch.load(weights_only=True)``: a file holding a pickled object is refused, nothing in it
        runs. ValueError if corrupted or of another configuration."""
        state = read_checkpoint(path)
        fingerprint = state.get("fingerprint") if isinstance(state, Mapping) else None
        if not isinstance(fingerprint, Mapping) or state.get("name") != self.name:
            raise ValueError(f"checkpoint {str(path)!r} is not a {self.name} checkpoint")
        if self.trainer is None:
            schedule = self.lr_schedule
            if schedule == "cosine":
                schedule = fingerprint.get("lr_schedule")
                if isinstance(schedule, str):
                    raise ValueError(f"checkpoint {str(path)!r} was trained with the schedule {schedule}, a "
                                     f"callable: pass it as lr_schedule= to load it")
            self.dim = self.dim if self.dim is not None else int(fingerprint["dim"])
            self._build(schedule)
        self.trainer.load_state_dict(state, source=repr(str(path)))
        self.trainer.last_checkpoint = (self.trainer.iteration, str(path))
        self.velocity.eval()

    def _require(self) -> nn.Module:
        if self.velocity is None:
            raise RuntimeError("FlowMatching: call fit() first (or pass a trained net)")
        return self.velocity

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        """The velocity v(x, t), so the model itself is a base for fine-tuning."""
        return self._require()(x, t)

    def sample(self, n: int, *, num_steps: int = 100, method: str = "rk4",
               generator: Optional[torch.Generator] = None) -> Tensor:
        """Samples from the ODE, Tensor[n, dim]."""
        return sample_ode(self._require(), n, self.dim, num_steps=num_steps, method=method,
                          generator=generator, dtype=self.dtype, device=self.device)

    def log_prob(self, x: Tensor, *, num_steps: int = 100, method: str = "rk4", divergence: str = "auto",
                 generator: Optional[torch.Generator] = None) -> Tensor:
        """Model log-density by the PF-ODE, Tensor[B]."""
        return log_prob_ode(self._require(), x.to(self.device, self.dtype), num_steps=num_steps,
                            method=method, divergence=divergence, generator=generator)
