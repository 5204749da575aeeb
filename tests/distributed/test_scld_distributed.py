"""Distributed SCLD on 2 gloo processes equals one process with the same seed: a short training
(the sequential run of the batch, the replay buffer, the sub-trajectory loss, SMC's moves) gives
the same loss history, parameters, buffer and final estimate; the buffer is the same on every
rank, so a checkpoint from rank 0 resumes like an uninterrupted one-process run; an estimate
alone (resampling, Newton-Gibbs and HMC moves) is the same; sizes that do not split and a
failure on one rank raise on every rank, none hangs.

Tolerances: the ranks sum the moves' acceptance and spread in another order and run the
network on fewer rows, so the numbers differ from one process by float rounding, amplified
along the way: ``ulps`` x the dtype's machine epsilon, relative (and absolute, for values
near 0), per case. Without Newton-Gibbs refresh the measured differences are below 30 ulps
(1e3 allowed). Newton-Gibbs takes second differences with a step of 0.1 x the particles'
spread, which divides rounding by ~1e-2 per sweep: measured up to 7.5e3 ulps after a few
sweeps and Adam steps (5e4 allowed: 1.1e-11 in float64, 6e-3 in float32). A wrong row,
noise draw or resampling index gives O(1) differences, and a wrong gradient scale (which
Adam would hide in the parameters) shows in the gradient norms.

Not compared: HMC refresh with several leapfrog steps on a non-Gaussian target. Its
trajectories amplify rounding exponentially (on the two-component mixture below, SMC's own
HMC with 5 leapfrog steps: 1e-10 after 80 moves of 2 steps, an accept decision flipped with
5), so such runs equal one process in distribution only; MALA (one step) is compared.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from logz import samplers
from logz.distributed import SINGLE, Shard, run_local
from logz.samplers.smc_moves import DEFAULT_MOVES_PER_BETA
from logz.targets import GaussianMixture

# 64 particles are too few for a reliable estimate; the test compares, it does not judge
pytestmark = pytest.mark.filterwarnings("ignore::logz.samplers.estimators.UnreliableEstimateWarning")

MIX = dict(weights=[0.4, 0.6], means=[[-1.0, 0.5], [1.5, -0.5]], covs=[[0.6, 0.8], [0.7, 0.5]])
COMMON = dict(hidden=8, layers=1, num_steps=6, batch_size=8, seed=3, eval_samples=32, eval_batch_size=8,
              eval_every=2, lr=1e-2)


class HalfLineGaussian:
    """N(0, 1) restricted to x < 1: Langevin steps throw particles out of its domain, so rows die
    (zero weight, left out of the buffer and the loss) and the batch does not split evenly."""

    dim, init_std = 1, 1.0

    def log_prob(self, x):
        lp = -0.5 * x[:, 0] ** 2
        return torch.where(x[:, 0] < 1.0, lp, torch.full_like(lp, -math.inf))


# (name, target, options, ulps): segment ends with resampling and moves, the buffer or not,
# learned schedule and step sizes, dead rows, pi0 with a Student-t part (drawn from the global stream)
CASES = [
    ("buffer-gibbs", lambda: GaussianMixture(**MIX),
     dict(segments=3, learn_schedule=True, learn_step_size=True, step_size=0.05, resample_threshold=0.9,
          replicates=4, moves_per_beta=50.0), 5e4),
    ("fresh-mala", lambda: GaussianMixture(**MIX),
     dict(segments=2, buffer=False, mcmc_kernel="mala", mcmc_steps=1, step_size=0.05, resample_threshold=0.9,
          replicates=4, reference_mix=0.3, moves_per_beta=DEFAULT_MOVES_PER_BETA["mala"]), 1e3),  # SMC's: the refresh this tolerance was set at
    ("dead-rows", HalfLineGaussian,
     dict(segments=3, step_size=0.3, moves_per_beta=4.0, mcmc_kernel="hmc", resample_threshold=0.5,
          replicates=2), 1e3),
]
ITERATIONS = 4


def _train(shard: Shard, ckpt_dir: str = "") -> dict:
    torch.set_num_threads(1)
    out = {}
    for dtype in (torch.float64, torch.float32):
        for name, target, opts, _ in CASES:
            s = samplers.get("scld", target(), shard=shard, dtype=dtype, **COMMON, **opts)
            h = s.fit(ITERATIONS, progress=False)
            est = s.estimate_log_z(64)
            key = f"{name}-{dtype}"
            out[key] = {"loss": torch.tensor(h.loss, dtype=torch.float64),
                        "grad_norm": torch.tensor(h.grad_norm, dtype=torch.float64),
                        "log_z": torch.tensor(h.log_z, dtype=torch.float64),
                        "evals": torch.tensor([e.log_z for e in h.estimates], dtype=torch.float64),
                        "params": torch.cat([p.detach().flatten() for p in s.trainer.params]),
                        "buffer": [] if s.buffer is None else [t for st in s.buffer.state_dict()["stores"]
                                                               for t in st.values()],
                        "estimate": torch.tensor([est.log_z, est.stderr, est.elbo, est.ess], dtype=torch.float64)}
            if ckpt_dir and key == "buffer-gibbs-torch.float64":
                s.save(os.path.join(ckpt_dir, "scld.pt"))  # rank 0 writes it
        # an estimate alone, untrained: Newton-Gibbs refresh, resampling
        s = samplers.get("scld", GaussianMixture(**MIX), shard=shard, dtype=dtype, segments=3, replicates=4,
                         resample_threshold=0.9, moves_per_beta=100.0, **COMMON)
        run = s.run(64)
        est = s.estimate_log_z(64)
        out[f"estimate-{dtype}"] = {"log_z": run.log_z, "log_weights": run.log_weights, "particles": run.particles,
                                    "resampled": run.resampled, "moves": run.moves,
                                    "estimate": torch.tensor([est.log_z, est.stderr, est.elbo, est.ess])}
    return out


def _on_ranks(shard: Shard, ckpt_dir: str) -> dict:
    """Everything the 2-rank tests need, in one launch (starting processes is the slow part)."""
    return {"train": _train(shard, ckpt_dir), "errors": _errors(shard)}


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("scld")
    return run_local(_on_ranks, 2, str(ckpt), timeout_s=240), ckpt


@pytest.fixture(scope="module")
def trained(launched):
    ranks, ckpt = launched
    return _train(SINGLE), [r["train"] for r in ranks], ckpt


def _close(got, want, dtype, ulps, what):
    tol = ulps * torch.finfo(dtype).eps
    torch.testing.assert_close(got.double(), want.double(), rtol=tol, atol=tol, equal_nan=True,
                               msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,ulps", [(c[0], c[3]) for c in CASES])
def test_two_ranks_train_scld_like_one_process(trained, name, ulps, dtype):
    single, ranks, _ = trained
    key = f"{name}-{dtype}"
    one = single[key]
    assert len(one["loss"]) == ITERATIONS and len(one["evals"]) == ITERATIONS // 2
    for rank in ranks:
        got = rank[key]
        for field in ("loss", "grad_norm", "log_z", "evals", "params", "estimate"):
            _close(got[field], one[field], dtype, ulps, f"{key} {field}")
        assert len(got["buffer"]) == len(one["buffer"])
        for a, b in zip(got["buffer"], one["buffer"]):
            _close(a, b, dtype, ulps, f"{key} buffer")
    # the buffer is the same on every rank, bit for bit: a checkpoint does not depend on the writer
    for a, b in zip(ranks[0][key]["buffer"], ranks[1][key]["buffer"]):
        assert torch.equal(a, b), key
    if name == "buffer-gibbs":
        assert len(one["buffer"]) > 0
    if name == "dead-rows":  # rows died, so the batch was split unevenly over the ranks
        assert int(one["buffer"][-1].numel()) < ITERATIONS * COMMON["batch_size"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_a_distributed_estimate_equals_one_process(trained, dtype):
    single, ranks, _ = trained
    one = single[f"estimate-{dtype}"]
    assert bool(one["resampled"].any()) and bool(one["moves"].any())  # resampling and moves exercised
    for rank in ranks:
        got = rank[f"estimate-{dtype}"]
        assert torch.equal(got["resampled"], one["resampled"]) and torch.equal(got["moves"], one["moves"])
        for field in ("log_z", "log_weights", "estimate"):
            _close(got[field], one[field], dtype, 5e4, f"estimate {field}")
    # each rank holds its particles of every replicate: side by side they are the whole system
    _close(torch.cat([r[f"estimate-{dtype}"]["particles"] for r in ranks], 1), one["particles"], dtype, 5e4,
           "particles")


def test_a_checkpoint_from_rank_0_resumes_like_one_uninterrupted_process(trained):
    _, _, ckpt = trained
    name, target, opts, ulps = CASES[0]
    kw = dict(dtype=torch.float64, **COMMON, **opts)
    resumed = samplers.get("scld", target(), **kw)
    resumed.load(str(ckpt / "scld.pt"))
    resumed.fit(2, progress=False)
    straight = samplers.get("scld", target(), **kw)
    straight.fit(ITERATIONS + 2, progress=False)
    _close(torch.tensor(resumed.history.loss), torch.tensor(straight.history.loss), torch.float64, ulps,
           "resumed loss")
    _close(torch.cat([p.detach().flatten() for p in resumed.trainer.params]),
           torch.cat([p.detach().flatten() for p in straight.trainer.params]), torch.float64, ulps, "resumed params")


def _errors(shard: Shard) -> dict:
    torch.set_num_threads(1)
    errors = {}
    mix = GaussianMixture(**MIX)
    try:  # 36 particles in 4 replicates: 9 per replicate do not split over 2 ranks
        samplers.get("scld", mix, shard=shard, hidden=8, layers=1, num_steps=4, replicates=4,
                     batch_size=8).estimate_log_z(36)
    except ValueError as err:
        errors["particles"] = str(err)
    try:  # the periodic estimate would not split: refused before training
        samplers.get("scld", mix, shard=shard, hidden=8, layers=1, num_steps=4, replicates=4, batch_size=8,
                     eval_every=10, eval_samples=36)
    except ValueError as err:
        errors["eval"] = str(err)
    try:
        samplers.get("scld", mix, shard=shard, hidden=8, layers=1, num_steps=4, batch_size=9)
    except ValueError as err:
        errors["batch"] = str(err)
    try:  # rank 1 launched with other segments
        samplers.get("scld", mix, shard=shard, hidden=8, layers=1, num_steps=4, batch_size=8,
                     segments=2 + 2 * shard.rank)
    except ValueError as err:
        errors["config"] = str(err)

    class FailsOnRank1(GaussianMixture):
        calls = 0

        def log_prob(self, x):
            self.calls += 1
            if shard.rank == 1 and self.calls == 12:
                raise RuntimeError("simulated failure on rank 1")
            return super().log_prob(x)

    s = samplers.get("scld", FailsOnRank1(**MIX), shard=shard, hidden=8, layers=1, num_steps=4, batch_size=8,
                     replicates=2)
    try:
        s.estimate_log_z(32)
    except Exception as err:  # noqa: BLE001 - RuntimeError on rank 1, PeerError on rank 0
        errors["failure"] = f"{type(err).__name__}: {err}"
    return errors


def test_bad_sizes_and_failures_raise_on_every_rank(launched):
    r0, r1 = (r["errors"] for r in launched[0])
    for e in (r0, r1):
        assert "scld particles per replicate (num_samples 36 // 4 replicates) = 9 is not divisible by the " \
               "world size 2" in e["particles"], e
        assert "(num_samples 36 // 4 replicates) = 9 is not divisible by the world size 2" in e["eval"], e
        assert "batch_size = 9 is not divisible by the world size 2" in e["batch"], e
        assert "scld configuration differs across ranks" in e["config"], e
    assert r1["failure"] == "RuntimeError: simulated failure on rank 1", r1
    assert r0["failure"].startswith("PeerError") and "simulated failure on rank 1" in r0["failure"], r0
