"""Short CMCD / SCLD probe on one target (one seed; NOT the issue's reference budget).

Run from the repository root (TARGET: funnel, gmm9, ...):
    OMP_NUM_THREADS=1 PYTHONPATH=. python results/sequential/probe.py TARGET > results/sequential/TARGET_probe.log
"""
import sys
import time

import torch

from logz import samplers, targets
from logz.samplers.cmcd import CMCD

ITERATIONS, COMMON = 300, dict(num_steps=64, batch_size=128, hidden=64, layers=2, seed=0, lr=1e-3)
CONFIGS = [("cmcd", dict(loss="vargrad")), ("scld", dict(loss="subtraj")),
           ("scld", dict(loss="subtraj", mcmc_steps=2))]

torch.manual_seed(0)
target = targets.get(sys.argv[1])
print(f"target {sys.argv[1]} dim={target.dim} log_Z={target.log_Z} init_std={target.init_std}")
for name, opts in CONFIGS:
    s = samplers.get(name, target, **COMMON, **opts)
    t0 = time.time()
    s.fit(ITERATIONS, progress=False)
    train = time.time() - t0
    t0 = time.time()
    is_est = CMCD.estimate_log_z(s, 2000)
    line = (f"{name} {opts}: train {train:.0f}s | IS log Z {is_est.log_z:+.3f} +- {is_est.stderr:.3f} "
            f"ELBO {is_est.elbo:+.3f} ESS {is_est.ess:.3f}")
    if name == "scld":
        seq = s.estimate_log_z(2000)
        line += f" | sequential log Z {seq.log_z:+.3f} +- {seq.stderr:.3f} (R={s.replicates})"
    print(line + f" | eval {time.time() - t0:.0f}s", flush=True)
