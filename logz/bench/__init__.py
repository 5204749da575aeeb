"""Benchmarks: sample-quality metrics (``logz.bench.metrics``), reference log Z values
(``logz.bench.reference``), budgets, the grid runner, reports and plots (``logz bench``)."""

from logz.bench.metrics import (Metric, ModeCoverage, elbo_error, energy_distance, energy_histogram_w2,
                                ess_metric, eubo_metric, log_z_error, median_bandwidth, mmd,
                                mode_coverage, sliced_w2, w2, w2_1d_squared, w2_exact)
from logz.bench.budgets import Budget
from logz.bench.runner import Cell, ResultStore, run_cell, run_grid
from logz.bench.report import write_report

__all__ = ["Metric", "ModeCoverage", "log_z_error", "elbo_error", "eubo_metric", "ess_metric",
           "w2", "w2_exact", "sliced_w2", "w2_1d_squared", "mmd", "median_bandwidth",
           "energy_distance", "mode_coverage", "energy_histogram_w2",
           "Budget", "Cell", "ResultStore", "run_cell", "run_grid", "write_report"]
