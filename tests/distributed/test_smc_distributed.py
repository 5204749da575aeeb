"""Distributed SMC / AIS on 2 gloo processes: particles sharded across ranks with global
tempering and resampling give the one-process estimate; errors reach every rank, no hang."""

import pytest
import torch

from logz import targets
from logz.distributed import SINGLE, Shard, run_local
from logz.samplers.smc import AIS, SMC

# (name, sampler class, target, sampler config, total particles); small and quick.
CASES = [
    ("smc-gibbs", SMC, ("gmm9", {}), {"kernel": "gibbs", "num_replicates": 4, "moves_per_beta": 40.0}, 400),
    ("smc-hmc", SMC, ("gaussian", {"dim": 3, "std": 0.7, "mean": 1.0, "log_Z": 0.7}),
     {"kernel": "hmc", "num_replicates": 3, "moves_per_beta": 20.0, "resample_threshold": 0.9}, 360),
    ("ais-mala", AIS, ("gaussian", {"dim": 2, "std": 0.2, "mean": 0.5}),
     {"kernel": "mala", "num_replicates": 4, "moves_per_beta": 20.0}, 320),
]


def _estimates(shard: Shard) -> dict:
    torch.set_num_threads(1)
    out = {}
    for name, cls, (target, kwargs), cfg, n in CASES:
        sampler = cls(targets.get(target, **kwargs), seed=5, shard=shard, **cfg)
        est = sampler.estimate_log_z(n)
        res = sampler.last_result
        out[name] = {"est": (est.log_z, est.stderr, est.elbo, est.ess, est.num_samples),
                     "log_z": res.log_z, "particles": res.particles, "log_weights": res.log_weights,
                     "resamples": res.num_resamples, "temperatures": res.num_temperatures}
    out["sample"] = SMC(targets.get("gaussian", dim=2), seed=1, num_replicates=2,
                        moves_per_beta=20.0, shard=shard).sample(200)
    return out


@pytest.fixture(scope="module")
def distributed_runs():
    return run_local(_estimates, 2, timeout_s=60)


@pytest.fixture(scope="module")
def single_runs():
    return _estimates(SINGLE)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_distributed_estimate_equals_one_process(name, distributed_runs, single_runs):
    one = single_runs[name]
    for rank in distributed_runs:
        got = rank[name]
        assert got["est"][-1] == one["est"][-1]  # num_samples: the global particle count
        torch.testing.assert_close(torch.tensor(got["est"][:-1]), torch.tensor(one["est"][:-1]),
                                   rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(got["log_z"], one["log_z"], rtol=1e-9, atol=1e-12)
        assert torch.equal(got["resamples"], one["resamples"])
        assert got["temperatures"] == one["temperatures"]
    if name.startswith("smc"):  # SMC resampled, so the particle exchange was exercised
        assert int(one["resamples"].sum()) > 0
    # particles / log_weights are the rank's shard: concatenated they are the global system
    for key in ("particles", "log_weights"):
        torch.testing.assert_close(torch.cat([r[name][key] for r in distributed_runs], dim=1),
                                   one[key], rtol=1e-8, atol=1e-10)


def test_distributed_sample_equals_one_process(distributed_runs, single_runs):
    for rank in distributed_runs:
        torch.testing.assert_close(rank["sample"], single_runs["sample"], rtol=1e-8, atol=1e-10)


class _NaNOnRank1(targets.BaseTarget):
    """A standard Gaussian that returns NaN for x_0 > 1, on rank 1 only."""

    def __init__(self, rank: int):
        super().__init__(2, name="nan-on-rank-1")
        self.rank = rank

    def log_prob(self, x):
        lp = -0.5 * (x ** 2).sum(-1)
        return torch.where(x[:, 0] > 1, float("nan"), lp) if self.rank == 1 else lp


class _FailsLaterOnRank1(targets.BaseTarget):
    """A standard Gaussian whose 20th call raises, on rank 1 only (inside the MCMC moves)."""

    def __init__(self, rank: int):
        super().__init__(2, name="fails-later")
        self.rank, self.calls = rank, 0

    def log_prob(self, x):
        self.calls += 1
        if self.rank == 1 and self.calls == 20:
            raise RuntimeError("simulated failure on rank 1")
        return -0.5 * (x ** 2).sum(-1)


def _errors(shard: Shard) -> list:
    torch.set_num_threads(1)
    runs = [lambda: SMC(targets.get("gaussian"), num_replicates=2, shard=shard).estimate_log_z(202),
            lambda: SMC(_NaNOnRank1(shard.rank), num_replicates=2, shard=shard).estimate_log_z(200),
            lambda: SMC(_FailsLaterOnRank1(shard.rank), kernel="gibbs", num_replicates=2,
                        shard=shard).estimate_log_z(200)]
    out = []
    for run in runs:
        try:
            run()
            out.append(("no error", ""))
        except Exception as err:  # noqa: BLE001 - the test inspects it
            out.append((type(err).__name__, str(err)))
    return out


def test_errors_reach_every_rank_without_a_hang():
    (indivisible0, nan0, later0), (indivisible1, nan1, later1) = run_local(_errors, 2, timeout_s=60)
    for kind, msg in (indivisible0, indivisible1):  # 202 // 2 replicates = 101 particles each
        assert kind == "ValueError" and "101 is not divisible by the world size 2" in msg, msg
    assert nan1[0] == "ValueError" and "nan-on-rank-1" in nan1[1] and "NaN" in nan1[1], nan1
    assert nan0[0] == "PeerError" and "rank 1" in nan0[1] and "NaN" in nan0[1], nan0
    assert later1 == ("RuntimeError", "simulated failure on rank 1")
    assert later0[0] == "PeerError" and "simulated failure on rank 1" in later0[1], later0
