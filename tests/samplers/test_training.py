"""Shared training machinery: resume bit-identically, bad checkpoints, NaN mid-training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from logz.samplers.dds import DDS
from logz.samplers.estimators import LogZEstimate
from logz.samplers.pis import PIS
from logz.samplers.training import History, Trainer, TrainingError, cosine_schedule

SMALL = dict(hidden=16, layers=1, num_steps=8, batch_size=32)


def _params(sampler) -> list[torch.Tensor]:
    return [p.detach().clone() for p in sampler.control.parameters()]


@pytest.mark.parametrize("cls, loss", [(PIS, "kl"), (PIS, "vargrad"), (DDS, "kl")])
def test_resume_from_checkpoint_is_bit_identical(diag_gaussian, tmp_path, cls, loss):
    target = diag_gaussian([1.0, -1.0], [0.5, 2.0])
    config = dict(loss=loss, seed=7, eval_every=2, eval_samples=64, eval_batch_size=64,
                  lr_schedule=cosine_schedule(6, warmup=1),
                  exploration=1.5 if loss == "vargrad" else 1.0, **SMALL)
    straight = cls(target, **config)
    straight.fit(6, progress=False)

    first = cls(target, **config)
    first.fit(3, progress=False)
    path = tmp_path / "ckpt.pt"
    first.save(path)
    resumed = cls(target, **{**config, "seed": 99})  # everything must come from the checkpoint
    resumed.load(path)
    assert resumed.trainer.iteration == 3
    resumed.fit(3, progress=False)

    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.equal(a, b)
    assert straight.history.loss == resumed.history.loss
    assert straight.history.estimates == resumed.history.estimates
    assert straight.history.eval_iterations == [2, 4, 6]
    assert straight.estimate_log_z(64) == resumed.estimate_log_z(64)


def test_corrupted_and_mismatched_checkpoints_give_clear_errors(diag_gaussian, tmp_path):
    target = diag_gaussian([1.0, -1.0], [0.5, 2.0])
    s = PIS(target, **SMALL)
    path = tmp_path / "ok.pt"
    s.save(path)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="corrupted"):
        PIS(target, **SMALL).load(bad)
    with pytest.raises(FileNotFoundError):
        PIS(target, **SMALL).load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="hidden"):
        PIS(target, **{**SMALL, "hidden": 8}).load(path)
    with pytest.raises(ValueError, match="'pis', not 'dds'"):
        DDS(target, **SMALL).load(path)
    not_ours = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, not_ours)
    with pytest.raises(ValueError, match="not a"):
        PIS(target, **SMALL).load(not_ours)
    PIS(target, **SMALL).load(path)  # and the good one loads


class _FlakyTarget:
    """A 2-D Gaussian that starts returning NaN after ``good_calls`` calls of log_prob."""

    dim, name, log_Z = 2, "flaky", 0.0

    def __init__(self, good_calls: int):
        self.calls, self.good_calls = 0, good_calls

    def log_prob(self, x):
        self.calls += 1
        lp = -0.5 * (x ** 2).sum(-1) - math.log(2 * math.pi)
        return lp if self.calls <= self.good_calls else lp * float("nan")


def test_nan_target_stops_training_naming_iteration_and_keeps_last_checkpoint(tmp_path):
    target = _FlakyTarget(good_calls=12)  # drift="nn", KL: one log_prob call per iteration
    path = tmp_path / "run.pt"
    s = PIS(target, drift="nn", checkpoint_every=5, checkpoint_path=str(path), **SMALL)
    with pytest.raises(TrainingError, match=r"iteration 12\b") as info:
        s.fit(30, progress=False)
    msg = str(info.value)
    assert "flaky" in msg and "nan" in msg.lower() and str(path) in msg and "iteration 10" in msg
    assert s.trainer.iteration == 12  # the failed update was not applied
    assert all(torch.isfinite(p).all() for p in s.control.parameters())
    restored = PIS(_FlakyTarget(10 ** 9), drift="nn", **SMALL)
    restored.load(path)
    assert restored.trainer.iteration == 10 and len(restored.history.loss) == 10


def test_trainer_is_reusable_with_any_step_and_schedules_the_lr():
    """The loop DGFS and the fine-tuners reuse: modules + a step function."""
    torch.manual_seed(0)
    lin = nn.Linear(3, 1)
    gen = torch.Generator().manual_seed(0)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def step(it):
        x = torch.randn(64, 3, generator=gen)
        loss = ((lin(x) - x @ w_true.T) ** 2).mean()
        return {"loss": loss, "mse": loss.detach()}

    seen = []
    trainer = Trainer({"lin": lin}, step, lr=0.05, grad_clip=10.0,
                      lr_schedule=lambda it: seen.append(it) or (1.0 if it < 150 else 0.1), generators={"g": gen},
                      evaluate=lambda: LogZEstimate(log_z=0.0, stderr=0.0), eval_every=50)
    h = trainer.fit(200, progress=False)
    assert isinstance(h, History) and len(h.loss) == 200 and len(h.metrics["mse"]) == 200
    assert h.loss[-1] < 1e-2 * h.loss[0]
    assert seen == list(range(200)) and h.eval_iterations == [50, 100, 150, 200]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    assert all(math.isnan(v) for v in h.log_z)  # this step reports no log Z


def test_trainer_rejects_non_finite_loss_and_bad_settings():
    lin = nn.Linear(2, 1)
    trainer = Trainer({"lin": lin}, lambda it: {"loss": lin.weight.sum() * float("inf")}, name="toy")
    with pytest.raises(TrainingError, match="toy: training stopped at iteration 0"):
        trainer.fit(3, progress=False)
    with pytest.raises(ValueError, match="lr"):
        Trainer({"lin": lin}, lambda it: {}, lr={"other": 1e-3})
    with pytest.raises(ValueError, match="eval_every"):
        Trainer({"lin": lin}, lambda it: {}, eval_every=3)
    with pytest.raises(ValueError, match="iterations"):
        Trainer({"lin": lin}, lambda it: {}).fit(-1)


def test_cosine_schedule_shape():
    f = cosine_schedule(100, final_factor=0.1, warmup=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    assert all(f(i) >= f(i + 1) for i in range(10, 120))


def test_float64_training_runs_and_checkpoints(diag_gaussian, tmp_path):
    target = diag_gaussian([1.0], [0.5])
    s = DDS(target, loss="vargrad", dtype="float64", grad_checkpoint_steps=3, **SMALL)
    h = s.fit(3, progress=False)
    assert all(math.isfinite(v) for v in h.loss)
    assert all(p.dtype == torch.float64 for p in s.control.parameters())
    s.save(tmp_path / "c.pt")
    with pytest.raises(ValueError, match="dtype"):
        DDS(target, **SMALL).load(tmp_path / "c.pt")


def test_make_schedule_from_a_mapping_and_its_errors():
    from logz.samplers.training import cosine_schedule, make_schedule
    f = make_schedule({"kind": "cosine", "total": 10, "final_factor": 0.1})
    g = cosine_schedule(10, final_factor=0.1)
    assert [f(i) for i in range(12)] == [g(i) for i in range(12)]
    assert make_schedule(None) is None and make_schedule(g) is g
    with pytest.raises(ValueError, match="kind"):
        make_schedule({"kind": "linear", "total": 10})
    with pytest.raises(ValueError, match="bad lr_schedule"):
        make_schedule({"kind": "cosine", "steps": 10})
    with pytest.raises(ValueError, match="lr_schedule must be"):
        make_schedule(0.5)
