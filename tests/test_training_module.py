"""logz.training itself: the options the fine-tuners brought (Adam betas, a clear error for nothing to
train), the one safe checkpoint reader, and the samplers' re-export of the same objects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import logz.samplers.training as samplers_training
import logz.training as training
from logz.training import History, Trainer, read_checkpoint


def _trainer(**kwargs) -> Trainer:
    net = nn.Linear(2, 1)
    return Trainer({"net": net}, lambda it: {"loss": net(torch.ones(1, 2)).pow(2).sum()}, **kwargs)


def test_betas_reach_adam_and_bad_ones_are_refused():
    assert _trainer().optimizer.param_groups[0]["betas"] == (0.9, 0.999)  # the default is unchanged
    assert _trainer(betas=(0.95, 0.99)).optimizer.param_groups[0]["betas"] == (0.95, 0.99)
    for bad in [(0.9,), (0.9, 1.0), (-0.1, 0.9)]:
        with pytest.raises(ValueError, match="betas"):
            _trainer(betas=bad)


def test_modules_without_trainable_parameters_are_refused():
    frozen = nn.Linear(2, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        Trainer({"net": frozen}, lambda it: {}, name="frozen")


class _MakesAFile:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_read_checkpoint_returns_plain_data_and_refuses_objects(tmp_path):
    trainer = _trainer()
    trainer.fit(2, progress=False)
    path = tmp_path / "ok.pt"
    trainer.save(path)
    state = read_checkpoint(path)
    assert state["iteration"] == 2 and History.from_dict(state["history"]).loss == trainer.history.loss
    marker = tmp_path / "ran"
    torch.save({"payload": _MakesAFile(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="corrupted or not a logz checkpoint"):
        read_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="corrupted"):
        _trainer().load(tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_the_samplers_module_re_exports_the_same_objects():
    for name in samplers_training.__all__:
        assert getattr(samplers_training, name) is getattr(training, name)
