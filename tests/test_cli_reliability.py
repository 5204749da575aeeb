"""`logz run` prints the reliability flag, says in words when the error bar misses the exact
value, and `--check` cross-checks against a quick SMC run."""

import json
import math

import pytest
import torch

from logz import samplers
from logz.cli import main
from logz.samplers import estimators
from logz.samplers.estimators import estimate_from_log_weights


class _OneModePolicy:
    """A 'trained policy' on gmm9 that covers one of the nine modes (mode collapse)."""

    def __init__(self, target, seed=0, **config):
        self.target, self.seed = target, seed

    def estimate_log_z(self, n, progress=False):
        gen = torch.Generator().manual_seed(self.seed)
        loc = torch.tensor([5.0, 5.0], dtype=torch.float64)
        q = torch.distributions.Normal(loc, 0.7)
        x = loc + 0.7 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
        xt = self.target.sample(n, generator=gen, dtype=torch.float64)
        return estimate_from_log_weights(self.target.log_prob(x) - q.log_prob(x).sum(-1),
                                         self.target.log_prob(xt) - q.log_prob(xt).sum(-1))


@pytest.fixture
def one_mode_sampler(monkeypatch):
    monkeypatch.setitem(samplers.TABLE, "one-mode",
                        samplers.Entry("one-mode", _OneModePolicy, "classical", "a policy on one of nine modes"))
    monkeypatch.setattr(estimators, "_warned", set())
    return "one-mode"


def test_run_flags_mode_collapse_and_says_the_bar_misses(one_mode_sampler, capsys):
    with pytest.warns(estimators.UnreliableEstimateWarning):
        assert main(["run", "--target", "gmm9", "--sampler", one_mode_sampler, "--num-samples", "1000",
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "UNRELIABLE" in out and "modes missed" in out
    assert "the error bar does not cover the exact value: not converged or modes missed" in out


def test_run_prints_reliable_flag_on_a_good_estimate(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "400", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "flag     reliable" in out and "does not cover" not in out


def test_check_reports_disagreement_in_standard_errors(one_mode_sampler, capsys):
    with pytest.warns(estimators.UnreliableEstimateWarning):
        assert main(["run", "--target", "gmm9", "--sampler", one_mode_sampler, "--num-samples", "1000",
                     "--check", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    check = rec["check"]
    assert check["difference"] == pytest.approx(rec["log_z"] - check["log_z"])
    assert check["z"] == pytest.approx(check["difference"] / math.hypot(rec["stderr"], check["stderr"]))
    assert check["z"] < -3  # the collapsed policy is log 9 below a correct SMC
    assert abs(check["log_z"]) < 4 * check["stderr"]  # the SMC run itself covers log Z = 0
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "400", "--quiet",
                 "--check"]) == 0
    assert "combined standard errors" in capsys.readouterr().out


def test_uncalibrated_sampler_says_no_study_backs_its_error_bar(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "pis", "--iterations", "2", "--num-samples", "400",
                 "--config", "num_steps=4", "batch_size=16", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "no calibration study backs pis's error bar" in out and "calibrated at defaults" not in out


def test_json_record_names_the_calibration_study(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "400", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["calibration"] == "results/calibration" and rec["calibration_scope"] == "at defaults"


def test_calibration_studies_named_by_the_registry_exist():
    from pathlib import Path

    from logz import samplers

    root = Path(__file__).resolve().parents[1]
    for name in samplers.names():
        e = samplers.entry(name)
        if e.calibration is not None:
            assert (root / e.calibration / "README.md").is_file(), name
    scld = samplers.entry("scld")
    assert scld.calibration_scope.startswith("given a trained model") and scld.calibration_targets
    for target in scld.calibration_targets:  # each studied target has its study
        assert (root / scld.calibration / f"scld-{target}" / "seeds.jsonl").is_file()


TINY_SCLD_RUN = ["run", "--target", "gaussian", "--sampler", "scld", "--iterations", "2", "--num-samples", "400",
                 "--config", "num_steps=4", "segments=2", "batch_size=16", "hidden=8", "layers=1", "step_size=0.1",
                 "--quiet"]


def test_scld_is_calibrated_given_a_trained_model_on_the_studied_targets_only(capsys, monkeypatch):
    import dataclasses

    from logz import samplers

    scld = samplers.entry("scld")
    assert scld.calibrated_on("funnel") and scld.calibrated_on("gmm9") and not scld.calibrated_on("gaussian")
    assert main(TINY_SCLD_RUN) == 0  # seed 0: an estimate no diagnostic flags, on a target not studied
    out = capsys.readouterr().out
    assert "flag     not flagged by the diagnostics, but no calibration study backs scld's error bar on gaussian" in out
    assert "it is calibrated given a trained model" in out and "on funnel, gmm9, manywell" in out
    # on a studied target the same estimate says it is calibrated, and in which sense
    monkeypatch.setitem(samplers.TABLE, "scld", dataclasses.replace(scld, calibration_targets=("gaussian",)))
    assert main(TINY_SCLD_RUN) == 0
    out = capsys.readouterr().out
    assert "flag     reliable" in out and "calibrated given a trained model" in out and "at defaults" not in out
    assert main([*TINY_SCLD_RUN[:-1], "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["calibration"] == "results/calibration" and rec["calibration_scope"].startswith("given a trained")
