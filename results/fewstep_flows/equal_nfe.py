"""W2 to the data at exactly equal NFE (steps chosen per solver so that NFE = budget), exact lab.

    OMP_NUM_THREADS=1 python results/fewstep_flows/equal_nfe.py

Same data as run.py (GaussianData.random(8, eig_range=(0.05, 1.0), seed=0)); bespoke rows are
read from solvers.json (RK2 bespoke with budget/2 steps). Writes equal_nfe.{txt,json}.
"""

import json
import os
from datetime import datetime, timezone

import torch

from logz.sde.ode import nfe
from logz.theory.flows import GaussianFlow, ode_solve, propagate_law
from logz.theory.gaussian import GaussianData

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
data = GaussianData.random(8, eig_range=(0.05, 1.0), seed=0)
budgets = (2, 3, 4, 6, 8, 12, 16, 32, 64)
solvers = ("euler", "heun", "midpoint", "heun_pc", "rk4")
bespoke = {(r["interpolant"], r["nfe"]): r["w2"]
           for r in json.load(open(os.path.join(HERE, "solvers.json")))["rows"] if r["solver"] == "bespoke"}
rows, lines = [], ["W2 to the data at exactly the NFE budget (exact Gaussian lab, d = 8); '-' = budget not reachable"]
lines.append(f"{'path':<7} {'NFE':>4} " + " ".join(f"{s:>9}" for s in solvers + ("bespoke",)))
for ip in ("linear", "gvp", "vp"):
    flow = GaussianFlow(data, ip)
    for b in budgets:
        cells = []
        for s in solvers:
            steps = next((k for k in range(1, b + 1) if nfe(s, k) == b), None)
            if steps is None:
                cells.append(None)
                continue
            w2 = float(propagate_law(ode_solve(s, steps), flow, flow.prior()).w2(data.law))
            rows.append({"interpolant": ip, "solver": s, "steps": steps, "nfe": b, "w2": w2})
            cells.append(w2)
        cells.append(bespoke.get((ip, b)))
        lines.append(f"{ip:<7} {b:>4} " + " ".join(f"{c:9.2e}" if c is not None else f"{'-':>9}" for c in cells))
text = "\n".join(lines)
print(text)
open(os.path.join(HERE, "equal_nfe.txt"), "w").write(text + "\n")
json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python results/fewstep_flows/equal_nfe.py", "rows": rows},
          open(os.path.join(HERE, "equal_nfe.json"), "w"), indent=1)
