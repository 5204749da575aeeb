"""A Pyro model as a target: batched log_prob speed and SMC against the closed-form evidence.

The model is the Bayesian linear regression of issue 21: 12 weights w ~ N(0, I), 40 points
y ~ N(X w, 0.5^2), data in float64. Its evidence is closed-form, y ~ N(0, X X^T + 0.25 I).

- ``log_prob`` of 2000 rows through ``from_pyro`` (batched: vmap), against Pyro's own
  potential row by row (the old fallback), timed on 100 rows and scaled.
- SMC (default configuration, float64, 2000 particles) on the same target: wall time and
  the error against the exact evidence in standard errors.

Run (writes ``results/own_model/pyro_regression.md`` with the date and machine)::

    python benchmarks/bench_pyro.py
    OMP_NUM_THREADS=1 python -m pytest benchmarks/bench_pyro.py --benchmark-only -o python_files='bench_*.py' -s
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch

from logz import samplers
from logz import targets as T

NUM_WEIGHTS, NUM_POINTS, NOISE, ROWS, SEEDS = 12, 40, 0.5, 2000, 3


def regression(X, y):
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1], dtype=X.dtype), 1.0).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ w, NOISE), obs=y)


def problem(seed: int = 0):
    """(X, y, exact log evidence), float64."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(NUM_POINTS, NUM_WEIGHTS, generator=g, dtype=torch.float64)
    y = X @ torch.randn(NUM_WEIGHTS, generator=g, dtype=torch.float64) \
        + NOISE * torch.randn(NUM_POINTS, generator=g, dtype=torch.float64)
    cov = X @ X.T + NOISE ** 2 * torch.eye(NUM_POINTS, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(torch.zeros(NUM_POINTS, dtype=torch.float64), cov).log_prob(y)
    return X, y, float(exact)


def test_pyro_log_prob_rows(benchmark):
    X, y, _ = problem()
    target = T.from_pyro(regression, X, y)
    x = torch.randn(ROWS, target.dim, dtype=torch.float64)
    benchmark.extra_info.update(mode=target.modes[torch.float64], rows=ROWS)
    benchmark(target.log_prob, x)


def test_smc_on_pyro_regression(benchmark):
    X, y, exact = problem()
    target = T.from_pyro(regression, X, y)
    est = benchmark.pedantic(lambda: samplers.get("smc", target, seed=0).estimate_log_z(ROWS),
                             rounds=1, iterations=1)
    benchmark.extra_info.update(log_z=est.log_z, stderr=est.stderr, exact=exact,
                                z=(est.log_z - exact) / est.stderr)


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    from logz.samplers.smc import replicates_for

    torch.set_num_threads(1)
    X, y, exact = problem()
    load = os.getloadavg()[0]
    target = T.from_pyro(regression, X, y)
    x = torch.randn(ROWS, target.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    batched = _median_time(lambda: target.log_prob(x), 20)
    with torch.no_grad():
        grad_t = _median_time(lambda: T.log_prob_and_grad(target, x), 10)
    loop_target = T.from_pyro(regression, X, y, vectorize=False)
    per_row = _median_time(lambda: loop_target.log_prob(x[:100]), 3) / 100
    torch.testing.assert_close(target.log_prob(x[:100]), loop_target.log_prob(x[:100]))
    rows = []
    for seed in range(SEEDS):
        start, cpu = time.perf_counter(), time.process_time()
        sampler = samplers.get("smc", target, seed=seed)
        est = sampler.estimate_log_z(ROWS)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows.append((seed, est.log_z, est.stderr, (est.log_z - exact) / est.stderr, wall, cpu,
                     sampler.last_result.num_temperatures, sampler.kernel))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Pyro Bayesian linear regression ({NUM_WEIGHTS} weights, {NUM_POINTS} points, float64)",
        "",
        f"{now}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared; "
        f"1-min load {load:.2f}), 1 torch thread, torch {torch.__version__}, pyro {pyro.__version__}.",
        "Command: `python benchmarks/bench_pyro.py`",
        "",
        "| evaluation | time |",
        "|---|---|",
        f"| `log_prob` of {ROWS} rows, batched ({target.modes[torch.float64]}) | {1e3 * batched:.1f} ms |",
        f"| `log_prob_and_grad` of {ROWS} rows, batched | {1e3 * grad_t:.1f} ms |",
        f"| Pyro's potential row by row (the old fallback) | {1e3 * per_row:.2f} ms per row = "
        f"{ROWS * per_row:.2f} s per {ROWS} rows |",
        "",
        f"SMC (default configuration: float64, {replicates_for(ROWS)} replicates, {ROWS} particles), exact log Z = {exact:.4f}:",
        "",
        "| seed | log Z | SE | error / SE | wall | CPU | temperatures | kernel |",
        "|---|---|---|---|---|---|---|---|",
    ] + [f"| {s} | {lz:.4f} | {se:.4f} | {z:+.2f} | {w:.1f} s | {c:.1f} s | {nt} | {k} |"
         for s, lz, se, z, w, c, nt, k in rows]
    out = Path(__file__).resolve().parent.parent / "results" / "own_model" / "pyro_regression.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
