"""``logz calibrate``: the study files, its summary numbers, and the report's calibration columns."""

import json
import math

import pytest
import torch

from logz.bench.calibrate import (CORRELATED_GAUSSIAN, calibration_target, file_sha256, load_records,
                                  run_calibration, summarize)
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


# --- one trained model, many estimate seeds (--train-once / --checkpoint) ---------------------

TINY_SCLD = ["num_steps=4", "segments=2", "batch_size=16", "hidden=8", "layers=1", "step_size=0.1",
             "moves_per_beta=20"]


def _fixed_argv(out, *extra, seeds=3):
    return ["calibrate", "--target", "gaussian", "--target-config", "dim=2", "log_Z=0.5", "--sampler", "scld",
            "--seeds", str(seeds), "--num-samples", "200", "--out", str(out), "--no-plot", "--quiet",
            "--config", *TINY_SCLD, *extra]


def test_train_once_trains_one_model_and_reseeds_only_the_estimates(tmp_path, monkeypatch):
    from logz.samplers.base import PathSampler

    fits = []
    fit = PathSampler.fit
    monkeypatch.setattr(PathSampler, "fit", lambda self, n, progress=True: fits.append(n) or fit(self, n, progress))
    out = tmp_path / "study"
    assert main(_fixed_argv(out, "--train-once", "--iterations", "3", "--model-seed", "2")) == 0
    assert fits == [3]  # one training, not one per seed
    recs = load_records(out)
    info = json.loads((out / "model.json").read_text())
    assert info["sha256"] == file_sha256(out / "model.pt") and info["model_seed"] == 2 and info["iterations"] == 3
    assert all(r["model"] == {"sha256": info["sha256"], "model_seed": 2, "iterations": 3} for r in recs)
    assert len({r["log_z"] for r in recs}) == 3  # each seed its own estimate noise
    for r in recs:
        assert r["z"] == pytest.approx((r["log_z"] - 0.5) / r["stderr"])
    summary = json.loads((out / "summary.json").read_text())
    assert "--train-once" in summary["command"] and summary["model"]["sha256"] == info["sha256"]
    assert "GIVEN the model" in (out / "summary.md").read_text()
    # resuming with more seeds reuses the saved model (no training) and keeps the finished seeds
    assert main(_fixed_argv(out, "--train-once", "--iterations", "3", "--model-seed", "2", seeds=4)) == 0
    assert fits == [3]
    again = load_records(out)
    assert [r["seed"] for r in again] == [0, 1, 2, 3] and again[:3] == recs
    # the same estimate seed from the saved checkpoint gives the same estimate
    assert main(_fixed_argv(tmp_path / "from_file", "--checkpoint", str(out / "model.pt"), seeds=1)) == 0
    (rec,) = load_records(tmp_path / "from_file")
    assert rec["log_z"] == recs[0]["log_z"] and rec["model"]["sha256"] == info["sha256"]
    assert rec["model"]["iterations"] == 3 and rec["model"]["model_seed"] is None  # not in the file: not stated


def test_seed_estimates_restarts_the_estimate_noise_only():
    from logz import samplers, targets

    s = samplers.get("scld", targets.get("gaussian", dim=2), num_steps=4, segments=2, batch_size=16, hidden=8,
                     layers=1, step_size=0.1, moves_per_beta=20, seed=1)
    s.fit(2, progress=False)
    params = [p.detach().clone() for p in s.control.parameters()]
    train_state = s.generator.get_state()
    s.seed_estimates(5)
    a = s.estimate_log_z(400).log_z
    s.seed_estimates(5)
    assert s.estimate_log_z(400).log_z == a
    s.seed_estimates(6)
    assert s.estimate_log_z(400).log_z != a
    assert torch.equal(s.generator.get_state(), train_state) and s.trainer.iteration == 2
    assert all(torch.equal(p, q) for p, q in zip(params, s.control.parameters()))
    with pytest.raises(ValueError, match="seed"):
        s.seed_estimates(-1)


@pytest.mark.parametrize("extra, message", [
    (["--sampler", "smc", "--train-once", "--iterations", "3"], "'smc' is classical"),
    (["--train-once"], "--train-once needs --iterations"),
    (["--train-once", "--iterations", "3", "--checkpoint", "m.pt"], "give only one of them"),
    (["--checkpoint", "nosuch.pt"], "no such file"),
    (["--model-seed", "1", "--iterations", "3"], "--model-seed applies only with"),
])
def test_bad_fixed_model_options_are_clear_errors(tmp_path, capsys, extra, message):
    argv = _fixed_argv(tmp_path / "s", *extra, seeds=1)
    if "--sampler" in extra:  # replace scld by the given sampler
        i = argv.index("--sampler")
        del argv[i:i + 2]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("logz calibrate: error:") and message in err and "Traceback" not in err


def test_a_study_holds_the_seeds_of_one_model(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(_fixed_argv(out, "--train-once", "--iterations", "2", seeds=1)) == 0
    # another model in the same directory: its saved model was not trained for this request
    assert main(_fixed_argv(out, "--train-once", "--iterations", "3", seeds=1)) == 2
    assert "was not trained for this study" in capsys.readouterr().err
    # per-seed training into a fixed-model study
    assert main(_fixed_argv(out, "--iterations", "2", seeds=2)) == 2
    assert "holds seeds of the model sha256" in capsys.readouterr().err
    # a checkpoint whose file was changed after training
    (out / "model.pt").write_bytes((out / "model.pt").read_bytes() + b"\0")
    assert main(_fixed_argv(out, "--train-once", "--iterations", "2", seeds=1)) == 2
    assert "changed since it was trained" in capsys.readouterr().err
