"""The samplers' simulation and training step read nothing back to the host inside the time loop
(issue: one GPU used well), counted on the CPU by the ``host_syncs`` fixture (tests/conftest.py)."""

import pytest
import torch

from logz import samplers

SMALL = dict(hidden=8, layers=1, batch_size=16, seed=1, dtype=torch.float64)


@pytest.mark.parametrize("name", ["pis", "dds", "dgfs", "dgfs_lv", "tb"])
def test_simulation_and_training_step_read_back_once_per_call(host_syncs, diag_gaussian, name):
    """With ``defer_checks=True`` (the default off the CPU) a simulation (``log_weights``) and a
    training iteration (``fit(1)``) read back as many values at 4 steps as at 16: the reads they
    do (the loss for the history, the deferred NaN check) sit outside the time loop. With
    ``defer_checks=False`` (the CPU default: the target's values checked per step, to name the
    row) the per-step reads are counted."""
    target = diag_gaussian([0.0, 1.0], [1.0, 2.0])

    def reads(n_steps, defer, what):
        s = samplers.get(name, target, num_steps=n_steps, defer_checks=defer, **SMALL)
        run = (lambda: s.log_weights(16)) if what == "simulate" else (lambda: s.fit(1, progress=False))
        return host_syncs(run)

    for what in ("simulate", "train"):
        assert reads(4, True, what) == reads(16, True, what), what
    assert reads(16, False, "simulate") > reads(4, False, "simulate")
