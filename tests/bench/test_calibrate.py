"""``logz calibrate``: the study files, its summary numbers, and the report's calibration columns."""

import json
import math

import pytest
import torch

from logz.bench.calibrate import (CORRELATED_GAUSSIAN, calibration_target, load_records, run_calibration,
                                  summarize)
from logz.bench.report import calibration_cells
from logz.cli import main


def test_summary_of_standard_normal_z_scores():
    z = torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64).tolist()
    s = summarize(z)
    assert abs(s["mean_z"]) < 4 * s["mean_z_stderr"]
    assert abs(s["within_2"] - 0.9545) < 4 * s["within_2_stderr"]
    assert abs(s["within_3"] - 0.9973) < 4 * math.sqrt(0.9973 * 0.0027 / 4000)
    assert summarize([0.0, 1e300])["nonfinite"] == 0 and summarize([float("inf")])["nonfinite"] == 1
    with pytest.raises(ValueError):
        summarize([])


def test_correlated_gaussian_has_the_stated_condition_number():
    t = calibration_target(CORRELATED_GAUSSIAN)
    ev = torch.linalg.eigvalsh(t.cov)
    assert t.dim == 20 and float(ev.max() / ev.min()) == pytest.approx(100.0, rel=1e-8)
    assert t.log_Z == 0.0 and not torch.allclose(t.cov, torch.diag(torch.diagonal(t.cov)))


def test_study_writes_records_summary_and_plot_and_resumes(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["calibrate", "--target", "gaussian", "--target-config", "dim=2", "log_Z=0.5", "--sampler", "smc",
            "--seeds", "3", "--num-samples", "200", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    recs = load_records(out)
    assert [r["seed"] for r in recs] == [0, 1, 2]
    for r in recs:
        assert r["z"] == pytest.approx((r["log_z"] - 0.5) / r["stderr"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["summary"]["seeds"] == 3 and summary["true_log_z"] == 0.5
    assert "logz calibrate" in summary["command"] and summary["environment"]["cpu_count"]
    assert (out / "calibration.png").stat().st_size > 0 and "mean z" in (out / "summary.md").read_text()
    # a second run with more seeds reuses the finished ones
    s = run_calibration("gaussian", "smc", [0, 1, 2, 3], out=out, num_samples=200,
                        target_config={"dim": 2, "log_Z": 0.5}, plot=False, progress=False)
    assert s["summary"]["seeds"] == 4 and len((out / "seeds.jsonl").read_text().splitlines()) == 4


def test_unknown_sampler_is_a_clear_error(tmp_path, capsys):
    assert main(["calibrate", "--target", "gaussian", "--sampler", "nosuch", "--out", str(tmp_path),
                 "--seeds", "1"]) == 2
    assert "logz calibrate: error: unknown sampler 'nosuch'" in capsys.readouterr().err


def test_report_calibration_columns():
    rows = [{"error": 0.1, "stderr": 0.1, "reliable": True}, {"error": -0.3, "stderr": 0.1, "reliable": False},
            {"error": None, "stderr": 0.1}]
    mean_z, within, flagged = calibration_cells(rows)
    assert mean_z.startswith("-1.00") and within == "1/2" and flagged == "1/2"
