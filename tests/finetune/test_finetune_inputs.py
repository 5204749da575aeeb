"""Bad input to the fine-tuners: clear errors or explicit warnings."""

import warnings

import pytest
import torch

from logz.finetune.adjoint_matching import AdjointMatching
from logz.finetune.closed_form import GaussianMixtureVelocity, QuadraticReward
from logz.finetune.noise import MemorylessNoise, ScaledNoise, is_memoryless


def _base():
    return GaussianMixtureVelocity.gaussian([0.0, 0.0], [1.0, 1.0])


def _one_iteration(reward):
    am = AdjointMatching(_base(), reward, num_steps=4, batch_size=8)
    am.fit(1)


def test_reward_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(8, 1\)"):
        _one_iteration(lambda x: x.sum(-1, keepdim=True))


def test_reward_nan():
    with pytest.raises(ValueError, match="NaN or inf"):
        _one_iteration(lambda x: torch.log(x[:, 0]))  # NaN for x < 0


def test_reward_not_differentiable():
    with pytest.raises(ValueError, match="not differentiable"):
        _one_iteration(lambda x: torch.as_tensor((x.detach() > 0).sum(-1), dtype=x.dtype))


def test_reward_not_a_tensor():
    with pytest.raises(ValueError, match="torch.Tensor"):
        _one_iteration(lambda x: [0.0] * x.shape[0])


def test_base_velocity_wrong_shape():
    with pytest.raises(ValueError, match="base velocity"):
        AdjointMatching(lambda x, t: x[:, :1], QuadraticReward(2, b=1.0), dim=2)
    with pytest.raises(ValueError, match="dim"):
        AdjointMatching(lambda x, t: x, QuadraticReward(2, b=1.0))  # no dim to infer


def test_non_memoryless_noise_warns_and_memoryless_does_not():
    rew = QuadraticReward(2, b=1.0)
    with pytest.warns(UserWarning, match="not memoryless"):
        AdjointMatching(_base(), rew, noise=ScaledNoise(MemorylessNoise(), 0.5))
    with pytest.warns(UserWarning, match="not memoryless"):
        AdjointMatching(_base(), rew, noise=lambda t: 0.3 + 0 * t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AdjointMatching(_base(), rew, noise=lambda t: torch.sqrt(2 * (1 - t + 0.01) / (t + 0.01)))
    assert is_memoryless(MemorylessNoise(0.01)) and not is_memoryless(lambda t: 1.0 + 0 * t)


def test_infinite_sigma_at_zero_is_rejected():
    with pytest.raises(ValueError, match="offset"):
        AdjointMatching(_base(), QuadraticReward(2, b=1.0), noise=MemorylessNoise(0.0))


def test_bad_options():
    rew = QuadraticReward(2, b=1.0)
    with pytest.raises(ValueError, match="time_subsample"):
        AdjointMatching(_base(), rew, num_steps=10, time_subsample=(11, 0))
    with pytest.raises(ValueError, match="loss_clip"):
        AdjointMatching(_base(), rew, loss_clip=-1.0)
    with pytest.raises(ValueError, match="lam"):
        QuadraticReward(2, lam=-1.0)


def test_subsampling_and_clipping_run():
    am = AdjointMatching(_base(), QuadraticReward(2, b=1.0), num_steps=8, batch_size=8,
                         time_subsample=(2, 3), loss_clip=10.0)
    steps = am.select_steps()
    assert steps.numel() == 5 and bool((steps[-2:] == torch.tensor([6, 7])).all())
    assert len(set(steps.tolist())) == 5
    hist = am.fit(2)
    assert len(hist.loss) == 2 and all(v <= 10.0 * 5 for v in hist.loss)
