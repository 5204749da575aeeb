"""SCLD's replay buffer of sub-trajectories, prioritised by their incremental log-weights.

Per segment s (k_{s-1} -> k_s) the buffer keeps the last ``capacity`` detached
sub-trajectories (their states and log p~ at both ends) with a priority: the increment
log G of the segment under the parameters that last scored it. Training draws, per segment
and without replacement, ``n`` of them with probabilities softmax(log G / temperature)
(SCLD repository ``algorithms/scld/prioritised_buffer.py``: sub-trajectories the current
control under-weights most are replayed most), re-scores them under the current control
and writes the new increments back as their priorities (``update``).

Why a buffer: the log-variance loss is off-policy, so old sub-trajectories still teach; and
the ones with large increments are exactly where the path lags behind gamma_beta. Every
draw is with an explicit ``torch.Generator``; the contents travel in ``state_dict`` so a
checkpointed run resumes bit-identically.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor


class Stored(NamedTuple):
    """One segment's store: kept to re-score the sub-trajectories under new parameters."""

    states: Tensor       # [n, L+1, d] (n <= capacity; batch-first so rows append)
    start_log_p: Tensor  # [n] log p~ at the segment's start
    end_log_p: Tensor    # [n] log p~ at its end
    log_g: Tensor        # [n] priority: the increment under the parameters that last scored it


class SubtrajectoryBuffer:
    """Ring stores of sub-trajectories, one per segment.

    Args:
        capacity: sub-trajectories kept per segment (the oldest are dropped first).
        temperature: priorities are softmax(log G / temperature); ``inf``: uniform.
    """

    def __init__(self, capacity: int, temperature: float = 1.0):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"buffer capacity must be a positive integer, got {capacity!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"buffer temperature must be > 0, got {temperature!r}")
        self.capacity, self.temperature = int(capacity), float(temperature)
        self.stores: list[Stored] = []

    def __len__(self) -> int:
        return 0 if not self.stores else int(self.stores[0].log_g.numel())

    def add(self, segments: Sequence) -> None:
        """Append each segment's (``sequential.Segment``) sub-trajectories; rows with a
        non-finite state or increment are left out (they teach nothing and would poison the
        softmax)."""
        if self.stores and len(segments) != len(self.stores):
            raise ValueError(f"the buffer holds {len(self.stores)} segments, got {len(segments)}")
        keep = torch.ones_like(segments[0].log_g, dtype=torch.bool)
        for seg in segments:  # one mask for all segments keeps the rows of one path together
            keep &= torch.isfinite(seg.log_g) & torch.isfinite(seg.states).all(0).all(-1)
        new = [Stored(seg.states.detach().transpose(0, 1)[keep], seg.start_log_p.detach()[keep],
                      seg.end_log_p.detach()[keep], seg.log_g.detach()[keep]) for seg in segments]
        if not self.stores:
            self.stores = [Stored(*(t[-self.capacity:] for t in n)) for n in new]
            return
        self.stores = [Stored(*(torch.cat([a, b])[-self.capacity:] for a, b in zip(old, n)))
                       for old, n in zip(self.stores, new)]

    def sample(self, n: int, generator: torch.Generator) -> tuple[list[Stored], list[Tensor]]:
        """Per segment, ``min(n, len)`` draws without replacement by priority: (the drawn
        rows as ``Stored`` with states [L+1, m, d] time-first, their indices [m])."""
        if not self.stores:
            raise ValueError("cannot sample from an empty sub-trajectory buffer")
        m = min(int(n), len(self))
        out, idx = [], []
        for st in self.stores:
            logits = st.log_g.double() / self.temperature
            p = torch.softmax(logits - logits.max(), 0)
            i = torch.multinomial(p.to(generator.device), m, replacement=False, generator=generator)
            i = i.to(st.log_g.device)
            out.append(Stored(st.states[i].transpose(0, 1), st.start_log_p[i], st.end_log_p[i], st.log_g[i]))
            idx.append(i)
        return out, idx

    def update(self, indices: Sequence[Tensor], log_g: Sequence[Tensor]) -> None:
        """New priorities for drawn rows: segment s's rows ``indices[s]`` get ``log_g[s]``."""
        for s, (i, g) in enumerate(zip(indices, log_g)):
            st = self.stores[s]
            new = st.log_g.clone()
            new[i] = torch.where(torch.isfinite(g), g.detach().to(new), new[i])
            self.stores[s] = st._replace(log_g=new)

    def state_dict(self) -> dict:
        return {"stores": [dict(st._asdict()) for st in self.stores]}

    def load_state_dict(self, state: Optional[dict]) -> None:
        self.stores = [Stored(**st) for st in (state or {}).get("stores", [])]


__all__ = ["Stored", "SubtrajectoryBuffer"]
