"""Data-backed targets: LGCP (Cox process) and Bayesian logistic regression; data-file errors;
the reference-log-Z helper."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch

import logz.targets as T
from logz.targets.data import DATA_DIR_ENV, DataFileNotFound, MalformedDataFile, read_numeric_csv
from logz.targets.lgcp import LGCP, bin_counts, grid_gram, read_points
from logz.targets.logistic import LogisticRegression, ionosphere, sonar, synthetic_classification

REPO = Path(__file__).resolve().parents[2]


def _shared_data_dir() -> Path:
    """$LOGZ_DATA_DIR if set, else ../shared/data relative to the repo (what CI sets)."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).resolve() if env else (REPO.parent / "shared" / "data").resolve()


DATA = _shared_data_dir()
needs_data = pytest.mark.skipif(
    not all((DATA / f).is_file() for f in ("pines.csv", "ionosphere.csv", "sonar.csv")),
    reason=f"benchmark data files not found in {DATA} (set {DATA_DIR_ENV} to the shared data directory)")


@pytest.fixture
def data_env(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(DATA))


# -- LGCP -------------------------------------------------------------------------------------
def test_bin_counts_layout_and_upper_edge():
    pts = [[0.0, 0.0], [1.0, 1.0], [0.99, 0.01], [0.5, 0.75], [0.5, 0.75]]
    c = bin_counts(pts, 4)
    assert c.shape == (16,) and c.sum() == 5
    # flat index i * grid + j with i the x-bin and j the y-bin; the point at (1, 1) goes into the last bin
    assert c[0] == 1 and c[15] == 1 and c[3 * 4 + 0] == 1 and c[2 * 4 + 3] == 2


def _dense_lgcp_log_prob(t: LGCP, x: torch.Tensor) -> torch.Tensor:
    """Independent dense computation: bin centres in the unit square, MVN + Poisson pmf."""
    g = t.grid
    centres = torch.tensor([[(i + 0.5) / g, (j + 0.5) / g] for i in range(g) for j in range(g)],
                           dtype=torch.float64)
    K = torch.empty(g * g, g * g, dtype=torch.float64)
    for m in range(g * g):
        for n in range(g * g):
            K[m, n] = 1.91 * math.exp(-float(torch.linalg.norm(centres[m] - centres[n])) / (1 / 33))
    mu0 = math.log(126) - 1.91 / 2
    prior = torch.distributions.MultivariateNormal(torch.full((g * g,), mu0, dtype=torch.float64), K)
    lik = torch.distributions.Poisson(torch.exp(x) / (g * g)).log_prob(t.counts).sum(-1)
    return prior.log_prob(x) + lik


def test_lgcp_log_prob_matches_dense_computation(dtype):
    t = LGCP(grid=5, data="synthetic", seed=3)
    assert t.dim == 25 and t.is_synthetic and t.name == "lgcp_synthetic" and t.log_Z is None
    assert t.counts.sum() == len(t.points) > 0
    x = t.sample_prior(6, torch.Generator().manual_seed(0), dtype=torch.float64)
    dense = _dense_lgcp_log_prob(t, x)
    # the reference form leaves out Σ [n log a - log n!] of the Poisson pmf
    expected = dense - t.poisson_log_normalizer
    got = t.log_prob(x.to(dtype))
    assert got.dtype == dtype and got.shape == (6,)
    tol = 1e-9 if dtype == torch.float64 else 2e-5 * float(expected.abs().max())
    assert torch.allclose(got.double(), expected, atol=tol, rtol=0)


