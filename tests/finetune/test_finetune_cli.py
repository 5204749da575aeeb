"""The ``logz finetune`` subcommand (wired by the lead into ``logz.cli``): parser and a tiny demo run."""

import argparse
import json

import pytest

from logz.finetune.cli import add_subcommand
from logz.finetune.demo import demo_problem


def _parse(argv):
    p = argparse.ArgumentParser()
    add_subcommand(p.add_subparsers())
    return p.parse_args(argv)


def test_demo_problem_tilts_weights():
    base, rew = demo_problem("linear")
    w = base.tilt(rew).weights
    assert float(w.max() - w.min()) > 0.2  # a visible tilt between modes
    with pytest.raises(ValueError):
        demo_problem("cubic")


def test_without_demo_returns_usage_code(capsys):
    args = _parse(["finetune"])
    assert args.func(args) == 2


def test_tiny_demo_writes_figure_and_json(tmp_path):
    args = _parse(["finetune", "--demo", "--out", str(tmp_path), "--fm-iterations", "20", "--iterations", "2",
                   "--num-steps", "8", "--samples", "500", "--quiet"])
    assert args.func(args) == 0
    assert (tmp_path / "finetune_demo.png").stat().st_size > 1000
    out = json.loads((tmp_path / "finetune_demo.json").read_text())
    assert abs(sum(out["exact_weights"]) - 1) < 1e-3 and len(out["finetuned_weights"]) == 4


def test_bad_arguments():
    args = _parse(["finetune", "--demo", "--iterations", "0"])
    assert args.func(args) == 2
