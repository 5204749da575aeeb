"""SCLD on LGCP (pines, 40 x 40, d = 1600) in the whitened parameterisation (x = mu0 + L z, the
same Z): the `sequential` budget's settings (batch 256, 128 steps, 2 x 64 nets, 2000 final
particles) with few iterations and no periodic evaluation, because one training iteration
takes ~42 s and one estimate ~11 min on one core here; the estimate's MCMC refresh at SMC's
moves per unit of beta (moves_per_beta=160, 1 x) instead of SCLD's 8 x default (an estimate
at 8 x would take ~40 min). One JSON line per seed on stdout.

argv: first seed, number of seeds, iterations.
"""
import json, subprocess, sys, time, warnings

import torch

from logz import samplers, targets
from logz.bench import budgets
from logz.bench.reference import default_reference_file, load_reference_log_z

warnings.filterwarnings("ignore")
first, count, iterations = (int(a) for a in sys.argv[1:4])
target = targets.get("lgcp", whitened=True)
truth = load_reference_log_z(default_reference_file(), target)["log_z"]
config = budgets.get("sequential").sampler_config("scld", "lgcp")
config.update(eval_every=None, moves_per_beta=160.0)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
for seed in range(first, first + count):
    sampler = samplers.get("scld", target, seed=seed, **config)
    t0 = time.perf_counter()
    history = sampler.fit(iterations, progress=False)
    t1 = time.perf_counter()
    est = sampler.estimate_log_z(2000)
    t2 = time.perf_counter()
    print(json.dumps({
        "target": "lgcp (whitened)", "sampler": "scld", "seed": seed, "iterations": iterations,
        "config": config, "git_commit": commit, "threads": torch.get_num_threads(),
        "log_z": est.log_z, "stderr": est.stderr, "truth": truth, "error": est.log_z - truth,
        "ess": est.ess, "reliable": est.reliable, "reason": est.reason,
        "batch_log_z": [float(v) for v in history.log_z], "loss": [float(v) for v in history.loss],
        "train_seconds": round(t1 - t0, 1), "eval_seconds": round(t2 - t1, 1)}), flush=True)
