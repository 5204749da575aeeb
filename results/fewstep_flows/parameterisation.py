"""Velocity vs noise (score) parameterisation on one path (SiT, arXiv 2401.08740, Sec. 3.2).

    OMP_NUM_THREADS=1 python results/fewstep_flows/parameterisation.py

Same network (VelocityMLP 128x3), same data (the 2-D three-mode mixture of mixture.py), same
1500 Adam iterations with the shared Trainer; one net regresses the velocity alpha' x1 + sigma' x0,
the other the noise x0 (converted by ``Interpolant.velocity_from_noise``). Both are sampled on
[1e-3, 1 - 1e-3] (the noise model's velocity is singular where alpha = 0 or sigma = 0, as in SiT's
sampler), by the ODE (RK4, 16 steps) and by the SDE with w = sigma (64 steps). W2 by exact OT,
n = 1000, mean +- SE over 5 seeds. Writes parameterisation.{txt,json}.
"""

import json
import os
import time
from datetime import datetime, timezone

import numpy as np
import torch

from logz.finetune import GaussianMixtureVelocity
from logz.finetune.interpolants import InterpolantSDE, make_interpolant
from logz.finetune.nets import VelocityMLP
from logz.training import Trainer
from logz.sde import odeint
from logz.theory.w2 import empirical_w2

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
mix = GaussianMixtureVelocity([0.3, 0.3, 0.4], [[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]],
                              [[0.1, 0.3], [0.3, 0.1], [0.2, 0.2]])
T0, T1 = 1e-3, 1 - 1e-3
out, lines = [], ["W2 to the mixture (exact OT, n = 1000, 5 seeds), same net and budget, two targets"]
t_start = time.time()
for path_name in ("linear", "gvp"):
    path = make_interpolant(path_name)
    for prediction in ("velocity", "noise"):
        torch.manual_seed(0)
        net = VelocityMLP(2, 128, 3)
        g = torch.Generator().manual_seed(0)

        def step(it, net=net, g=g, path=path, prediction=prediction):
            x1 = mix.sample(256, g)
            x0 = torch.randn(x1.shape, generator=g)
            t = T0 + (T1 - T0) * torch.rand(256, generator=g)
            xt, target = path.pair(x0, x1, t, prediction)
            return {"loss": (net(xt, t) - target).pow(2).sum(-1).mean()}

        Trainer({"net": net}, step, lr=2e-3, lr_schedule={"kind": "cosine", "total": 1500}).fit(1500, progress=False)
        net.eval()
        if prediction == "velocity":
            velocity = net
        else:
            velocity = lambda x, t, net=net, path=path: path.velocity_from_noise(net(x, t), x, t)
        for sampler in ("ode rk4 x16", "sde sigma x64"):
            vals = []
            for r in range(5):
                g2 = torch.Generator().manual_seed(100 + r)
                x0 = torch.randn(1000, 2, generator=g2)
                with torch.no_grad():
                    if sampler.startswith("ode"):
                        x1 = odeint(velocity, x0, torch.linspace(T0, T1, 17), "rk4")
                    else:
                        x1 = InterpolantSDE(velocity, path, "sigma").sample(x0, 64, t_min=T0, t_max=T1, generator=g2)
                vals.append(empirical_w2(x1, mix.sample(1000, g2)))
            row = {"path": path_name, "prediction": prediction, "sampler": sampler,
                   "w2": float(np.mean(vals)), "se": float(np.std(vals, ddof=1) / np.sqrt(5))}
            out.append(row)
            lines.append(f"{path_name:<7} {prediction:<9} {sampler:<14} W2 {row['w2']:.3f} +- {row['se']:.3f}")
            print(lines[-1], flush=True)
text = "\n".join(lines) + f"\n[{time.time() - t_start:.0f} s]"
open(os.path.join(HERE, "parameterisation.txt"), "w").write(text + "\n")
json.dump({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": "python results/fewstep_flows/parameterisation.py", "rows": out},
          open(os.path.join(HERE, "parameterisation.json"), "w"), indent=1)
