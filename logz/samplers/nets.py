"""Time-conditioned networks for learned samplers (PIS, DDS, DGFS, ...).

- ``FourierTimeEmbedding``: t -> [sin(w t + phi), cos(w t + phi)] with fixed frequencies
  w and learned phases phi (the "FourierMLP" time features of PIS / DGFS).
- ``FourierMLP``: NN(x, t) -> Tensor[B, out_dim]; the input and the time features are
  embedded separately and added, then an MLP; the last layer can start at zero.
- ``TimeScale``: c(t), a small network of t alone (scalar or one value per dimension).
- ``GradientDrift``: the "PIS-Grad" control u(x, t) = NN(x, t) + c(t) * clip(grad log p(x))
  (= NN - c(t) grad E), with the output clipped; optionally also a learned per-dimension
  log noise scale (``log_var_range``: gfn-diffusion's learned variance).

Time convention: every module takes ``t`` either as a 0-dim tensor (one time for the
whole batch, as inside ``logz.sde.integrate``) or as Tensor[B] (one per row, as in
``logz.sde.path_log_densities``); the time features are computed once per distinct row
of ``t`` and broadcast against x. Times are divided by ``T`` so features see t/T in [0, 1].
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

ScoreFn = Callable[[Tensor], Tensor]


def _time_column(t: Tensor, like: Optional[Tensor] = None) -> Tensor:
    """t (0-dim, [B] or [B, 1]) -> Tensor[1 or B, 1]."""
    t = torch.as_tensor(t)
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    if t.ndim > 2 or (t.ndim == 2 and t.shape[1] != 1):
        raise ValueError(f"time must be a scalar, Tensor[B] or Tensor[B, 1], got shape {tuple(t.shape)}")
    return t.reshape(-1, 1)


class FourierTimeEmbedding(nn.Module):
    """Fourier features of time: Tensor[1 or B] -> Tensor[1 or B, 2 * channels].

    Frequencies are fixed (``linspace(min_freq, max_freq, channels)``, as in the reference
    code: 0.1 to 100 for t/T in [0, 1]); phases are learned (initialised with the module's
    parameter initialisation, i.e. under the caller's RNG).
    """

    def __init__(self, channels: int = 64, T: float = 1.0, min_freq: float = 0.1,
                 max_freq: float = 100.0):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        if not T > 0:
            raise ValueError(f"time horizon T must be > 0, got {T}")
        self.T = float(T)
        self.register_buffer("freq", torch.linspace(min_freq, max_freq, channels)[None])
        self.phase = nn.Parameter(torch.randn(1, channels))

    def forward(self, t: Tensor) -> Tensor:
        arg = self.freq * (_time_column(t, self.freq) / self.T) + self.phase
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


def _mlp(widths: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        if i > 0:
            layers.append(activation())
        layers.append(nn.Linear(widths[i], widths[i + 1]))
    return nn.Sequential(*layers)


def _zero_(linear: nn.Linear, bias: float = 0.0) -> None:
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(bias)


class TimeConditioned(nn.Module):
    """A network u(x, t) whose time branch is computed apart: ``time_features(t)`` and
    ``forward_with_features(x, features)``, so that a simulation on a fixed grid computes the
    time branch once (``GridControl``). Samplers evaluate any other control module as is."""

    def time_features(self, t: Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_with_features(self, x: Tensor, features):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor, t: Tensor):
        return self.forward_with_features(x, self.time_features(t))


class FourierMLP(TimeConditioned):
    """NN(x, t): Tensor[B, dim], t (0-dim or Tensor[B]) -> Tensor[B, out_dim].

    h = Linear(x) + MLP_t(FourierTimeEmbedding(t)); out = Linear(act(... act(Linear(act(h))))).

    Args:
        dim: input dimension; out_dim: output dimension (default ``dim``).
        hidden: width of every hidden layer; layers: number of hidden-to-hidden layers.
        T: time horizon (features see t / T).
        zero_init: start the last layer at zero (the network outputs 0 at initialisation).
    """

    def __init__(self, dim: int, out_dim: Optional[int] = None, *, hidden: int = 64, layers: int = 2,
                 T: float = 1.0, zero_init: bool = True, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        _check_sizes(dim, hidden, layers)
        out_dim = dim if out_dim is None else out_dim
        self.time_embed = FourierTimeEmbedding(hidden, T)
        self.time_net = _mlp([2 * hidden, hidden, hidden], activation)
        self.input_embed = nn.Linear(dim, hidden)
        self.body = nn.Sequential(activation(), _mlp([hidden] * (layers + 1) + [out_dim], activation))
        self._compiled = None  # see compile_trunk
        if zero_init:
            _zero_(self.out)

    def compile_trunk(self, mode: Optional[str] = None) -> "FourierMLP":
        """Run ``forward_with_features`` (the per-step part: input layer, body) through
        ``torch.compile(mode=mode)``: one fused kernel chain instead of an op per layer. Modes
        as torch.compile's (e.g. "reduce-overhead" also captures CUDA graphs on GPUs).
        Parameters and state-dict keys are unchanged (checkpoints stay interchangeable)."""
        self._compiled = torch.compile(self._trunk, mode=mode)
        return self

    def _trunk(self, x: Tensor, features: Tensor) -> Tensor:
        return self.body(self.input_embed(x) + features)

    @property
    def out(self) -> nn.Linear:
        """The last layer."""
        return self.body[-1][-1]

    def time_features(self, t: Tensor) -> Tensor:
        """The time branch alone: Tensor[1 or B, hidden] (precomputable on a grid)."""
        return self.time_net(self.time_embed(t))

    def forward_with_features(self, x: Tensor, features: Tensor) -> Tensor:
        """NN(x, t) given ``time_features(t)`` (broadcast against x: [1 or B, hidden])."""
        if self._compiled is not None:
            return self._compiled(x, features)
        return self.body(self.input_embed(x) + features)

class TimeScale(nn.Module):
    """c(t): t (0-dim or Tensor[B]) -> Tensor[1 or B, out_dim]; starts at the constant ``init``."""

    def __init__(self, out_dim: int = 1, *, hidden: int = 64, layers: int = 2, T: float = 1.0,
                 init: float = 0.01, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        _check_sizes(out_dim, hidden, layers)
        self.time_embed = FourierTimeEmbedding(hidden, T)
        self.net = _mlp([2 * hidden] + [hidden] * layers + [out_dim], activation)
        _zero_(self.net[-1], init)

    def forward(self, t: Tensor) -> Tensor:
        return self.net(self.time_embed(t))


class GradientDrift(TimeConditioned):
    """The PIS-Grad control u(x, t) = clip(NN(x, t) + c(t) * clip(score(x), g), o).

    ``score(x)`` is grad log p~(x) = -grad E(x), Tensor[B, dim]; it is clipped elementwise
    to [-grad_clip, grad_clip] (NaN -> 0) and the output to [-out_clip, out_clip].
    With ``score=None`` the control is the plain network (PIS-NN).

    With ``log_var_range`` set, NN has 2 dim outputs and the control returns the pair
    (u, log_scale), log_scale = (log_var_range / 2) tanh(NN's second half): a per-dimension
    multiplier exp(log_scale) in [exp(-r/2), exp(r/2)] of the noise std (``logz.sde.integrate``),
    i.e. the variance times exp(+-r), as gfn-diffusion's ``learned_variance`` (r = 4 there).
    It starts at 1 (zero-initialised NN) so training starts from the fixed-noise policy.

    Args:
        dim: state dimension. score: callable x -> grad log p~(x), or None.
        hidden, layers: sizes of NN and of c(t). T: time horizon.
        zero_init: NN's last layer starts at zero. scale_init: c(t) starts at this constant.
        scale_per_dim: c(t) has one value per dimension instead of a scalar.
        log_var_range: None (fixed noise) or r > 0 (learned noise, above).
    """

    def __init__(self, dim: int, score: Optional[ScoreFn] = None, *, hidden: int = 64, layers: int = 2,
                 T: float = 1.0, zero_init: bool = True, scale_init: float = 0.01,
                 scale_per_dim: bool = False, grad_clip: float = 1e2, out_clip: float = 1e4,
                 log_var_range: Optional[float] = None):
        super().__init__()
        if not (grad_clip > 0 and out_clip > 0):
            raise ValueError(f"grad_clip and out_clip must be > 0, got {grad_clip}, {out_clip}")
        if log_var_range is not None and not (isinstance(log_var_range, (int, float)) and log_var_range > 0):
            raise ValueError(f"log_var_range must be None or > 0, got {log_var_range!r}")
        self.dim = int(dim)
        self.log_var_range = None if log_var_range is None else float(log_var_range)
        out_dim = dim if log_var_range is None else 2 * dim
        self.net = FourierMLP(dim, out_dim, hidden=hidden, layers=layers, T=T, zero_init=zero_init)
        self.score = score
        self.scale = (TimeScale(dim if scale_per_dim else 1, hidden=hidden, layers=layers, T=T,
                                init=scale_init) if score is not None else None)
        self.grad_clip, self.out_clip = float(grad_clip), float(out_clip)

    def time_features(self, t: Tensor) -> tuple[Tensor, ...]:
        """Everything that depends on t alone: (NN's time branch [1 or B, hidden],
        c(t) [1 or B, 1 or dim]) — or a 1-tuple without a score term."""
        feats = self.net.time_features(t)
        return (feats,) if self.scale is None else (feats, self.scale(t))

    def forward_with_features(self, x: Tensor, features: tuple[Tensor, ...]):
        """u(x, t) given ``time_features(t)`` (the pair (u, log_scale) with ``log_var_range``)."""
        out = self.net.forward_with_features(x, features[0])
        u, raw = (out, None) if self.log_var_range is None else out.split(self.dim, dim=-1)
        if self.score is not None:
            s = torch.nan_to_num(self.score(x)).clamp(-self.grad_clip, self.grad_clip)
            u = torch.addcmul(u, features[1], s)  # u + c(t) s, one op (and one backward node)
        u = u.clamp(-self.out_clip, self.out_clip)
        return u if raw is None else (u, (0.5 * self.log_var_range) * torch.tanh(raw))

class GridControl:
    """A time-conditioned module evaluated on a fixed grid, its time branch computed once.

    ``module`` has ``time_features(t)`` and ``forward_with_features(x, features)`` (as
    ``FourierMLP`` and ``GradientDrift``). The features of the N grid times t_0..t_{N-1}
    are computed in one batched call when the wrapper is made (keep it for one
    simulation: they carry the graph to the parameters). Then:

    - called with a 0-dim ``t`` (inside ``logz.sde.integrate``): the k-th call uses the
      features of t_k (the integrator calls the control once per step, in order;
      ``calls`` counts them);
    - called with ``t`` Tensor[N*B] (``logz.sde.path_log_densities``, step-major):
      features repeated B times per step.

    ``record_controls=True`` (per-step calls) simulates detached paths while keeping the
    control values for a loss: each call returns u detached, so the integrator's states
    carry no graph, and keeps u with its graph to the parameters; ``controls`` stacks them,
    Tensor[N, B, dim], for ``path_log_densities(..., controls=)``. Off-policy losses then
    need not re-evaluate the control (network and grad log p~) at the N*B simulated states:
    u(x_k, t_k) under the current parameters is exactly what the simulation computed.
    """

    def __init__(self, module: nn.Module, times: Tensor, *, record_controls: bool = False):
        self.module = module
        feats = module.time_features(times)  # Tensor[N, F] or a tuple of them
        self.features = feats if isinstance(feats, tuple) else (feats,)
        self._single = not isinstance(feats, tuple)
        # per-step views; their backward is one cheap stack per feature tensor
        self._rows = list(zip(*(f.unbind(0) for f in self.features)))
        self.calls = 0
        self._recorded: Optional[list[Tensor]] = [] if record_controls else None

    @property
    def controls(self):
        """The recorded control values Tensor[N, B, dim] (with their graph), once all N steps
        ran with ``record_controls=True``; else None. A pair (u, log_scale) of them for a
        control with a learned noise."""
        if self._recorded is None or len(self._recorded) != len(self._rows):
            return None
        if isinstance(self._recorded[0], tuple):
            return tuple(torch.stack(v) for v in zip(*self._recorded))
        return torch.stack(self._recorded)

    def __call__(self, x: Tensor, t: Tensor):
        if t.ndim == 0:
            if self.calls >= len(self._rows):
                raise RuntimeError("GridControl called more times than the grid has steps")
            feats = self._rows[self.calls]
            self.calls += 1
            u = self.module.forward_with_features(x, feats[0] if self._single else feats)
            if self._recorded is None:
                return u
            self._recorded.append(u)
            return tuple(v.detach() for v in u) if isinstance(u, tuple) else u.detach()
        N = len(self._rows)
        if t.shape[0] != x.shape[0] or x.shape[0] % N:
            raise ValueError(f"GridControl on a {N}-step grid got x {tuple(x.shape)}, t {tuple(t.shape)}")
        feats = tuple(f.repeat_interleave(x.shape[0] // N, dim=0) for f in self.features)
        return self.module.forward_with_features(x, feats[0] if self._single else feats)


def _check_sizes(dim: int, hidden: int, layers: int) -> None:
    for name, v, low in (("dim", dim, 1), ("hidden", hidden, 1), ("layers", layers, 1)):
        if isinstance(v, bool) or int(v) != v or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")


class LogZ(nn.Module):
    """A learned scalar log Z (trajectory balance)."""

    def __init__(self, init: float = 0.0):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> Tensor:
        return self.value
