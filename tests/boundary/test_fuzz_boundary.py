"""Property-based tests of the public boundary (Hypothesis): targets built from random
callables, and random ``logz run`` argument lists. The outcome is always a result or a
``ValueError`` (a usage message for the command line) naming the problem: never another
exception type or a NaN estimate. Few examples here; ``-m slow`` runs many more."""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logz import samplers
from logz import targets as T
from logz.cli import main

FAST = settings(max_examples=12, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

DIM = 2
W64 = torch.tensor([[1.0, 0.2], [0.2, 0.5]], dtype=torch.float64)


def _base(kind: str, x: torch.Tensor) -> torch.Tensor:
    """A log-density built from a named piece (some non-differentiable, some in float64)."""
    if kind == "gauss":
        return -0.5 * (x * x).sum(-1)
    if kind == "matmul64":  # parameters in float64, x not cast: fails in float32
        return -0.5 * ((x @ W64) * x).sum(-1)
    if kind == "cast64":  # computes in float64, returns float64
        return -0.5 * (x.double() ** 2).sum(-1)
    if kind == "round":  # piecewise constant: zero gradient
        return -torch.round(x).abs().sum(-1)
    if kind == "detached":  # no autograd graph
        return -(x.detach() ** 2).sum(-1)
    if kind == "abs":  # kink at 0
        return -x.abs().sum(-1)
    if kind == "half_plane":
        lp = -0.5 * (x * x).sum(-1)
        return torch.where(x[:, 0] > 0, lp, torch.full_like(lp, -math.inf))
    if kind == "numpy":
        return (-(x.detach() ** 2).sum(-1)).numpy()
    if kind == "float":
        return -1.0
    if kind == "raises":
        raise RuntimeError("user code failed")
    if kind == "int":
        return (x * 0).sum(-1).long()
    raise AssertionError(kind)


BASES = ["gauss", "matmul64", "cast64", "round", "detached", "abs", "half_plane", "numpy", "float",
         "raises", "int"]


@st.composite
def random_targets(draw):
    kind = draw(st.sampled_from(BASES))
    shape = draw(st.sampled_from(["ok", "column", "scalar", "extra_row"]))
    pattern = draw(st.sampled_from(["none", "nan_row", "posinf_row", "neginf_row", "all_neginf"]))
    out_dtype = draw(st.sampled_from([None, torch.float16, torch.float32, torch.float64]))

    def fn(x):
        lp = _base(kind, x)
        if not isinstance(lp, torch.Tensor):
            return lp
        if out_dtype is not None and lp.is_floating_point():
            lp = lp.to(out_dtype)
        if pattern != "none" and lp.is_floating_point() and lp.ndim == 1 and len(lp) > 0:
            value = {"nan_row": math.nan, "posinf_row": math.inf, "neginf_row": -math.inf,
                     "all_neginf": -math.inf}[pattern]
            mask = torch.zeros_like(lp, dtype=torch.bool)
            if pattern == "all_neginf":
                mask[:] = True
            else:
                mask[len(lp) // 2] = True
            lp = torch.where(mask, torch.full_like(lp, value), lp)
        if shape == "column":
            lp = lp[:, None] if lp.ndim == 1 else lp
        elif shape == "scalar":
            lp = lp.sum()
        elif shape == "extra_row":
            lp = torch.cat([lp.reshape(-1), lp.reshape(-1)[:1]])
        return lp

    return T.from_log_prob(fn, dim=DIM, name=f"{kind}-{shape}-{pattern}-{out_dtype}")


def _boundary_outcome(target, dtype):
    x = torch.randn(16, DIM, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for call in (lambda: T.checked_log_prob(target, x), lambda: T.log_prob_and_grad(target, x)):
        try:
            out = call()
        except ValueError as err:
            assert str(err), "a ValueError must say what is wrong"
            continue
        lp = out[0] if isinstance(out, tuple) else out
        assert lp.dtype == dtype and lp.shape == (16,)
        assert not bool(torch.isnan(lp).any()) and not bool((lp == math.inf).any())
        if isinstance(out, tuple):
            assert out[1].dtype == dtype and bool(torch.isfinite(out[1]).all())


def _sampler_outcome(target, name):
    tiny = {"smc": dict(num_replicates=2, num_mcmc_steps=1, moves_per_beta=0, cess=0.5),
            "pis": dict(num_steps=3, hidden=4, batch_size=16)}[name]
    try:
        s = samplers.get(name, target, seed=0, **tiny)
        s.fit(1)
        est = s.estimate_log_z(32)
    except ValueError as err:
        assert str(err)
        return
    assert not math.isnan(est.log_z) and not math.isnan(est.stderr)


@FAST
@given(target=random_targets(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_random_callables_at_the_boundary(target, dtype):
    _boundary_outcome(target, dtype)


@FAST
@given(target=random_targets(), name=st.sampled_from(["smc", "pis"]))
def test_random_callables_through_a_sampler(target, name):
    _sampler_outcome(target, name)


@st.composite
def cli_argvs(draw):
    sampler = draw(st.sampled_from(["smc", "ais", "pis", "dds", "nope"]))
    argv = ["run", "--sampler", sampler]
    if draw(st.booleans()) or True:
        argv += ["--target", draw(st.sampled_from(["gaussian", "gmm9", "funnel", "nope", ""]))]
    argv += ["--num-samples", draw(st.sampled_from(["-1", "0", "1", "2", "16", "abc"]))]
    # learned samplers always get an explicit (small or bad) budget: the default is minutes
    argv += ["--iterations", draw(st.sampled_from(["-1", "0", "1", "x"]))]
    items = draw(st.lists(st.sampled_from([
        "seed=3", "seed=x", "seed=1.5", "cess=2", "cess=0.5", "cess=nan", "hidden=abc", "hidden=-1",
        "num_steps=2", "batch_size=0", "batch_size=8", "dtype=float16", "dtype=float32", "dtype=x",
        "num_replicates=2", "num_replicates=1", "init_std=0", "init_std=-1", "init_std=1e308",
        "lr=fast", "loss=nope", "kernel=nope", "=", "noequals", "max_temperatures=0"]), max_size=4))
    tiny = ["num_steps=3", "hidden=4", "batch_size=8"] if sampler in ("pis", "dds") else \
        ["num_replicates=2", "num_mcmc_steps=0", "moves_per_beta=0"]
    argv += ["--config", *tiny, *items]
    for flag, values in [("--device", ["cpu", "cuda", "bogus:3"]), ("--threads", ["0", "1", "x"]),
                         ("--save", ["/nonexistent_dir/s.pt"]), ("--seed", ["2", "-1", "y"])]:
        if draw(st.booleans()):
            argv += [flag, draw(st.sampled_from(values))]
    argv.append(draw(st.sampled_from(["--quiet", "--json"])))
    return argv


def _cli_outcome(argv, capsys, monkeypatch):
    monkeypatch.setenv("LOGZ_TRACEBACK", "1")  # an unexpected exception type escapes: the test fails
    threads = torch.get_num_threads()
    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        assert exit_.code == 2
        assert "usage" in capsys.readouterr().err
        return
    finally:
        torch.set_num_threads(threads)
    captured = capsys.readouterr()
    if rc == 0:
        assert "nan" not in captured.out.lower().replace("num_samples", "")
    else:
        lines = [ln for ln in captured.err.splitlines() if ln.startswith("logz run: error:")]
        assert len(lines) == 1 and "Traceback" not in captured.err, captured.err


@FAST
@given(argv=cli_argvs())
def test_random_command_lines(argv, capsys, monkeypatch):
    _cli_outcome(argv, capsys, monkeypatch)


@pytest.mark.slow
@MANY
@given(target=random_targets(), dtype=st.sampled_from([torch.float32, torch.float64]),
       name=st.sampled_from(["smc", "pis"]))
def test_random_callables_many(target, dtype, name):
    _boundary_outcome(target, dtype)
    _sampler_outcome(target, name)


@pytest.mark.slow
@MANY
@given(argv=cli_argvs())
def test_random_command_lines_many(argv, capsys, monkeypatch):
    _cli_outcome(argv, capsys, monkeypatch)