def test_lgcp_whitened_differs_by_log_jacobian(dtype):
    tu = LGCP(grid=6, data="synthetic", seed=1)
    tw = LGCP(grid=6, data="synthetic", seed=1, whitened=True)
    assert tw.init_std == 1.0 and tu.init_std > 3
    z = torch.randn(5, 36, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = tw.to_latent(z)
    assert torch.allclose(tu.to_white(x), z, atol=1e-10)
    diff = tw.log_prob(z.to(dtype)).double() - tu.log_prob(x.to(dtype)).double()
    expected = 0.5 * torch.logdet(grid_gram(6))  # log|det L| = ½ log det K
    tol = 1e-8 if dtype == torch.float64 else 1e-2
    assert torch.allclose(diff, expected.expand(5), atol=tol)
    # differentiable in both parameterisations
    zg = z.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(tw.log_prob(zg).sum(), zg)
    assert torch.isfinite(g).all()


@needs_data
def test_lgcp_pines_from_data_dir(data_env, dtype):
    t = T.get("lgcp")
    assert t.name == "lgcp" and t.dim == 1600 and not t.is_synthetic and t.log_Z is None
    assert t.counts.sum() == 126 and len(t.data_sha256) == 64
    x = t.sample_prior(4, torch.Generator().manual_seed(0), dtype=dtype).requires_grad_(True)
    lp = t.log_prob(x)
    (g,) = torch.autograd.grad(lp.sum(), x)
    assert lp.dtype == dtype and torch.isfinite(lp).all() and torch.isfinite(g).all()
    # the same file through an explicit path gives the same target
    t2 = LGCP(path=DATA / "pines.csv", grid=8)
    assert t2.counts.sum() == 126 and t2.name == "lgcp"


def test_lgcp_without_data(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.warns(UserWarning, match="synthetic"):
        t = T.get("lgcp", grid=4)
    assert t.is_synthetic and t.name == "lgcp_synthetic" and t.data_path is None
    with pytest.raises(DataFileNotFound, match=DATA_DIR_ENV):
        LGCP(grid=4, data="pines")
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataFileNotFound) as err:
        LGCP(path=missing, grid=4)
    assert str(missing) in str(err.value)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataFileNotFound) as err:
        LGCP(grid=4, data="pines")
    assert str(tmp_path / "pines.csv") in str(err.value) and DATA_DIR_ENV in str(err.value)


def test_lgcp_malformed_points_name_line(tmp_path):
    bad = tmp_path / "pts.csv"
    bad.write_text('"","data_x","data_y"\n"1",0.1,0.2\n"2",0.3\n')
    with pytest.raises(MalformedDataFile, match="line 3"):
        read_points(bad)
    bad.write_text("x,y\n0.1,0.2\n\n0.5,1.5\n")
    with pytest.raises(MalformedDataFile, match="line 4.*outside"):
        read_points(bad)


# -- logistic regression ----------------------------------------------------------------------
def _pyro_logistic(Xd, y01):
    w = pyro.sample("w", dist.Normal(torch.zeros(Xd.shape[1], dtype=Xd.dtype), 1.0).to_event(1))
    with pyro.plate("data", Xd.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=Xd @ w), obs=y01)


