"""The command line: a smoke run, listings, and usage errors instead of tracebacks."""

import json
import subprocess
import sys

import pytest

from logz.cli import main


def test_run_prints_estimate_beside_exact(capsys):
    assert main(["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "400", "--quiet"]) == 0
    out = capsys.readouterr().out
    for label in ("log Z", "ELBO", "ESS", "exact", "error", "time"):
        assert label in out


def test_run_json_record(capsys):
    assert main(["run", "--target", "gmm9", "--sampler", "smc", "--num-samples", "400", "--json",
                 "--seed", "3"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["exact_log_z"] == 0.0 and rec["seed"] == 3 and rec["num_samples"] == 400
    assert rec["error"] == pytest.approx(rec["log_z"] - rec["exact_log_z"])


def test_listings(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "funnel" in out and "manywell" in out
    assert main(["samplers"]) == 0
    out = capsys.readouterr().out
    assert "smc" in out and "classical" in out
    from logz import samplers

    for name in samplers.names():  # one line per sampler: its name, kind and description
        e = samplers.entry(name)
        assert any(ln.startswith(name + " ") and e.kind in ln and e.description in ln for ln in out.splitlines())


def test_config_groups_are_reached_by_dotted_keys(capsys):
    argv = ["run", "--target", "gaussian", "--sampler", "pis", "--iterations", "1", "--num-samples", "16",
            "--json", "--config", "batch_size=8", "num_steps=3", "network.hidden=4", "network.layers=1",
            "optimiser.lr=0.01", "evaluation.eval_batch_size=16"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 16


def test_resample_prints_the_smc_corrected_estimate(capsys):
    argv = ["run", "--target", "gaussian", "--sampler", "dgfs", "--iterations", "1", "--num-samples", "64",
            "--resample", "--config", "batch_size=8", "num_steps=4", "hidden=8", "layers=1"]
    assert main(argv + ["--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["resample"] is True and rec["num_samples"] == 64 and rec["stderr"] > 0
    assert main(argv + ["--quiet"]) == 0
    assert "SMC-corrected" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["run", "--target", "nope", "--sampler", "smc"], "unknown target 'nope'"),
    (["run", "--target", "gaussian", "--sampler", "nope"], "unknown sampler 'nope'"),
    (["run", "--target", "gaussian", "--sampler", "smc", "--seed", "x"], "invalid int value"),
    (["run", "--target", "gaussian"], "required"),
    (["run", "--target", "gaussian", "--sampler", "smc", "--num-samples", "1"], "num-samples"),
    (["run", "--target", "gaussian", "--sampler", "smc", "--config", "cess"], "key=value"),
    (["run", "--target", "gaussian", "--sampler", "pis", "--config", "network.width=3"],
     "unknown network option(s) ['width']"),
    (["run", "--target", "gaussian", "--sampler", "pis", "--resample"], "--resample needs intermediate"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_arguments_exit_with_usage(argv, needle):
    proc = subprocess.run([sys.executable, "-m", "logz", *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def _logz_json(*launcher: str, extra=()) -> dict:
    argv = [*launcher, "-m", "logz", "run", "--target", "gaussian", "--sampler", "pis", "--iterations", "2",
            "--num-samples", "64", "--json", "--seed", "1", "--config", "batch_size=8", "num_steps=5",
            "hidden=8", "layers=1", "eval_batch_size=32", "dtype=float64", *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, out.stdout  # rank 0 alone prints
    return json.loads(lines[0])


def test_torchrun_two_processes_match_one():
    """`torchrun --nproc_per_node 2 -m logz run ...` (gloo on CPU) gives the one-process estimate."""
    one = _logz_json(sys.executable)
    two = _logz_json(sys.executable, "-m", "torch.distributed.run", "--standalone",
                     "--nproc_per_node", "2")
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["log_z"] == pytest.approx(one["log_z"], rel=1e-9, abs=1e-9)
    assert two["elbo"] == pytest.approx(one["elbo"], rel=1e-9, abs=1e-9)
