"""Benchmarks: sample-quality metrics (``logz.bench.metrics``) and reference log Z values
(``logz.bench.reference``). The runner and reports live alongside (added separately)."""

from logz.bench.metrics import (Metric, ModeCoverage, elbo_error, energy_distance, energy_histogram_w2,
                                ess_metric, eubo_metric, log_z_error, median_bandwidth, mmd,
                                mode_coverage, sliced_w2, w2, w2_1d_squared, w2_exact)

__all__ = ["Metric", "ModeCoverage", "log_z_error", "elbo_error", "eubo_metric", "ess_metric",
           "w2", "w2_exact", "sliced_w2", "w2_1d_squared", "mmd", "median_bandwidth",
           "energy_distance", "mode_coverage", "energy_histogram_w2"]
