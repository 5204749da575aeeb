"""SMC's error bar is calibrated at its defaults: over 50 fixed seeds, the z-scores
(log Z^ - log Z) / SE have mean in [-0.5, 0.5] and >= 90% of them lie within +-2.

The same computation as the studies in results/calibration/smc-<target>/ (``logz calibrate
--target T --sampler smc --seeds 50``); long (minutes to an hour a target), hence slow."""

import pytest

from logz.bench.calibrate import calibration_target, run_seed, summarize

SEEDS = range(50)
TARGETS = [("gaussian", {"dim": 5, "std": 2.0, "log_Z": 1.7}), ("gaussian-corr20", {}), ("gmm9", {}),
           ("funnel", {}), ("manywell", {})]


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs", TARGETS, ids=["gaussian", "gaussian-corr20", "gmm9", "funnel", "manywell"])
def test_smc_error_bar_is_calibrated_over_seeds(name, kwargs):
    target = calibration_target(name, **kwargs)
    z = [run_seed(target, "smc", seed, num_samples=2000, true_log_z=target.log_Z)["z"] for seed in SEEDS]
    s = summarize(z)
    assert -0.5 <= s["mean_z"] <= 0.5, s
    assert s["within_2"] >= 0.9, s
