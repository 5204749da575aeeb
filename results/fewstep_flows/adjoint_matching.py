"""Sampling an Adjoint-Matching fine-tuned flow model with the few-step solvers (issue 22, item 6).

    OMP_NUM_THREADS=1 python results/fewstep_flows/adjoint_matching.py

Base: the exact linear-path velocity of N((0.5, -0.5), diag(0.4, 0.8)); reward r(x) = b^T x,
b = (0.6, 0.3); the exact tilt is N(m + s^2 b, s^2). Adjoint Matching (40 SDE steps, 400 iterations)
fine-tunes it; the fine-tuned ODE is then sampled with each solver at 4-32 NFE from the same 20000
prior draws, against the library's default (RK4, 100 steps = 400 NFE). Reported: RMSE to the
default's samples (the solver's error alone, no sampling noise) and the W2 of the fitted Gaussian
to the exact tilt (fine-tuning + solver + sampling error ~1e-2). Writes adjoint_matching.{txt,json}.
"""

import json
import os
import time
from datetime import datetime, timezone

import torch

from logz.finetune import AdjointMatching, GaussianMixtureVelocity, QuadraticReward, fitted_gaussian_w2
from logz.sde.ode import nfe

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
base = GaussianMixtureVelocity.gaussian([0.5, -0.5], [0.4, 0.8])
reward = QuadraticReward(2, b=[0.6, 0.3])
tilt = base.tilt(reward)
mean, cov = tilt.mean_and_cov()
t0 = time.time()
am = AdjointMatching(base, reward, num_steps=40, batch_size=128, lr=1e-3, seed=0)
am.fit(400, progress=False)
fit_s = time.time() - t0
n = 20000
ref = am.sample(n, method="ode", num_steps=100, ode_method="rk4", generator=torch.Generator().manual_seed(3))
rows = [{"solver": "rk4 (default)", "nfe": 400, "rmse_vs_default": 0.0, "w2_to_tilt": fitted_gaussian_w2(ref, mean, cov)}]
for budget in (4, 8, 16, 32):
    for solver in ("euler", "midpoint", "heun_pc", "rk4"):
        steps = next(k for k in range(1, budget + 1) if nfe(solver, k) == budget)
        x = am.sample(n, method="ode", num_steps=steps, ode_method=solver, generator=torch.Generator().manual_seed(3))
        rows.append({"solver": solver, "nfe": budget,
                     "rmse_vs_default": float((x - ref).pow(2).sum(-1).mean().sqrt()),
                     "w2_to_tilt": fitted_gaussian_w2(x, mean, cov)})
lines = [f"Adjoint Matching fine-tuned model (fit {fit_s:.0f} s), ODE sampling, 20000 draws, same prior draws",
         f"{'solver':<14} {'NFE':>4} {'RMSE vs default':>16} {'W2 to exact tilt':>17}"]
lines += [f"{r['solver']:<14} {r['nfe']:>4} {r['rmse_vs_default']:>16.2e} {r['w2_to_tilt']:>17.3f}" for r in rows]
text = "\n".join(lines)
print(text)
open(os.path.join(HERE, "adjoint_matching.txt"), "w").write(text + "\n")
json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python results/fewstep_flows/adjoint_matching.py", "fit_seconds": fit_s, "rows": rows},
          open(os.path.join(HERE, "adjoint_matching.json"), "w"), indent=1)
