"""Plain importance sampling vs the SMC-corrected estimate (``estimate_log_z(resample=True)``) of
the same short DGFS trainings on TARGET (gmm9, funnel: exact log Z = 0), 5 seeds. NOT the
reference budget.

Run from the repository root:
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=. python results/smc_corrected/dgfs_study.py TARGET \
        > results/smc_corrected/TARGET_dgfs.log
writes results/smc_corrected/TARGET_dgfs.json (one record per seed).
"""
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import torch

from logz import samplers, targets

ITERATIONS, SEEDS, N_EVAL = 300, range(5), 2000
CONFIG = dict(num_steps=50, dt=0.02, batch_size=128)  # T = 1 as the defaults; half the steps, half the batch
ESTIMATES = {"plain IS": {}, "SMC S=8 R=8": dict(resample=True),
             "SMC S=25 R=8": dict(resample=True, segments=25), "SMC S=8 R=40": dict(resample=True, replicates=40),
             "SMC +2 MALA": dict(resample=True, mcmc_steps=2), "SMC +10 MALA": dict(resample=True, mcmc_steps=10)}

warnings.simplefilter("ignore")
torch.set_num_threads(1)
NAME = sys.argv[1] if len(sys.argv) > 1 else "gmm9"
target = targets.get(NAME)
print(f"target {NAME} | date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {platform.processor() or platform.machine()} | "
      f"torch {torch.__version__} | threads 1 | dgfs {CONFIG}, {ITERATIONS} iterations, {N_EVAL} samples per estimate",
      flush=True)
records = []
for seed in SEEDS:
    s = samplers.get("dgfs", target, seed=seed, **CONFIG)
    t0 = time.time()
    s.fit(ITERATIONS, progress=False)
    rec = {"seed": seed, "train_s": time.time() - t0, "learned_log_z": s.learned_log_z, "estimates": {}}
    for name, kw in ESTIMATES.items():
        t0 = time.time()
        e = s.estimate_log_z(N_EVAL, **kw)
        rec["estimates"][name] = {"log_z": e.log_z, "stderr": e.stderr, "ess": e.ess, "eubo": e.eubo,
                                  "reliable": e.reliable, "reason": e.reason, "seconds": time.time() - t0}
        print(f"seed {seed} {name:>13}: log Z {e.log_z:+.4f} +- {e.stderr:.4f} (z {e.log_z / e.stderr:+.2f}) "
              f"ESS {e.ess:.3f} EUBO {e.eubo:+.2f} reliable {e.reliable} | {time.time() - t0:.1f} s", flush=True)
    print(f"seed {seed}: train {rec['train_s']:.0f} s, learned log F(0, 0) {rec['learned_log_z']:+.4f}", flush=True)
    records.append(rec)
Path(__file__).with_name(f"{NAME}_dgfs.json").write_text(json.dumps(
    {"command": " ".join(sys.argv), "config": CONFIG, "iterations": ITERATIONS, "eval_samples": N_EVAL,
     "true_log_z": float(target.log_Z), "records": records}, indent=1) + "\n")
for name in ESTIMATES:
    err = torch.tensor([r["estimates"][name]["log_z"] for r in records])
    se = torch.tensor([r["estimates"][name]["stderr"] for r in records])
    print(f"{name:>13}: |error| {err.abs().mean():.4f} +- {err.abs().std():.4f} | signed {err.mean():+.4f} | "
          f"mean stderr {se.mean():.4f} | within 2 SE {int(((err / se).abs() <= 2).sum())}/{len(err)} | "
          f"flagged unreliable {sum(not r['estimates'][name]['reliable'] for r in records)}/{len(records)}")
