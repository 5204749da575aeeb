"""Bespoke RK2 solver on a *trained* flow-matching model against fixed solvers at equal NFE.

    OMP_NUM_THREADS=1 python results/fewstep_flows/bespoke_trained.py

A FlowMatching model (linear path, MLP 128x3, 3000 iterations) is trained on the d = 8 Gaussian of
run.py. For each budget, the solver's pathwise error against the model's own RK4-400 solution
(RMSE over 4096 fixed prior draws: the solver error alone) and the W2 of the Gaussian fitted to
20000 samples against the data (solver + model error; sampling error ~1e-2). The bespoke solver is
trained against RK4-200 solutions of the model (pool 4096, 300 iterations). Writes
bespoke_trained.{txt,json}.
"""

import json
import os
import time
from datetime import datetime, timezone

import torch

from logz.finetune import FlowMatching, fitted_gaussian_w2
from logz.finetune.bespoke import BespokeSolver
from logz.sde import odeint, uniform_grid
from logz.sde.ode import nfe
from logz.theory.gaussian import GaussianData

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
data = GaussianData.random(8, eig_range=(0.05, 1.0), seed=0)


class Target:
    dim = 8

    def sample(self, n, generator=None):
        return data.sample(n, generator)


t0 = time.time()
fm = FlowMatching(8, hidden=128, depth=3, seed=0)
fm.fit(Target(), 3000)
v = fm.velocity
for p in v.parameters():
    p.requires_grad_(False)
train_s = time.time() - t0
g = torch.Generator().manual_seed(1)
x_eval = torch.randn(4096, 8, generator=g)
x_big = torch.randn(20000, 8, generator=g)
with torch.no_grad():
    ref = odeint(v, x_eval, uniform_grid(1.0, 400), "rk4")
rows = []
mean, cov = data.mean.float(), data.cov.float()
for budget in (4, 8, 16):
    for solver in ("euler", "midpoint", "heun_pc", "rk4"):
        steps = next(k for k in range(1, budget + 1) if nfe(solver, k) == budget)
        with torch.no_grad():
            rmse = float((odeint(v, x_eval, uniform_grid(1.0, steps), solver) - ref).pow(2).sum(-1).mean().sqrt())
            w2 = fitted_gaussian_w2(odeint(v, x_big, uniform_grid(1.0, steps), solver), mean, cov)
        rows.append({"solver": solver, "nfe": budget, "rmse_vs_model_ode": rmse, "w2_to_data": w2})
    b = BespokeSolver(budget // 2)
    tb = time.time()
    b.fit(v, 8, iterations=300, pool=4096, reference_steps=200, seed=2)
    fit_s = time.time() - tb
    with torch.no_grad():
        rmse = float((b.solve(v, x_eval) - ref).pow(2).sum(-1).mean().sqrt())
        w2 = fitted_gaussian_w2(b.solve(v, x_big), mean, cov)
    rows.append({"solver": "bespoke", "nfe": budget, "rmse_vs_model_ode": rmse, "w2_to_data": w2,
                 "fit_seconds": fit_s})
with torch.no_grad():
    w2_model = fitted_gaussian_w2(odeint(v, x_big, uniform_grid(1.0, 400), "rk4"), mean, cov)
lines = [f"trained FlowMatching (3000 it, {train_s:.0f} s), d = 8; model's own RK4-400 output: W2 to data "
         f"{w2_model:.3f} (model error + sampling)",
         f"{'solver':<9} {'NFE':>4} {'RMSE vs model ODE':>18} {'W2 to data':>11}"]
lines += [f"{r['solver']:<9} {r['nfe']:>4} {r['rmse_vs_model_ode']:>18.2e} {r['w2_to_data']:>11.3f}" for r in rows]
text = "\n".join(lines)
print(text)
open(os.path.join(HERE, "bespoke_trained.txt"), "w").write(text + "\n")
json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python results/fewstep_flows/bespoke_trained.py", "w2_model_rk4_400": w2_model,
           "rows": rows}, open(os.path.join(HERE, "bespoke_trained.json"), "w"), indent=1)
