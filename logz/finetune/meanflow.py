"""MeanFlow: a few-step flow map from the average velocity (Geng et al., "Mean Flows for
One-step Generative Modeling", arXiv 2505.13447).

In this library's time direction (x_0 ~ N(0, I) at t = 0, data at t = 1), the average velocity
over [s, t] along the flow of v is

    u(x, s, t) = 1/(t - s) int_s^t v(x_tau, tau) dtau,   x_s = x,

so x_t = x + (t - s) u(x, s, t): one evaluation crosses [s, t]. Differentiating
(t - s) u(x_s, s, t) = int_s^t v in s gives the MeanFlow identity

    u(x, s, t) = v(x, s) + (t - s) d/ds u(x_s, s, t),   d/ds u = v . grad_x u + partial_s u,

(the paper's MeanFlow identity with its time reversed). Training regresses u_theta(x_s, s, t) on the
stopped-gradient target v + (t - s) (v . grad_x u_theta + partial_s u_theta), the total
derivative computed by one forward-mode product (``torch.func.jvp``) with tangent (v, 1, 0).
v is the conditional velocity alpha' x1 + sigma' x0 of the path (training from scratch, as in
the paper) or a teacher's velocity v(x_s, s) (distillation). A fraction ``flow_fraction`` of
pairs has s = t, where the target is v itself (plain flow matching; the paper's best setting
keeps 75% of such pairs). Times are uniform here (the paper uses a logit-normal law).

Two variants are options of ``MeanFlow``:

* Modular MeanFlow (You, Liu and He, arXiv 2508.17426): the target's total derivative enters as
  SG_lambda(z) = lambda z + (1 - lambda) sg(z), so ``grad_modulation`` lambda = 0 is MeanFlow's
  stopped gradient and lambda = 1 differentiates through the target; ``modulation_warmup`` W
  raises lambda linearly from 0 to its value over the first W iterations (the paper's curriculum
  from coarse supervision to full gradients). lambda changes gradients only, never the loss value.
* Decoupled MeanFlow (Lee, Yu and Shin, arXiv 2510.24474): ``DecoupledFlowMap`` u(x, s, t) =
  g(f(x, s), t), the encoder f sees the start time, the decoder g the end time, so u(x, t, t) is a
  velocity network v(x, t) and a flow-matching model becomes a flow map without new weights
  (``DecoupledMLP``: an MLP with time features at every layer, trainable by ``FlowMatching`` as
  v(x, t) and fine-tuned here with ``net=``).
"""

from __future__ import annotations

from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from logz.finetune.flow_matching import data_source
from logz.finetune.interpolants import Interpolant, make_interpolant
from logz.finetune.nets import TimeFeatures
from logz.training import History, Trainer

Velocity = Callable[[Tensor, Tensor], Tensor]

__all__ = ["AverageVelocityMLP", "DecoupledFlowMap", "DecoupledMLP", "MeanFlow"]


class AverageVelocityMLP(nn.Module):
    """u(x, s, t): MLP on [x, features(s), features(t - s)] with SiLU. x: Tensor[B, d]; s, t:
    0-dim or Tensor[B]."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, num_freqs: int = 4):
        super().__init__()
        self.dim = int(dim)
        self.time = TimeFeatures(num_freqs)
        width = self.dim + 2 * self.time.out_dim
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, self.dim)

    def forward(self, x: Tensor, s: Tensor, t: Tensor) -> Tensor:
        B = x.shape[0]
        fs = self.time(torch.as_tensor(s, dtype=x.dtype), B).to(x.dtype)
        fd = self.time(torch.as_tensor(t, dtype=x.dtype) - torch.as_tensor(s, dtype=x.dtype), B).to(x.dtype)
        return self.out(self.body(torch.cat([x, fs, fd], dim=-1)))


class DecoupledFlowMap(nn.Module):
    """u(x, s, t) = decoder(encoder(x, s), t) (Decoupled MeanFlow, arXiv 2510.24474).

    encoder(x: Tensor[B, d], s) -> Tensor[B, h] sees only the start time s; decoder(h, t) ->
    Tensor[B, d] only the end time t. Called with one time, ``forward(x, t)`` is the velocity
    u(x, t, t) = v(x, t): the same weights are a flow-matching model and a flow map."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: Tensor, s: Tensor, t: Optional[Tensor] = None) -> Tensor:
        return self.decoder(self.encoder(x, s), s if t is None else t)


