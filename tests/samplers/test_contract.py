"""Every registered sampler follows the contract of ``logz.samplers.base``: on a tiny target
it fits (returning a ``History``), samples, estimates log Z, and, when learned, gives the
importance weights of fresh samples and round-trips a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from logz import samplers
from logz.samplers.base import LearnedSampler, Sampler
from logz.samplers.training import History

TINY = {"learned": dict(hidden=8, layers=1, num_steps=4, batch_size=8, eval_batch_size=32, seed=0),
        "classical": dict(num_replicates=2, num_mcmc_steps=1, leapfrog_steps=1, cess=0.5, max_temperatures=20,
                          moves_per_beta=0, seed=0)}
EXTRA = {"adjoint_sampling": dict(paths_per_refresh=8, buffer_size=64)}
#: classical samplers that are not SMC take their own tiny configuration
OWN = {"importance": dict(adapt_rounds=1, adapt_samples=64, seed=0)}


def _config(name: str) -> dict:
    if name in OWN:
        return dict(OWN[name])
    kind = samplers.entry(name).kind
    config = {**TINY[kind], **EXTRA.get(name, {})}
    if name == "adjoint_sampling":
        config.pop("eval_batch_size")
    return config


@pytest.mark.parametrize("name", samplers.names())
def test_every_registered_sampler_keeps_the_contract(name, diag_gaussian, tmp_path):
    target = diag_gaussian([0.5, -0.5], [1.0, 0.5], log_Z=0.3)
    s = samplers.get(name, target, **_config(name))
    assert isinstance(s, Sampler)
    history = s.fit(2, progress=False)
    assert isinstance(history, History)
    learned = samplers.entry(name).kind == "learned"
    assert len(history.loss) == (2 if learned else 0)
    x = s.sample(32)
    assert x.shape == (32, 2) and bool(torch.isfinite(x).all())
    est = s.estimate_log_z(32)
    assert math.isfinite(est.log_z) and est.stderr >= 0 and est.num_samples > 0
    if not learned:
        return
    assert isinstance(s, LearnedSampler)
    x, log_w = s.log_weights(16)
    assert x.shape == (16, 2) and log_w.shape == (16,) and bool(torch.isfinite(log_w).all())
    s.save(tmp_path / "c.pt")
    again = samplers.get(name, target, **_config(name))
    again.load(tmp_path / "c.pt")
    assert again.history.loss == history.loss


def test_the_registry_table_describes_every_sampler():
    for name in samplers.names():
        e = samplers.entry(name)
        assert e.kind in ("learned", "classical") and e.description
        assert e.variant_of is None or e.variant_of in samplers.names()
    with pytest.raises(ValueError, match="unknown sampler 'nope'.*pis"):
        samplers.entry("nope")


def test_config_groups_take_instances_mappings_dotted_keys_and_flat_fields(diag_gaussian):
    from logz.samplers.config import Network

    target = diag_gaussian([0.0, 0.0], [1.0, 1.0])
    small = dict(num_steps=3, batch_size=4)
    a = samplers.get("dgfs_lv", target, **{"network.hidden": 4, "network.layers": 1}, **small)
    assert a.network == Network(hidden=4, layers=1, learned_variance=4.0)  # the variant's default group kept
    b = samplers.get("dgfs_lv", target, learned_variance=2.0, hidden=4, layers=1, **small)
    assert b.control.log_var_range == 2.0  # a flat field overrides the default group's
    c = samplers.get("pis", target, network=Network(hidden=4, layers=1), optimiser={"lr": 0.01}, **small)
    assert c.network.hidden == 4 and c.trainer.optimizer.param_groups[0]["lr"] == 0.01
    with pytest.raises(ValueError, match=r"unknown optimiser option\(s\) \['rate'\]"):
        samplers.get("pis", target, optimiser={"rate": 1.0}, **small)
    with pytest.raises(TypeError, match="unexpected option"):
        samplers.get("pis", target, hiden=4, **small)
