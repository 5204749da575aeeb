"""Metrics recomputed from a finished cell's saved samples, and the Funnel's x0 bands."""

from __future__ import annotations

import math

import pytest
import torch

from logz import targets
from logz.bench import budgets, metrics as M
from logz.bench.recompute import recompute_metrics
from logz.bench.runner import Cell, ResultStore, run_grid
from logz.cli import main


def test_funnel_x0_bands_weights_and_assignment():
    f = targets.get("funnel")
    w = f.weights
    # exact band probabilities of x0 ~ N(0, 3^2) at edges -6, -3, 0, 3, 6
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    expect = [phi(-2), phi(-1) - phi(-2), 0.5 - phi(-1)]
    assert w.tolist() == pytest.approx(expect + expect[::-1], abs=1e-12)
    x = torch.zeros(6, f.dim, dtype=torch.float64)
    x[:, 0] = torch.tensor([-7.0, -6.0, -0.1, 0.0, 5.99, 6.0])  # bands are [a, b)
    assert f.assign_modes(x).tolist() == [0, 1, 2, 3, 4, 5]
    assert f.mode_labels() == ["x0 < -6", "[-6, -3)", "[-3, 0)", "[0, 3)", "[3, 6)", "x0 >= 6"]
    # exact samples land in the bands at the exact rates (6 binomial stderrs at most)
    n = 20000
    y = f.sample(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mc = M.mode_coverage(y, f)
    assert (mc.z_scores().abs() < 6).all() and mc.coverage.value == 1.0


def test_recompute_metrics_from_saved_samples(tmp_path, capsys):
    out = tmp_path / "bench"
    tiny = budgets.get("tiny")
    run_grid(["funnel"], ["pis"], [0], tiny, out, metrics=["mode_coverage", "mmd"], progress=False)
    store = ResultStore(out)
    cell = Cell("funnel", "pis", 0)
    rec = store.load(cell)
    fresh = rec["metrics"]["mode_coverage"]
    assert fresh["labels"][0] == "x0 < -6" and len(fresh["fractions"]) == 6
    # an old record, written before the metric applied to this target
    rec["metrics"]["mode_coverage"] = {"skipped": "no mode structure"}
    store.save(rec)
    mmd_before = rec["metrics"]["mmd"]

    (updated,) = recompute_metrics(out, ["mode_coverage"], targets=["funnel"])
    again = store.load(cell)
    assert again["metrics"]["mode_coverage"]["fractions"] == pytest.approx(fresh["fractions"])
    assert again["metrics"]["mode_coverage"]["value"] == pytest.approx(fresh["value"])
    assert again["metrics"]["mmd"] == mmd_before  # only the asked-for metric is touched
    assert again["metrics_recomputed"][0]["metrics"] == ["mode_coverage"]
    assert updated["cell"] == cell.id
    assert recompute_metrics(out, ["mode_coverage"], targets=["gmm9"]) == []

    with pytest.raises(ValueError, match="was run without metric"):
        recompute_metrics(out, ["sliced_w2"])
    with pytest.raises(ValueError, match="unknown metric"):
        recompute_metrics(out, ["nope"])
    # the command line, then the report
    assert main(["bench", "--out", str(out), "--targets", "funnel", "--samplers", "pis", "--seeds", "1",
                 "--budget", "tiny", "--recompute-metrics", "mode_coverage", "--no-plots"]) == 0
    assert "recomputed mode_coverage for 1 cell(s)" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "| sampler | x0 < -6 | [-6, -3) |" in report and "| exact | 0.023 | 0.136 | 0.341 |" in report
