"""What every SOC fine-tuner shares: input checks, the fine-tuned model, simulation, sampling, training.

A fine-tuner tilts a flow-matching base v_base toward p*(x) ∝ p_base(x) exp(lambda r(x))
by learning v_ft. Subclasses implement only ``_loss`` (one minibatch objective); the loop,
the ``History``, and fingerprinted checkpoints that resume bit-identically are those of
``logz.training.Trainer``, as for the learned samplers.

- ``base``: a velocity v(x, t) -> Tensor[B, d] (an ``nn.Module``, a closed-form
  ``GaussianMixtureVelocity``, or a fitted ``FlowMatching``).
- ``reward``: r(x) -> Tensor[B], differentiable (or a target: r = log_prob).
- ``model``: the fine-tuned velocity; default a trainable copy of the base, or
  base + zero-initialized MLP when the base has no parameters.
"""

from __future__ import annotations

import copy
import types
from typing import Any, Callable, Mapping, Optional, Union

import torch
from torch import Tensor, nn

from logz.finetune.nets import ResidualVelocity, VelocityMLP
from logz.finetune.noise import FlowSDE, NoiseSchedule, as_noise, check_velocity
from logz.sde import integrate, odeint, uniform_grid
from logz.training import History, Trainer, read_checkpoint

Reward = Callable[[Tensor], Tensor]


def _resolve_velocity(base) -> Callable[[Tensor, Tensor], Tensor]:
    vel = getattr(base, "velocity", None)
    if isinstance(vel, nn.Module):  # a fitted FlowMatching
        return vel
    if callable(base):
        return base
    raise TypeError(f"base must be a velocity v(x, t) or a fitted FlowMatching, got {type(base).__name__}")


