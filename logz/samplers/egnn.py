"""E(n)-equivariant graph network (EGNN; Satorras, Hoogeboom & Welling 2021) as a vector field
for particle systems: the network Adjoint Sampling and the other particle samplers of the
field (DEM, iDEM, Adjoint Sampling) use on DW-4 and LJ-13.

A state x in R^{n d} is n particles in d dimensions. All particles have the same type, so the
node features start from the time embedding alone; each layer updates messages, positions
and node features from pair distances only:

    m_ij = phi_e(h_i, h_j, |x_i - x_j|^2, emb(t))
    x_i <- x_i + sum_{j != i} (x_i - x_j) / (|x_i - x_j| + 1) * phi_x(m_ij) / (n - 1)
    h_i <- h_i + phi_h(h_i, sum_j m_ij)

and the output is the total displacement x_L - x_0 plus b(t) * x_bar (x_bar: the centre of
mass, broadcast to every particle). The displacement is equivariant to rotations and
reflections, to permutations of the particles, and invariant to translations; the b(t) x_bar
term (learned, starts at 0) lets the field act on the centre of mass, which the
centre-of-mass restraint of ``logz.targets.particles`` makes matter. The last layer of every
phi_x starts at zero, so the field starts at 0 like the zero-initialized MLPs of ``nets``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from logz.samplers.nets import FourierTimeEmbedding, TimeScale, _mlp, _time_column, _zero_


class _EGNNLayer(nn.Module):
    """One message-passing layer. phi_e's first linear map is split by input (source node,
    destination node, distance, time), so the node and time parts are computed once per node
    and per sample, not once per pair: the pair cost is a gather and one H x H layer."""

    def __init__(self, hidden: int, time_channels: int, activation: type[nn.Module]):
        super().__init__()
        self.src, self.dst = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden, bias=False)
        self.dist, self.time = nn.Linear(1, hidden, bias=False), nn.Linear(time_channels, hidden, bias=False)
        self.edge = nn.Sequential(activation(), nn.Linear(hidden, hidden), activation())
        self.phi_x = _mlp([hidden, hidden, 1], activation)
        self.phi_h = _mlp([2 * hidden, hidden, hidden], activation)
        _zero_(self.phi_x[-1])

    def forward(self, h: Tensor, pos: Tensor, emb: Tensor, i: Tensor, j: Tensor) -> tuple[Tensor, Tensor]:
        n = pos.shape[1]
        diff = pos[:, i] - pos[:, j]  # [B, P, d]
        dist2 = (diff ** 2).sum(-1, keepdim=True)
        pre = (self.src(h) + self.time(emb)[:, None])[:, i] + self.dst(h)[:, j] + self.dist(dist2)
        m = self.edge(pre)  # [B, P, H]
        shift = diff / (dist2.sqrt() + 1.0) * self.phi_x(m)
        pos = pos + torch.zeros_like(pos).index_add_(1, i, shift) / (n - 1)
        agg = torch.zeros_like(h).index_add_(1, i, m)
        return h + self.phi_h(torch.cat([h, agg], -1)), pos


class EGNN(nn.Module):
    """v(x, t): Tensor[B, n * d], t (0-dim or Tensor[B]) -> Tensor[B, n * d], E(n)-equivariant.

    Args:
        n_particles, spatial_dim: n and d (the state is the row-major flattening of [n, d]).
        hidden: width of the node features, messages and time embedding.
        layers: message-passing layers. T: time horizon (scales the time embedding).
    """

    def __init__(self, n_particles: int, spatial_dim: int, *, hidden: int = 64, layers: int = 4,
                 T: float = 1.0, activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        for name, v in (("n_particles", n_particles), ("spatial_dim", spatial_dim), ("hidden", hidden),
                        ("layers", layers)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if n_particles < 2:
            raise ValueError(f"EGNN needs at least 2 particles, got {n_particles}")
        self.n, self.d, self.hidden = int(n_particles), int(spatial_dim), int(hidden)
        self.time_embed = FourierTimeEmbedding(hidden, T)
        self.node_in = _mlp([2 * hidden, hidden, hidden], activation)
        self.layers = nn.ModuleList(_EGNNLayer(hidden, 2 * hidden, activation) for _ in range(layers))
        self.com_scale = TimeScale(1, hidden=hidden, layers=2, T=T, init=0.0)
        # pairs i != j, as flat index lists (messages are computed for these only)
        i, j = torch.where(~torch.eye(self.n, dtype=torch.bool))
        self.register_buffer("_i", i, persistent=False)
        self.register_buffer("_j", j, persistent=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        B = x.shape[0]
        if x.ndim != 2 or x.shape[1] != self.n * self.d:
            raise ValueError(f"EGNN expects x of shape [B, {self.n * self.d}] ({self.n} particles x "
                             f"{self.d} dims), got {tuple(x.shape)}")
        pos0 = x.reshape(B, self.n, self.d)
        emb = self.time_embed(_time_column(t, x)).expand(B, -1)  # [B, 2H]
        h = self.node_in(emb)[:, None, :].expand(B, self.n, self.hidden)
        pos = pos0
        for layer in self.layers:
            h, pos = layer(h, pos, emb, self._i, self._j)
        com = pos0.mean(1, keepdim=True)
        out = pos - pos0 + self.com_scale(t).reshape(-1, 1, 1) * com
        return out.reshape(B, self.n * self.d)


__all__ = ["EGNN"]