def test_logistic_matches_pyro_model(dtype):
    X, y = synthetic_classification(num_data=40, num_features=3, seed=2)
    y01 = (y + 1) / 2
    t = LogisticRegression(X, y01)  # {0, 1} labels are accepted
    assert t.dim == 4 and torch.equal(t.labels, y) and t.log_Z is None
    ref = T.from_pyro(_pyro_logistic, t.design, y01)
    assert ref.dim == 4
    theta = torch.randn(7, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = ref.log_prob(theta)
    got = t.log_prob(theta.to(dtype))
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert got.dtype == dtype and torch.allclose(got.double(), expected, atol=tol, rtol=tol)


def test_logistic_design_is_standardized_with_bias():
    X, y = synthetic_classification(num_data=50, num_features=4, seed=0)
    X = torch.cat([X, torch.full((50, 1), 3.0, dtype=torch.float64)], 1)  # a constant column
    t = LogisticRegression(X, y)
    D = t.design
    assert D.shape == (50, 6) and torch.equal(D[:, 0], torch.ones(50, dtype=torch.float64))
    assert torch.allclose(D[:, 1:5].mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(D[:, 1:5].std(0, unbiased=False), torch.ones(4, dtype=torch.float64))
    assert torch.equal(D[:, 5], torch.zeros(50, dtype=torch.float64))
    with pytest.raises(ValueError, match="labels"):
        LogisticRegression(X, torch.arange(50.0))


@needs_data
@pytest.mark.parametrize("name,dim,n", [("ionosphere", 35, 351), ("sonar", 61, 208)])
def test_named_data_sets(data_env, name, dim, n):
    t = T.get(name)
    assert t.name == name and t.dim == dim and t.num_data == n and t.init_std > 0 and t.log_Z is None
    # at θ = 0 every label has probability ½: log p = log N(0; 0, I) - n log 2
    lp0 = t.log_prob(torch.zeros(1, dim, dtype=torch.float64))
    assert math.isclose(float(lp0), -0.5 * dim * math.log(2 * math.pi) - n * math.log(2), rel_tol=1e-12)
    assert set(t.labels.tolist()) == {-1.0, 1.0}
    same = T.get(name, path=DATA / f"{name}.csv")
    assert torch.equal(same.design, t.design)


def test_named_data_sets_missing_files_raise(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    for factory, fname in ((ionosphere, "ionosphere.csv"), (sonar, "sonar.csv")):
        with pytest.raises(DataFileNotFound, match=DATA_DIR_ENV):
            factory()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataFileNotFound) as err:
        T.get("sonar")
    assert str(tmp_path / "sonar.csv") in str(err.value) and DATA_DIR_ENV in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        T.get("ionosphere", path=tmp_path / "elsewhere.csv")
    assert str(tmp_path / "elsewhere.csv") in str(err.value)


def test_malformed_csv_names_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("y,a,b\n1,0.5,0.2\n-1,0.1,0.3\n1,0.2\n")
    with pytest.raises(MalformedDataFile, match=r"bad\.csv, line 4: expected 3"):
        T.get("logistic", path=f)
    f.write_text("1,0.5,0.2\n-1,abc,0.3\n")
    with pytest.raises(MalformedDataFile, match="line 2, field 2: cannot parse 'abc'"):
        read_numeric_csv(f)
    f.write_text("y,a\n1,0.5\n\n2,0.1\n")
    with pytest.raises(MalformedDataFile, match="line 4: label"):
        T.get("logistic", path=f)


def test_registry_entries_and_synthetic_logistic():
    assert {"lgcp", "lgcp_whitened", "ionosphere", "sonar", "logistic"} <= set(T.names())
    w = T.get("lgcp_whitened", data="synthetic", grid=4)
    assert w.whitened and w.name == T.get("lgcp", data="synthetic", grid=4).name  # one reference record
    t = T.get("logistic")
    assert t.name == "logistic" and t.dim == 11 and t.num_data == 100
    t2 = T.get("logistic", num_data=30, num_features=2, seed=5)
    assert t2.dim == 3 and torch.equal(t2.design, T.get("logistic", num_data=30, num_features=2, seed=5).design)
    X, y = synthetic_classification(20, 2, seed=1)
    assert T.get("logistic", X=X, y=y).dim == 3


# -- reference log Z --------------------------------------------------------------------------
def test_reference_log_z_smoke(tmp_path):
    """Tiny SMC run stored as JSON; checked against brute-force importance sampling from the prior."""
    from logz.bench.reference import compute_reference_log_z, load_reference_log_z

    kw = {"num_data": 15, "num_features": 1, "seed": 4}
    out = tmp_path / "ref.json"
    rec = compute_reference_log_z("logistic", out, num_samples=256, target_kwargs=kw,
                                  sampler_config={"num_replicates": 4})
    stored = json.loads(out.read_text())["logistic"]
    assert stored == rec and "logz.bench.reference logistic" in rec["command"]
    assert load_reference_log_z(out, "logistic")["log_z"] == rec["log_z"]
    # d = 2: the prior is a fine proposal, log Z = log E_prior[likelihood]
    t = T.get("logistic", **kw)
    theta = torch.randn(100_000, t.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ll = t.log_likelihood(theta)
    is_log_z = float(torch.logsumexp(ll, 0) - math.log(len(ll)))
    is_se = float(torch.exp(ll - ll.max()).std() / torch.exp(ll - ll.max()).mean() / math.sqrt(len(ll)))
    assert math.isfinite(rec["stderr"])
    assert abs(rec["log_z"] - is_log_z) < 4 * math.hypot(rec["stderr"], is_se) + 0.02