class _TimedMLP(nn.Module):
    """Layers Linear([h, features(t)]) -> SiLU: the time enters every layer (as in a DiT's adaLN
    blocks), so a later block can be conditioned on another time than an earlier one."""

    def __init__(self, width: int, hidden: int, depth: int, num_freqs: int, out: Optional[int] = None):
        super().__init__()
        self.time = TimeFeatures(num_freqs)
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.Linear(width + self.time.out_dim, hidden))
            width = hidden
        self.out = None if out is None else nn.Linear(width, out)

    def forward(self, h: Tensor, t: Tensor) -> Tensor:
        ft = self.time(torch.as_tensor(t, dtype=h.dtype), h.shape[0]).to(h.dtype)
        for layer in self.layers:
            h = nn.functional.silu(layer(torch.cat([h, ft], dim=-1)))
        return h if self.out is None else self.out(h)


class DecoupledMLP(DecoupledFlowMap):
    """``DecoupledFlowMap`` of two MLPs with time features at every layer: ``depth`` hidden layers,
    the last ``decoder_depth`` of them (and the output layer) conditioned on the end time.
    x: Tensor[B, d]; s, t: 0-dim or Tensor[B]."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, decoder_depth: int = 1,
                 num_freqs: int = 0):
        if not 0 <= decoder_depth < depth:
            raise ValueError(f"decoder_depth must be in [0, depth), got {decoder_depth} with depth {depth}")
        super().__init__(_TimedMLP(int(dim), hidden, depth - decoder_depth, num_freqs),
                         _TimedMLP(hidden, hidden, decoder_depth, num_freqs, out=int(dim)))
        self.dim = int(dim)


class MeanFlow:
    """Average-velocity model u(x, s, t), trained with the MeanFlow identity, sampled in few steps.

    Args:
        dim: data dimension (inferred at ``fit`` if None).
        net: u(x, s, t) network; default ``AverageVelocityMLP(dim, hidden, depth, num_freqs)``.
        interpolant: the path ("linear", "gvp", "vp" or an ``Interpolant``).
        teacher: a velocity v(x, t) to distil (None: the conditional velocity, from scratch).
        flow_fraction: fraction of training pairs with s = t.
        num_freqs: Fourier time features of the default net (0: s and t - s only). Few: the target
            differentiates u in s, and high frequencies amplify that derivative (measured on a 2-D
            Gaussian, distilled, 1500 iterations: 1-step W2 0.06 with 0 frequencies, 0.22 with 1;
            0.47 with 4 after 3000).
        adaptive_p: power p of the adaptive loss weight 1 / (|delta|^2 + 1e-3)^p (0: plain L2).
        grad_modulation: Modular MeanFlow's lambda in [0, 1] (0: MeanFlow's stopped gradient).
        modulation_warmup: iterations over which lambda rises linearly from 0 (0: constant).
        lr, batch_size, seed, dtype: training set-up (Adam via the shared ``Trainer``).
    """

    def __init__(self, dim: Optional[int] = None, net: Optional[nn.Module] = None, *, hidden: int = 128,
                 depth: int = 3, num_freqs: int = 0, interpolant: Union[str, Interpolant] = "linear",
                 teacher: Optional[Velocity] = None, flow_fraction: float = 0.75,
                 adaptive_p: float = 1.0, grad_modulation: float = 0.0, modulation_warmup: int = 0,
                 lr: float = 1e-3,
                 batch_size: int = 256, seed: int = 0, dtype: torch.dtype = torch.float32):
        if not 0.0 <= flow_fraction <= 1.0:
            raise ValueError(f"flow_fraction must be in [0, 1], got {flow_fraction}")
        self.dim, self.net, self.hidden, self.depth = dim, net, int(hidden), int(depth)
        self.num_freqs = int(num_freqs)
        self.path, self.teacher = make_interpolant(interpolant), teacher
        if not adaptive_p >= 0:
            raise ValueError(f"adaptive_p must be >= 0, got {adaptive_p}")
        self.adaptive_p = float(adaptive_p)
        if not 0.0 <= grad_modulation <= 1.0:
            raise ValueError(f"grad_modulation must be in [0, 1], got {grad_modulation}")
        if isinstance(modulation_warmup, bool) or int(modulation_warmup) != modulation_warmup \
                or modulation_warmup < 0:
            raise ValueError(f"modulation_warmup must be a non-negative integer, got {modulation_warmup!r}")
        self.grad_modulation, self.modulation_warmup = float(grad_modulation), int(modulation_warmup)
        self.flow_fraction, self.lr, self.batch_size = float(flow_fraction), float(lr), int(batch_size)
        self.seed, self.dtype = int(seed), dtype
        self.history = History()
        self._trainer: Optional[Trainer] = None

    def _times(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        lo, hi = self.path.t_min, self.path.t_max
        a = lo + (hi - lo) * torch.rand(n, generator=g, dtype=self.dtype)
        b = lo + (hi - lo) * torch.rand(n, generator=g, dtype=self.dtype)
        s, t = torch.minimum(a, b), torch.maximum(a, b)
        same = torch.rand(n, generator=g) < self.flow_fraction
        return torch.where(same, t, s), t

    def modulation(self, iteration: int) -> float:
        """Modular MeanFlow's lambda at a training iteration (the linear warm-up curriculum)."""
        if self.modulation_warmup == 0:
            return self.grad_modulation
        return self.grad_modulation * min(1.0, iteration / self.modulation_warmup)

    def loss(self, x0: Tensor, x1: Tensor, s: Tensor, t: Tensor, lam: Optional[float] = None) -> Tensor:
        """The MeanFlow regression loss on one batch (noise x0, data x1, times s <= t); ``lam``
        the gradient modulation (default ``grad_modulation``)."""
        lam = self.grad_modulation if lam is None else float(lam)
        xs, v = self.path.pair(x0, x1, s)
        if self.teacher is not None:
            with torch.no_grad():
                v = self.teacher(xs, s)
        u, du_ds = torch.func.jvp(self.net, (xs, s, t), (v, torch.ones_like(s), torch.zeros_like(t)))
        if lam != 0.0:  # SG_lambda(z) = lambda z + (1 - lambda) sg(z): same value, modulated gradient
            du_ds = lam * du_ds + (1.0 - lam) * du_ds.detach()
        target = v + (t - s)[:, None] * du_ds
        target = target.detach() if lam == 0.0 else target
        sq = (u - target).pow(2).sum(-1)
        if self.adaptive_p == 0:
            return sq.mean()
        # the paper's adaptive weight sg(1 / (|delta|^2 + c)^p) (p = 1 the paper's default)
        return (sq / (sq.detach() + 1e-3) ** self.adaptive_p).mean()

    def fit(self, data, iterations: int = 2000, progress: bool = False) -> History:
        """Train on a data tensor Tensor[n, d] or a target with ``sample``; returns ``History``."""
        draw, self.dim = data_source(data, self.dtype, model_dim=self.dim)
        dim = self.dim
        if self.net is None:
            torch.manual_seed(self.seed)
            self.net = AverageVelocityMLP(dim, self.hidden, self.depth, self.num_freqs)
        self.net.to(self.dtype)
        if self._trainer is None:
            g = torch.Generator().manual_seed(self.seed)

            def step(it: int):
                x1 = draw(self.batch_size, g)
                x0 = torch.randn(x1.shape, generator=g, dtype=self.dtype)
                s, t = self._times(x1.shape[0], g)
                return {"loss": self.loss(x0, x1, s, t, self.modulation(it))}

            self._trainer = Trainer({"net": self.net}, step, lr=self.lr, grad_clip=1.0,
                                    generators={"data": g}, name="meanflow",
                                    lr_schedule={"kind": "cosine", "total": max(int(iterations), 1),
                                                 "final_factor": 0.05})
        self.history = self._trainer.fit(iterations, progress=progress)
        self.net.eval()
        return self.history

    def __call__(self, x: Tensor, s, t) -> Tensor:
        if self.net is None:
            raise RuntimeError("MeanFlow: call fit() first (or pass a trained net)")
        return self.net(x, s, t)

    def sample(self, n: int, num_steps: int = 1, *, generator: Optional[torch.Generator] = None,
               x0: Optional[Tensor] = None) -> Tensor:
        """x_{k+1} = x_k + (t_{k+1} - t_k) u(x_k, t_k, t_{k+1}) on a uniform grid; NFE = num_steps."""
        if isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
        if x0 is None:
            if self.dim is None:
                raise RuntimeError("MeanFlow: call fit() first (or pass x0)")
            x0 = torch.randn(int(n), self.dim, generator=generator, dtype=self.dtype)
        times = torch.linspace(self.path.t_min, self.path.t_max, int(num_steps) + 1, dtype=x0.dtype)
        x = x0
        with torch.no_grad():
            for k in range(int(num_steps)):
                x = x + (times[k + 1] - times[k]) * self(x, times[k], times[k + 1])
        return x
