"""Distributed training of the learned samplers on 2 gloo processes equals one process with the
same global batch and seed: loss history, final parameters, log Z estimates; checkpoints
written by rank 0 load at any world size; bad input fails on every rank without a hang."""

from __future__ import annotations

import os

import pytest
import torch

from logz import samplers
from logz.distributed import Shard, run_local
from logz.samplers.training import TrainingError
from logz.targets import GaussianMixture

# (sampler, options): on-policy configurations, whose every draw is world-size independent
CASES = [
    ("pis", dict(loss="kl")),
    ("pis", dict(loss="vargrad", exploration=1.5)),
    ("pis", dict(loss="vargrad", grad_checkpoint_steps=2)),
    ("dds", dict(loss="kl")),
    ("dgfs", dict(loss="subtb", subtb_pairs=None)),
    ("dgfs", dict(loss="tb")),  # a parameter (log Z) enters the loss directly
    ("dgfs", dict(loss="vargrad", exploration=0.3, exploration_decay_iterations=2)),
]
COMMON = dict(hidden=8, layers=1, num_steps=5, batch_size=8, eval_samples=16, eval_batch_size=8,
              dtype=torch.float64, seed=3)
ITERATIONS = 3


MIX = dict(weights=[0.4, 0.6], means=[[-1.0, 0.5], [1.5, -0.5]], covs=[[0.6, 0.8], [0.7, 0.5]])


def _target():
    return GaussianMixture(**MIX)


def _train_all(shard: Shard, ckpt_dir: str = ""):
    out = []
    for i, (name, opts) in enumerate(CASES):
        s = samplers.get(name, _target(), shard=shard, **COMMON, **opts)
        h = s.fit(ITERATIONS, progress=False)
        params = torch.cat([p.detach().flatten() for p in s.trainer.params])
        est = s.estimate_log_z(16)
        out.append({"loss": torch.tensor(h.loss), "log_z": torch.tensor(h.log_z), "params": params,
                    "estimate": (est.log_z, est.stderr, est.elbo, est.eubo)})
        if ckpt_dir and i == 0:
            s.save(os.path.join(ckpt_dir, "pis.pt"))
    return out


def test_two_ranks_train_like_one_process(tmp_path):
    single = _train_all(Shard())
    ranks = run_local(_train_all, 2, str(tmp_path))
    for case, one in zip(CASES, single):
        for rank in ranks:
            got = rank[CASES.index(case)]
            torch.testing.assert_close(got["loss"], one["loss"], rtol=1e-9, atol=1e-9, msg=f"{case} loss")
            torch.testing.assert_close(got["log_z"], one["log_z"], rtol=1e-9, atol=1e-9, equal_nan=True,
                                       msg=f"{case} log_z")
            torch.testing.assert_close(got["params"], one["params"], rtol=1e-8, atol=1e-10, msg=f"{case} params")
            assert got["estimate"] == pytest.approx(one["estimate"], rel=1e-9, abs=1e-9), case
    # rank 0 wrote the checkpoint; one process loads it and continues like an uninterrupted run
    name, opts = CASES[0]
    resumed = samplers.get(name, _target(), **COMMON, **opts)
    resumed.load(str(tmp_path / "pis.pt"))
    resumed.fit(2, progress=False)
    straight = samplers.get(name, _target(), **COMMON, **opts)
    straight.fit(ITERATIONS + 2, progress=False)
    torch.testing.assert_close(torch.tensor(resumed.history.loss), torch.tensor(straight.history.loss),
                               rtol=1e-9, atol=1e-9)


def _bad_inputs(shard: Shard, tmp: str):
    errors = {}
    try:  # 9 paths do not split over 2 ranks
        samplers.get("pis", _target(), shard=shard, **{**COMMON, "batch_size": 9})
    except ValueError as err:
        errors["batch"] = str(err)
    try:  # rank 1 launched with another seed
        samplers.get("pis", _target(), shard=shard, **{**COMMON, "seed": 3 + shard.rank})
    except ValueError as err:
        errors["seed"] = str(err)
    try:  # a checkpoint that exists on rank 0 only
        s = samplers.get("pis", _target(), shard=shard, **COMMON)
        path = os.path.join(tmp, f"only-rank0-{shard.rank}.pt")
        if shard.rank == 0:
            s.trainer.shard = Shard()  # write it from rank 0 alone
            s.save(path)
            s.trainer.shard = shard
        s.load(os.path.join(tmp, "only-rank0-0.pt") if shard.rank == 0 else path)
    except Exception as err:  # noqa: BLE001 - FileNotFoundError on rank 1, PeerError on rank 0
        errors["checkpoint"] = f"{type(err).__name__}: {err}"

    class NaNOnRank1(GaussianMixture):
        def log_prob(self, x):
            lp = super().log_prob(x)
            return lp * float("nan") if shard.rank == 1 else lp

    t = NaNOnRank1(**MIX)
    s = samplers.get("dgfs", t, shard=shard, **COMMON)
    try:
        s.fit(2, progress=False)
    except TrainingError as err:
        errors["nan"] = str(err)
    return errors


def test_bad_input_fails_on_every_rank(tmp_path):
    r0, r1 = run_local(_bad_inputs, 2, str(tmp_path), timeout_s=120)
    for e in (r0, r1):
        assert "batch_size = 9 is not divisible by the world size 2" in e["batch"]
        assert "differs across ranks" in e["seed"] and "'seed': 4" in e["seed"]
        assert "iteration 0" in e["nan"]
    assert r1["checkpoint"].startswith("FileNotFoundError")
    assert r0["checkpoint"].startswith("PeerError") and "rank 1" in r0["checkpoint"]
    assert "NaN" in r1["nan"] and "rank 1" in r0["nan"]