def reward_and_grad(reward: Reward, x: Tensor, name: str = "reward") -> tuple[Tensor, Tensor]:
    """Validated r(x) Tensor[B] and grad r(x) Tensor[B, d] (both detached).

    Raises ValueError with the reason if r returns a non-tensor, the wrong shape,
    NaN/inf, has no autograd graph (not differentiable), or a non-finite gradient.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        r = reward(xg)
        if not isinstance(r, Tensor):
            raise ValueError(f"{name} must return a torch.Tensor, got {type(r).__name__}")
        if r.shape != (x.shape[0],):
            raise ValueError(f"{name} returned shape {tuple(r.shape)} for x of shape {tuple(x.shape)}; "
                             f"expected [{x.shape[0]}] (one value per sample)")
        bad = ~torch.isfinite(r)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"{name} returned {float(r[i].detach())} at sample {i} (x = {x[i].tolist()[:6]}); "
                             f"{int(bad.sum())} of {x.shape[0]} values are NaN or inf")
        if not r.requires_grad:
            raise ValueError(f"{name} is not differentiable in x (its output has no autograd graph); "
                             f"Adjoint Matching needs grad r. Write it with torch operations.")
        (grad,) = torch.autograd.grad(r.sum(), xg)
    if not bool(torch.isfinite(grad).all()):
        raise ValueError(f"gradient of {name} is not finite at some samples")
    return r.detach(), grad.detach()


def as_reward(reward) -> Reward:
    """A callable r(x) passes through; a logz target (not callable) gives r = log_prob."""
    if not callable(reward) and hasattr(reward, "log_prob"):
        return reward.log_prob
    if callable(reward):
        return reward
    raise TypeError(f"reward must be a callable r(x) -> Tensor[B] or a target, got {type(reward).__name__}")


class FineTuner:
    """Shared machinery; see the module docstring. Subclasses implement ``_loss``.

    Args:
        base: base velocity (see module docstring).
        reward: r(x) -> Tensor[B].
        dim: data dimension (taken from the base when it has ``dim``).
        model: fine-tuned velocity module (default: see module docstring).
        num_steps: K, Euler–Maruyama steps on [0, 1] for training trajectories.
        noise: sigma(t); None -> memoryless with offset h = 1/K.
        reward_scale: lambda in p* ∝ p_base exp(lambda r).
        batch_size, lr, betas, grad_clip: optimizer settings (Adam).
        hidden, depth: size of the default residual MLP.
        seed, device, dtype: reproducibility and placement (float32 default).
    """

    name = "finetuner"

    def __init__(self, base, reward, *, dim: Optional[int] = None, model: Optional[nn.Module] = None,
                 num_steps: int = 40, noise: Union[None, float, NoiseSchedule, Callable] = None,
                 reward_scale: float = 1.0, batch_size: int = 64, lr: float = 1e-3,
                 betas: tuple = (0.9, 0.999), grad_clip: Optional[float] = None, hidden: int = 64,
                 depth: int = 2, seed: int = 0, device=None, dtype: torch.dtype = torch.float32):
        if int(num_steps) < 2:
            raise ValueError(f"num_steps must be >= 2, got {num_steps}")
        self.device, self.dtype = torch.device(device or "cpu"), dtype
        self.base_velocity = _resolve_velocity(base)
        dim = dim if dim is not None else getattr(base, "dim", None)
        if dim is None:
            raise ValueError("cannot infer the dimension from the base; pass dim=")
        self.dim = int(dim)
        if isinstance(self.base_velocity, nn.Module):
            self.base_velocity = copy.deepcopy(self.base_velocity).to(self.device, self.dtype).eval()
            for p in self.base_velocity.parameters():
                p.requires_grad_(False)
        check_velocity(self.base_velocity, self.dim, self.dtype, self.device, name="base velocity")
        self.reward = as_reward(reward)
        self.reward_scale = float(reward_scale)
        self.num_steps, self.batch_size = int(num_steps), int(batch_size)
        self.noise = as_noise(noise, self.num_steps)
        torch.manual_seed(seed)
        if model is None:
            has_params = isinstance(self.base_velocity, nn.Module) and any(
                True for _ in self.base_velocity.parameters())
            if has_params:
                model = copy.deepcopy(self.base_velocity)
                for p in model.parameters():
                    p.requires_grad_(True)
            else:
                model = ResidualVelocity(self.base_velocity, VelocityMLP(self.dim, hidden, depth, zero_init=True))
        self.model = model.to(self.device, self.dtype)
        self.model.train()
        check_velocity(self.model, self.dim, self.dtype, self.device, name="fine-tuned model")
        self.base_sde = FlowSDE(self.base_velocity, self.noise)
        self.sde = FlowSDE(self.model, self.noise)
        self.times = uniform_grid(1.0, self.num_steps, dtype=self.dtype, device=self.device)
        sig = torch.as_tensor(self.noise(self.times[:-1].double()))
        if not bool(torch.isfinite(sig).all()) or not bool((sig > 0).all()):
            raise ValueError(f"noise {self.noise!r} must be finite and > 0 on the grid's step times "
                             f"(t = 0 included); a memoryless schedule needs an offset h > 0")
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)
        self.lr, self.betas, self.grad_clip = float(lr), tuple(betas), grad_clip
        self._trainer: Optional[Trainer] = None  # built when first needed (a model may have no parameters)

    # --- pieces -------------------------------------------------------
    def control(self, x: Tensor, t: Tensor) -> Tensor:
        """u = kappa(t) (v_ft - v_base) / sigma(t), Tensor[B, d] (see ``noise.py``)."""
        scale = (self.sde.kappa(t) / self.noise(t)).to(x)
        if scale.ndim == 1:
            scale = scale[:, None]
        return scale * (self.model(x, t) - self.base_velocity(x, t))

    def _x0(self, n: int, generator: Optional[torch.Generator]) -> Tensor:
        g = generator if generator is not None else self.generator
        return torch.randn(int(n), self.dim, generator=g, dtype=self.dtype).to(self.device)

    def simulate(self, n: int, generator: Optional[torch.Generator] = None):
        """Paths of the fine-tuned SDE (= base SDE + sigma u), no gradients. Returns a
        ``logz.sde.Trajectory`` with states Tensor[K+1, n, d]."""
        g = generator if generator is not None else self.generator
        with torch.no_grad():
            return integrate(self.sde, self._x0(n, g), self.times, generator=g, log_densities=False,
                             keep_path=True)

    def reward_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """lambda r(x) and its gradient, validated. Shapes [B], [B, d]."""
        r, g = reward_and_grad(self.reward, x)
        return self.reward_scale * r, self.reward_scale * g

    def _loss(self) -> Mapping[str, Tensor]:
        """One minibatch objective: ``{"loss": Tensor[] to backpropagate, "reward": mean lambda r(X_1)
        of the batch, ...}``; every entry but ``loss`` is recorded in ``History.metrics``."""
        raise NotImplementedError

    def fingerprint(self) -> dict:
        """The configuration a checkpoint must match to be loaded (plain data). The base and the
        reward are named by their type: a callable cannot be compared."""
        return {"dim": self.dim, "num_steps": self.num_steps, "noise": _describe(self.noise),
                "reward_scale": self.reward_scale, "batch_size": self.batch_size, "lr": self.lr,
                "betas": list(self.betas), "grad_clip": self.grad_clip, "dtype": str(self.dtype),
                "model": type(self.model).__name__, "base": _describe(self.base_velocity),
                "reward": _describe(self.reward)}

    # --- training -----------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        """The ``logz.training.Trainer`` of the fine-tuned model (Adam, clipping, history, checkpoints)."""
        if self._trainer is None:
            self._trainer = Trainer({"model": self.model}, lambda iteration: self._loss(), lr=self.lr,
                                    betas=self.betas, grad_clip=self.grad_clip,
                                    generators={"sample": self.generator}, fingerprint=self.fingerprint(),
                                    name=self.name)
        return self._trainer

    @property
    def history(self) -> History:
        """What ``fit`` recorded: ``loss`` per iteration, ``metrics["reward"]`` (mean lambda r(X_1) of
        each training batch), gradient norms, ``wall_time``; cumulative, and kept by save/load."""
        return self._trainer.history if self._trainer is not None else History()

    # --- public API ---------------------------------------------------
    def fit(self, iterations: int, progress: bool = False) -> History:
        """Run ``iterations`` optimizer steps; returns (and extends) ``self.history``. A
        ``logz.training.TrainingError`` (a ValueError) names the iteration of a bad value."""
        trainer = self.trainer
        self.model.train()
        return trainer.fit(iterations, progress=progress)

    def sample(self, n: int, *, method: str = "ode", num_steps: Optional[int] = None,
               ode_method: str = "rk4", generator: Optional[torch.Generator] = None) -> Tensor:
        """Fine-tuned samples, Tensor[n, d]: the ODE dx = v_ft dt (``method="ode"``, default
        100 steps) or the memoryless SDE (``"sde"``, default ``num_steps`` of training)."""
        g = generator if generator is not None else self.generator
        x0 = self._x0(n, g)
        self.model.eval()
        with torch.no_grad():
            if method == "ode":
                times = uniform_grid(1.0, num_steps or 100, dtype=self.dtype, device=self.device)
                out = odeint(self.model, x0, times, method=ode_method)
            elif method == "sde":
                times = uniform_grid(1.0, num_steps or self.num_steps, dtype=self.dtype, device=self.device)
                out = integrate(self.sde, x0, times, generator=g, log_densities=False, keep_path=False).final
            else:
                raise ValueError(f"method must be 'ode' or 'sde', got {method!r}")
        self.model.train()
        return out

    def save(self, path: str) -> None:
        """Checkpoint the fine-tuned model, optimizer, RNG state, iteration and history, with this
        configuration's fingerprint (a ``logz.training`` checkpoint: tensors and plain data)."""
        self.trainer.save(path)

    def load(self, path: str) -> None:
        """Restore a checkpoint written by ``save``; a ``fit`` after it continues bit-identically.

        The file is read with ``torch.load(weights_only=True)``: one holding anything but tensors
        and plain data (a pickled object) is refused and nothing in it runs. ValueError if it is
        corrupted, from another fine-tuner or configuration, or from a logz release whose
        fine-tuners saved only the model and history."""
        state = read_checkpoint(path)
        if isinstance(state, Mapping) and "format" not in state and {"model", "history"} <= set(state):
            raise ValueError(f"checkpoint {str(path)!r} was written by an older logz fine-tuner (model "
                             f"weights and history only, no optimizer or RNG state) and cannot be resumed; "
                             f"its weights are torch.load(path, weights_only=True)['model']")
        self.trainer.load_state_dict(state, source=repr(str(path)))
        self.trainer.last_checkpoint = (self.trainer.iteration, str(path))


def _describe(obj: Any) -> str:
    """A plain-text name for a configuration object, never holding a memory address: a bound
    method as ``Owner.method``, a function by its qualified name, a module (whose repr lists
    layers) or an object without its own repr by its type, anything else by its repr."""
    if isinstance(obj, types.MethodType):
        return f"{type(obj.__self__).__name__}.{obj.__name__}"
    if isinstance(obj, types.FunctionType):
        return obj.__qualname__
    if isinstance(obj, nn.Module) or type(obj).__repr__ is object.__repr__:
        return type(obj).__name__
    return repr(obj)
