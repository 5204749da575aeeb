"""Training objectives of the path samplers (``logz.samplers.base.PathSampler``), one per module.

Each objective has a frozen config dataclass with ``validate()``, simulates its training batch
from the sampler's shared pieces (``simulate``), and scores it (``loss(sampler, batch) ->
(loss, info)``, ``info`` a NamedTuple of named diagnostics). ``step`` is what the ``Trainer``
calls: simulate, score, report.

- ``kl``: reparameterised KL (PIS, DDS), with gradient checkpointing over time chunks;
- ``log_variance``: VarGrad / log-variance of log w over detached paths (PIS, DDS, DGFS's "vargrad");
- ``tb``: trajectory balance with a learned log Z;
- ``db``: detailed balance with the learned log-flow;
- ``subtb``: sub-trajectory balance with the learned log-flow (DGFS);
- ``adjoint_matching``: reciprocal adjoint matching (Adjoint Sampling).
- ``elbo``: KL as -mean log w through the paths (CMCD, whose weight has no control-cost form);
- ``sub_log_variance``: SCLD's per-segment log-variance on the sequential process's sub-trajectories.
"""

from __future__ import annotations

from typing import Optional

from torch import nn


class Objective:
    """Defaults shared by every objective: no extra trained module, a detached score."""

    name = "objective"
    #: differentiate through grad log p~ along the path (KL's exact reparameterisation gradient)
    differentiate_score = False
    #: time steps per recomputed chunk (bounded-memory training), or None
    checkpoint_steps: Optional[int] = None
    #: the noise multiplier of the behaviour process (1: on-policy)
    on_policy = True

    def modules(self, sampler) -> dict[str, nn.Module]:
        """Trained modules besides the control (a log-flow, a learned log Z), by name."""
        return {}

    def step(self, sampler, iteration: int) -> dict:
        batch = self.simulate(sampler, iteration)
        loss, info = self.loss(sampler, batch)
        return {"loss": loss, **{k: v for k, v in info._asdict().items() if v is not None}}

    def simulate(self, sampler, iteration: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, sampler, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


__all__ = ["Objective"]
