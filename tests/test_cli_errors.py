"""The command line explains: every user error is one line and a non-zero exit; what runs
(seed, overrides, iterations, threads) is what is printed and recorded."""

from __future__ import annotations

import json
import re

import pytest
import torch

from logz import cli, targets
from logz.cli import DEFAULT_ITERATIONS, default_threads, main
from logz.samplers.pis import PIS


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture
def no_training(monkeypatch):
    """Record PIS.fit calls instead of training."""
    calls = []
    monkeypatch.setattr(PIS, "fit", lambda self, iterations, progress=False: calls.append(iterations) or [])
    return calls


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_one_line(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--device", "cuda"]) == 2
    assert "--device cuda" in _error_line(capsys)
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--device", "gpu0"]) == 2
    assert "--device gpu0" in _error_line(capsys)


def test_missing_data_dir_names_the_variable_and_the_source(capsys, monkeypatch):
    monkeypatch.delenv("LOGZ_DATA_DIR", raising=False)
    assert main(["run", "--target", "sonar", "--sampler", "smc"]) != 0
    line = _error_line(capsys)
    assert "LOGZ_DATA_DIR" in line and "UCI" in line


@pytest.mark.parametrize("item,needles", [
    ("hidden=abc", ["hidden", "integer"]),
    ("batch_size=1.5", ["batch_size", "integer"]),
    ("lr=fast", ["lr", "number"]),
    ("dtype=float16", ["dtype", "float32 or float64"]),
])
def test_bad_config_value_names_the_key_and_type(capsys, item, needles):
    assert main(["run", "--target", "gaussian", "--sampler", "pis", "--config", item]) == 2
    line = _error_line(capsys)
    assert all(n in line for n in needles), line


def test_bad_config_key_is_one_line(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--config", "hiddn=3"]) == 2
    assert "hiddn" in _error_line(capsys)


@pytest.mark.parametrize("dim", [0, -2, 2.5, True, "3"])
def test_bad_dims_are_value_errors(dim):
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        targets.get("gaussian", dim=dim)


def test_unwritable_save_path_is_refused_before_training(capsys, no_training, tmp_path):
    missing = tmp_path / "no_such_dir" / "pis.pt"
    assert main(["run", "--target", "gaussian", "--sampler", "pis", "--iterations", "100",
                 "--save", str(missing)]) == 2
    assert "does not exist" in _error_line(capsys) and no_training == []
    assert main(["run", "--target", "gaussian", "--sampler", "pis", "--save", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys) and no_training == []


def test_config_seed_is_printed_and_recorded(capsys):
    argv = ["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "64", "--quiet",
            "--config", "seed=3", "num_replicates=2", "num_mcmc_steps=0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "seed 3" in out and "num_replicates=2" in out
    assert main(argv + ["--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["seed"] == 3 and rec["config"] == {"num_replicates": 2, "num_mcmc_steps": 0}


def test_learned_sampler_without_iterations_trains_the_stated_budget(capsys, no_training):
    assert main(["run", "--target", "gaussian", "--sampler", "pis", "--num-samples", "16", "--json",
                 "--config", "num_steps=4", "hidden=8"]) == 0
    captured = capsys.readouterr()
    assert no_training == [DEFAULT_ITERATIONS]
    assert f"training {DEFAULT_ITERATIONS} iterations" in captured.err
    assert json.loads(captured.out)["iterations"] == DEFAULT_ITERATIONS


def test_threads_default_and_override(capsys):
    before = torch.get_num_threads()
    try:
        base = ["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "64", "--json",
                "--config", "num_replicates=2", "num_mcmc_steps=0", "moves_per_beta=0"]
        assert main(base) == 0
        assert json.loads(capsys.readouterr().out)["threads"] == default_threads()
        assert main(base + ["--threads", "2"]) == 0
        assert json.loads(capsys.readouterr().out)["threads"] == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_smc_progress_reads_and_refreshes_once_per_temperature(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "64",
                 "--config", "num_replicates=2"]) == 0
    err = capsys.readouterr().err
    frames = [f for f in re.split(r"[\r\n]", err) if "temperatures=" in f]
    assert frames and all("β = " in f and "of 1" in f and "β" in f.split(",")[1] for f in frames)
    counts = [int(re.search(r"temperatures=(\d+)", f).group(1)) for f in frames]
    assert counts == sorted(set(counts))  # each temperature shown once


def test_unexpected_error_is_one_line(capsys, monkeypatch):
    def broken(args):
        raise RuntimeError("something internal\nwith a second line")

    monkeypatch.setattr(cli, "_cmd_targets", broken)
    monkeypatch.delenv("LOGZ_TRACEBACK", raising=False)
    parser_main = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_targets(parser_main(), broken))
    assert main(["targets"]) == 1
    assert _error_line(capsys) == "logz targets: error: something internal"


def _with_targets(parser, handler):
    for action in parser._subparsers._group_actions:
        action.choices["targets"].set_defaults(func=handler)
    return parser
