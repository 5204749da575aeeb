"""FlowTurbo's velocity refiner against the pseudo-corrector alone, at equal flow-model NFE.

    OMP_NUM_THREADS=1 python results/fewstep_flows/refiner.py

Exact velocity of the d = 8 Gaussian of run.py. Refined sampler: ``switch`` pseudo-corrector steps
(switch + 1 model NFE) on a grid of ``total`` uniform steps, then total - switch refined Euler
steps (refiner MLP 32x2, 600 iterations). Baseline: the pseudo-corrector alone with ``switch``
steps (the same model NFE). Pathwise RMSE against the exact flow map over 4096 fixed prior draws.
Writes refiner.{txt,json}.
"""

import json
import os
import time
from datetime import datetime, timezone

import torch

from logz.finetune.refiner import VelocityRefiner
from logz.sde import uniform_grid
from logz.theory.flows import GaussianFlow, ode_solve
from logz.theory.gaussian import GaussianData

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
data = GaussianData.random(8, eig_range=(0.05, 1.0), seed=0)
x0 = torch.randn(4096, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
rows, lines = [], ["pathwise RMSE to the exact flow map (d = 8), equal model NFE"]
for ip in ("linear", "gvp", "vp"):
    f = GaussianFlow(data, ip)
    P, q = f.flow_map(0.0, 1.0)
    exact = x0 @ P.T + q
    for switch, total in ((3, 6), (3, 12), (7, 14), (7, 28)):
        t0 = time.time()
        times = uniform_grid(1.0, total, dtype=torch.float64)
        r = VelocityRefiner(8)
        r.fit(f, times, switch, iterations=600, dtype=torch.float64, seed=0)
        with torch.no_grad():
            out = r.sample(f, x0, times, switch)
        refined = float((out.x - exact).pow(2).sum(-1).mean().sqrt())
        alone = float((ode_solve("heun_pc", switch)(f, x0) - exact).pow(2).sum(-1).mean().sqrt())
        rows.append({"interpolant": ip, "switch": switch, "total_steps": total, "model_nfe": out.model_nfe,
                     "refiner_calls": out.refiner_calls, "rmse_refined": refined, "rmse_heun_pc": alone,
                     "fit_seconds": time.time() - t0})
        lines.append(f"{ip:<7} model NFE {out.model_nfe:>2} (+{out.refiner_calls:>2} refiner calls): refined "
                     f"{refined:.3e}   heun_pc alone {alone:.3e}")
        print(lines[-1], flush=True)
open(os.path.join(HERE, "refiner.txt"), "w").write("\n".join(lines) + "\n")
json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python results/fewstep_flows/refiner.py", "rows": rows},
          open(os.path.join(HERE, "refiner.json"), "w"), indent=1)
