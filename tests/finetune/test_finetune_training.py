"""The fine-tuners and flow matching train through ``logz.training.Trainer``: the same updates as
their former loops (the recorded baseline), bit-identical resume, fingerprinted checkpoints, and
loading that never runs code from the file."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import warnings

import pytest
import torch
from torch import nn

from logz.finetune import (DRaFT, AdjointMatching, ContinuousAdjoint, FlowMatching,
                           GaussianMixtureVelocity, NonMemorylessAdjointMatching, QuadraticReward)
from logz.training import History, TrainingError

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECORD_DIR = ROOT / "results" / "behaviour"


def _recorder():
    spec = importlib.util.spec_from_file_location("record_finetune", RECORD_DIR / "record_finetune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDER = _recorder()
BASELINE = json.loads((RECORD_DIR / "finetune_baseline.json").read_text())["runs"]


@pytest.mark.parametrize("name", RECORDER.RUNS)
def test_training_matches_the_recorded_baseline(name):
    """Same losses, rewards and trained parameters as the loops before the shared Trainer (recorded
    in results/behaviour/finetune_baseline.json), to float32 round-off: same updates, same RNG use."""
    new = RECORDER.run(name)
    old = BASELINE[name]
    assert set(new) == set(old)
    for key in old:
        assert new[key] == pytest.approx(old[key], rel=1e-5, abs=1e-6), key


def _problem():
    return GaussianMixtureVelocity.gaussian([1.0, -0.5], [0.5, 2.0]), QuadraticReward(2, b=[1.0, -0.5])


SMALL = dict(num_steps=6, batch_size=16, hidden=16, depth=1, lr=3e-3)
FINETUNERS = {
    "adjoint_matching": lambda seed: AdjointMatching(*_problem(), time_subsample=(2, 2), seed=seed, **SMALL),
    "non_memoryless_adjoint_matching": lambda seed: NonMemorylessAdjointMatching(*_problem(), seed=seed, **SMALL),
    "continuous_adjoint": lambda seed: ContinuousAdjoint(*_problem(), seed=seed, **SMALL),
    "draft": lambda seed: DRaFT(*_problem(), backprop_steps=2, seed=seed, **SMALL),
}


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("name", sorted(FINETUNERS))
def test_finetuner_resume_is_bit_identical(name, tmp_path):
    make = FINETUNERS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the non-memoryless baseline warns on purpose
        straight, first, resumed = make(0), make(0), make(99)  # 99: everything must come from the file
    straight.fit(6)
    first.fit(3)
    path = tmp_path / "ft.pt"
    first.save(path)
    resumed.load(path)
    assert resumed.trainer.iteration == 3 and resumed.history.loss == first.history.loss
    resumed.fit(3)
    assert _same(straight.model, resumed.model)
    assert isinstance(resumed.history, History)
    assert straight.history.loss == resumed.history.loss
    assert straight.history.metrics == resumed.history.metrics
    assert len(straight.history.metrics["reward"]) == 6
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(straight.sample(8, method="sde", generator=g()), resumed.sample(8, method="sde", generator=g()))


def test_flow_matching_resume_is_bit_identical(tmp_path):
    base, _ = _problem()
    config = dict(hidden=16, depth=1, batch_size=32, lr=3e-3, lr_schedule={"kind": "cosine", "total": 8})
    straight = FlowMatching(seed=1, **config)
    straight.fit(base, iterations=8)
    first = FlowMatching(seed=1, **config)
    first.fit(base, iterations=5)
    path = tmp_path / "fm.pt"
    first.save(path)
    resumed = FlowMatching(seed=7, **config)  # no dimension, no network yet: both come from the file
    resumed.load(path)
    resumed.fit(base, iterations=3)
    assert _same(straight.velocity, resumed.velocity)
    assert straight.history.loss == resumed.history.loss and len(resumed.history.loss) == 8
    # the default schedule spans the first fit; training past it is flagged, not silent
    fm = FlowMatching(hidden=8, depth=1, batch_size=8)
    fm.fit(base, iterations=2)
    with pytest.warns(UserWarning, match="learning-rate schedule"):
        fm.fit(base, iterations=1)


class _MakesAFile:
    """Unpickling this object (weights_only=False) would create ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("who", ["adjoint_matching", "flow_matching"])
def test_a_crafted_pickle_is_refused_and_nothing_runs(who, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "logz-trainer/1", "model": _MakesAFile(str(marker))}, path)
    assert not marker.exists()
    model = FINETUNERS["adjoint_matching"](0) if who == "adjoint_matching" else FlowMatching()
    with pytest.raises(ValueError, match="corrupted or not a logz checkpoint"):
        model.load(path)
    assert not marker.exists()
    # the same file read without the guard would have run the payload: the test is meaningful
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_fingerprint_and_format_mismatches_give_clear_errors(tmp_path):
    base, reward = _problem()
    am = AdjointMatching(base, reward, **SMALL)
    path = tmp_path / "am.pt"
    am.save(path)
    with pytest.raises(ValueError, match="num_steps"):
        AdjointMatching(base, reward, **{**SMALL, "num_steps": 8}).load(path)
    with pytest.raises(ValueError, match="loss_clip"):
        AdjointMatching(base, reward, loss_clip=3.0, **SMALL).load(path)
    with pytest.raises(ValueError, match="written by 'adjoint_matching'"):
        DRaFT(base, reward, **SMALL).load(path)
    with pytest.raises(ValueError, match="not a flow_matching checkpoint"):
        FlowMatching().load(path)
    old = tmp_path / "old.pt"  # what FineTuner.save wrote before the shared Trainer
    torch.save({"model": am.model.state_dict(), "history": {"losses": [], "rewards": [], "seconds": 0.0,
                                                             "iterations": 0}}, old)
    with pytest.raises(ValueError, match="older logz fine-tuner"):
        AdjointMatching(base, reward, **SMALL).load(old)
    with pytest.raises(FileNotFoundError):
        am.load(tmp_path / "missing.pt")
    fm = FlowMatching(hidden=8, depth=1)
    with pytest.raises(RuntimeError, match="before fit"):
        fm.save(tmp_path / "fm.pt")


def test_bad_values_stop_training_with_the_iteration_named():
    base, _ = _problem()
    am = AdjointMatching(base, lambda x: x.sum(-1) / (x[:, 0] > 10).to(x), **SMALL)  # inf reward
    with pytest.raises(TrainingError, match="iteration 0.*NaN or inf"):
        am.fit(2)
    assert am.trainer.iteration == 0 and am.history.loss == []

    class Frozen(nn.Module):
        def forward(self, x, t):
            return base(x, t)

    with pytest.raises(ValueError, match="no trainable parameters"):
        AdjointMatching(base, _problem()[1], model=Frozen(), **SMALL).fit(1)
