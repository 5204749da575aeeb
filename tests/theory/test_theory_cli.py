"""`logz theory`: the subcommand on a fresh parser and through logz.cli.main."""

import argparse
import json
import os

import pytest

import logz.cli
from logz.theory import cli


def _parser():
    parser = argparse.ArgumentParser(prog="logz")
    cli.add_subcommand(parser.add_subparsers(dest="command"))
    return parser


def test_prints_the_table_and_writes_the_plots(tmp_path, capsys):
    args = _parser().parse_args(["theory", "--schedule", "vp", "--dim", "4", "--steps", "8", "16",
                                 "--out", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "PF-ODE check: schedule=vp" in out and "measured W2 <= bound on every row: yes" in out
    assert os.path.exists(tmp_path / "w2_vs_steps.png") and os.path.exists(tmp_path / "error_terms.png")


def test_json_output(capsys, tmp_path):
    args = _parser().parse_args(["theory", "--schedule", "ve", "--dims", "1", "3", "--steps", "16", "32",
                                 "--score-error", "0", "0.1", "--json", "--no-plots"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == 8 and doc["plots"] == [] and doc["holds"] is True


@pytest.mark.parametrize("argv", [
    ["theory", "--dim", "0"],
    ["theory", "--schedule", "nope"],
    ["theory", "--steps", "4", "0"],
    ["theory", "--T", "-1"],
    ["theory", "--score-error", "-0.5"],
    ["theory", "--method", "rk45"],
])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2 and "usage" in capsys.readouterr().err


def test_broken_assumption_is_a_usage_error_through_logz_main(monkeypatch, capsys):
    monkeypatch.setattr(logz.cli, "_ROOM_CLIS", ["logz.theory.cli"])
    with pytest.raises(SystemExit) as exc:
        logz.cli.main(["theory", "--schedule", "ve", "--prior", "stationary", "--steps", "4", "--no-plots"])
    assert exc.value.code == 2 and "stationary law" in capsys.readouterr().err
    assert logz.cli.main(["theory", "--dim", "2", "--steps", "4", "8", "--no-plots"]) == 0
