"""Path Integral Sampler (PIS; Zhang & Chen 2022): a ``PathSampler`` with a Brownian reference.

A controlled SDE carries x_0 = 0 to the target:

    dX = g u(X, t) dt + g dW,  t: 0 -> T,   (reference: Brownian motion, X_T ~ N(0, g^2 T I))

and u is learned so that the law of X_T is p = p~/Z. With Euler–Maruyama steps on a
uniform grid, the path-space log-weight (Girsanov, exact for the discrete chain) is

    log w = log p~(x_N) + sum_k log P_B(x_k | x_{k+1}) - sum_k log P_F(x_{k+1} | x_k),

P_B the reference's Brownian bridge: E[log w] = ELBO <= log Z and logmeanexp(log w) is the
importance-weighted estimate. Objectives: ``"kl"`` (``objectives.kl``) or ``"vargrad"``
(``objectives.log_variance``). The control is ``GradientDrift`` ("PIS-Grad": NN(x, t) +
c(t) grad log p~(x)) or, with ``drift="nn"``, the plain network. ``DDS`` (``dds.py``) is the
same composition on a variance-preserving reference.
"""

from __future__ import annotations

import math
from typing import Optional

from torch import nn

from logz.samplers._common import _check
from logz.samplers.base import PathSampler
from logz.samplers.compose import assemble
from logz.samplers.config import Network, group
from logz.samplers.objectives.kl import KL, KLConfig
from logz.samplers.objectives.log_variance import LogVariance, LogVarianceConfig
from logz.sde import BrownianReference, LinearReference

OBJECTIVES = ("kl", "vargrad")


def path_objective(loss: str, exploration: float, grad_checkpoint_steps: Optional[int],
                   differentiate_score: bool, log_var_range: Optional[float]):
    """The KL or log-variance objective of PIS / DDS, with the checks that tie it to the rest."""
    _check("loss", loss in OBJECTIVES, loss, f"one of {sorted(OBJECTIVES)}")
    if loss == "kl" and log_var_range is not None:
        raise ValueError("learned_variance needs loss='vargrad' (or DGFS): the KL loss uses the "
                         "Girsanov control cost, which holds for the reference's fixed noise only")
    if loss == "kl" and exploration != 1.0:
        raise ValueError("exploration != 1 needs an off-policy loss (loss='vargrad'); the KL loss is on-policy")
    if loss == "kl":
        return KL(KLConfig(grad_checkpoint_steps, bool(differentiate_score)))
    return LogVariance(LogVarianceConfig(exploration, grad_checkpoint_steps))


class PIS(PathSampler):
    """Path Integral Sampler: ``fit``, ``sample``, ``estimate_log_z``, ``save``/``load``.

    Args:
        target: object with ``dim`` and ``log_prob(x: Tensor[B, dim]) -> Tensor[B]``.
        diffusion: g of the Brownian reference (default sqrt(0.2)). T: horizon (5).
        num_steps: Euler–Maruyama steps (100). batch_size: paths per iteration.
        loss: "kl" or "vargrad". exploration: noise multiplier of the behaviour process for
            "vargrad" (1 = on-policy).
        grad_checkpoint_steps: time steps per recomputed chunk ("kl": gradient checkpointing;
            "vargrad": chunked re-scoring and backward). None: off.
        differentiate_score: "kl" differentiates through grad log p~ along the path.
        control: a custom control u(x, t) (nn.Module) instead of the default ``GradientDrift``.
        seed: seeds the networks' initialisation and the training / evaluation RNGs.
        network, optimiser, evaluation, placement: the groups of ``logz.samplers.config``
            (an instance or a mapping); their fields may also be given as flat keywords
            (``hidden=``, ``lr=``, ``eval_every=``, ``device=``, ...).
    """

    name = "pis"
    scheme = "euler"

    def __init__(self, target, *, diffusion: float = math.sqrt(0.2), T: float = 5.0, num_steps: int = 100,
                 batch_size: int = 256, loss: str = "kl", exploration: float = 1.0,
                 grad_checkpoint_steps: Optional[int] = None, differentiate_score: bool = False,
                 control: Optional[nn.Module] = None, seed: int = 0, network=None, optimiser=None,
                 evaluation=None, placement=None, **flat):
        assemble(self, target, reference=self._reference(diffusion=diffusion, T=T), T=T, num_steps=num_steps,
                 batch_size=batch_size, objective=path_objective(
                     loss, exploration, grad_checkpoint_steps, differentiate_score,
                     group(Network, network, dict(flat)).log_var_range),
                 control=control, seed=seed, groups=(network, optimiser, evaluation, placement), flat=flat)

    def _reference(self, *, diffusion, T) -> LinearReference:
        g = diffusion
        _check("diffusion", isinstance(g, (int, float)) and not isinstance(g, bool) and g > 0, g, "> 0")
        return BrownianReference(float(g))




__all__ = ["PIS", "path_objective"]
