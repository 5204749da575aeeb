"""SOC fine-tuning of flow models: flow-matching bases, Adjoint Matching and its baselines.

- ``FlowMatching``: conditional flow matching on the linear path (train, sample, PF-ODE log-density).
- ``GaussianMixtureVelocity``: closed-form velocity of a diagonal Gaussian mixture (exact bases),
  with ``tilt`` giving the exact p* ∝ p exp(r) for ``QuadraticReward`` rewards.
- ``AdjointMatching(base, reward, ...)``: lean-adjoint regression with the memoryless schedule.
- Baselines, same interface: ``ContinuousAdjoint``, ``DRaFT``, ``NonMemorylessAdjointMatching``.
- Noise schedules: ``MemorylessNoise``, ``ConstantNoise``, ``ScaledNoise``; ``FlowSDE``.

All of them train through ``logz.training.Trainer`` (as the learned samplers do): ``fit`` returns
a ``logz.training.History``; ``save`` / ``load`` write and read fingerprinted checkpoints that
resume bit-identically and are read with ``torch.load(weights_only=True)``.
"""

from logz.finetune.adjoint_matching import AdjointMatching
from logz.finetune.base import FineTuner, reward_and_grad
from logz.finetune.baselines import (DRaFT, ContinuousAdjoint, NonMemorylessAdjointMatching,
                                     finetuner_names, make_finetuner)
from logz.finetune.closed_form import (GaussianMixtureVelocity, QuadraticReward, fitted_gaussian_w2,
                                       gaussian_w2)
from logz.finetune.flow_matching import FlowMatching, log_prob_ode, sample_ode
from logz.finetune.noise import (ConstantNoise, FlowSDE, MemorylessNoise, NoiseSchedule, ScaledNoise,
                                 is_memoryless)

__all__ = [
    "AdjointMatching", "FineTuner", "reward_and_grad",
    "DRaFT", "ContinuousAdjoint", "NonMemorylessAdjointMatching", "finetuner_names", "make_finetuner",
    "GaussianMixtureVelocity", "QuadraticReward", "fitted_gaussian_w2", "gaussian_w2",
    "FlowMatching", "log_prob_ode", "sample_ode",
    "ConstantNoise", "FlowSDE", "MemorylessNoise", "NoiseSchedule", "ScaledNoise", "is_memoryless",
]
