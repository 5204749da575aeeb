"""Few-step sampling of flow models, measured in the exact Gaussian laboratory (issue 22).

    OMP_NUM_THREADS=1 python results/fewstep_flows/run.py [--quick] [--only solvers|diffusion|likelihood|meanflow]

Writes, next to this file: solvers.{txt,json} + w2_vs_nfe.png (every ODE solver x interpolant,
bespoke RK2 solvers), diffusion.{txt,json} (SDE with SiT's w(t) choices), likelihood.{txt,json}
(PF-ODE log-density error vs NFE), meanflow.{txt,json} (a small MeanFlow model, 1-4 steps, against
the ODE of a flow-matching model at equal NFE). All laws exact except the trained-model rows.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

import torch

from logz.finetune import GaussianMixtureVelocity, FlowMatching, fitted_gaussian_w2, log_prob_ode
from logz.finetune.meanflow import MeanFlow
from logz.sde.ode import nfe
from logz.theory.flows import GaussianFlow, SOLVERS, diffusion_study, solver_study
from logz.theory.gaussian import GaussianData

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = "--quick" in sys.argv
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None   # one part


def dump(name, text, obj):
    with open(os.path.join(HERE, f"{name}.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(obj, f, indent=1)
    print(text, flush=True)


def main():
    torch.set_num_threads(1)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus (shared)",
            "torch": torch.__version__, "command": "python results/fewstep_flows/run.py " + " ".join(sys.argv[1:])}
    data = GaussianData.random(8, eig_range=(0.05, 1.0), seed=0)

    if ONLY in (None, "solvers"):
        solvers_part(data, meta)
    if ONLY in (None, "diffusion"):
        diffusion_part(data, meta)
    if ONLY in (None, "likelihood"):
        likelihood_part(data, meta)
    if ONLY in (None, "meanflow"):
        meanflow_part(meta)


def solvers_part(data, meta):
    """1. solvers x interpolants, bespoke."""
    t0 = time.time()
    study = solver_study(data, steps=(1, 2, 4, 8, 16, 32, 64),
                         bespoke_steps=(1, 2) if QUICK else (1, 2, 4, 8), bespoke_iterations=300)
    study.plot(HERE)
    dump("solvers", study.table() + f"\n[{time.time() - t0:.0f} s]", {**meta, **study.to_dict()})


def diffusion_part(data, meta):
    """2. SDE with w(t): the same exact model, different diffusion after training."""
    t0 = time.time()
    rows = diffusion_study(data, norms=(0.5, 1.0, 2.0), steps=(4, 8, 16, 32, 64, 128))
    lines = ["W2 to the data of Euler–Maruyama with w(t) (exact law; NFE = steps; 'ode' is Euler)",
             f"{'path':<7} {'w(t)':<22} {'norm':>4} " + " ".join(f"{k:>9}" for k in (4, 8, 16, 32, 64, 128))]
    keys = list(dict.fromkeys((r.interpolant, r.diffusion, r.norm) for r in rows))
    for key in keys:
        if key[1] == "ode" and key[2] != 1.0:
            continue
        vals = [r.w2 for r in rows if (r.interpolant, r.diffusion, r.norm) == key]
        lines.append(f"{key[0]:<7} {key[1]:<22} {key[2]:>4} " + " ".join(f"{v:9.2e}" for v in vals))
    dump("diffusion", "\n".join(lines) + f"\n[{time.time() - t0:.0f} s]",
         {**meta, "rows": [r.__dict__ for r in rows]})



def likelihood_part(data, meta):
    """3. PF-ODE likelihood: |log p_model - log p| vs NFE (exact velocity, so only the solver errs)."""
    t0 = time.time()
    lines = ["PF-ODE log-density error, mean |log p_ODE(x) - log p(x)| over 256 data points (d = 8)",
             f"{'path':<7} {'solver':<9} " + " ".join(f"{'NFE ' + str(k):>11}" for k in ("steps",))]
    out = []
    x = data.sample(256, torch.Generator().manual_seed(5))
    for ip in ("linear", "gvp"):
        flow = GaussianFlow(data, ip)
        exact = flow.log_prob(x, 1.0)
        for solver in SOLVERS:
            for k in (2, 4, 8, 16, 32):
                lp = log_prob_ode(flow, x, num_steps=k, method=solver, divergence="exact")
                err = float((lp - exact).abs().mean())
                out.append({"interpolant": ip, "solver": solver, "steps": k, "nfe": nfe(solver, k), "error": err})
    lines = ["PF-ODE log-density error, mean |log p_ODE(x) - log p(x)| over 256 data points (d = 8)"]
    for ip in ("linear", "gvp"):
        for solver in SOLVERS:
            cells = [r for r in out if r["interpolant"] == ip and r["solver"] == solver]
            lines.append(f"{ip:<7} {solver:<9} " + "  ".join(f"NFE {r['nfe']:>3}: {r['error']:.2e}" for r in cells))
    dump("likelihood", "\n".join(lines) + f"\n[{time.time() - t0:.0f} s]", {**meta, "rows": out})



def meanflow_part(meta):
    """4. MeanFlow vs flow matching + ODE at equal NFE (2-D Gaussian, fitted-Gaussian W2, 20000 samples)."""
    t0 = time.time()
    target = GaussianMixtureVelocity.gaussian([1.0, -0.5], [0.3, 0.6])
    mean, cov = target.mean_and_cov()
    iters = 500 if QUICK else 1500
    rows = []
    for label, model in (("meanflow (scratch)", MeanFlow(2, hidden=64, flow_fraction=0.5, seed=0)),
                         ("meanflow (distilled from exact v)", MeanFlow(2, hidden=64, teacher=target,
                                                                       adaptive_p=0.0, flow_fraction=0.25, seed=0))):
        model.fit(target, iters)
        for k in (1, 2, 4):
            g = torch.Generator().manual_seed(11)
            rows.append({"model": label, "nfe": k,
                         "w2": fitted_gaussian_w2(model.sample(20000, k, generator=g), mean, cov)})
    fm = FlowMatching(2, hidden=64, depth=3, seed=0)
    fm.fit(target, iters)
    for solver, k in (("euler", 1), ("euler", 2), ("midpoint", 1), ("euler", 4), ("midpoint", 2), ("heun_pc", 3)):
        g = torch.Generator().manual_seed(11)
        rows.append({"model": f"flow matching + {solver}", "nfe": nfe(solver, k),
                     "w2": fitted_gaussian_w2(fm.sample(20000, num_steps=k, method=solver, generator=g), mean, cov)})
    for k in (1, 2, 4):
        flow = GaussianFlow(GaussianData(mean, cov), "linear")
        from logz.theory.flows import ode_solve, propagate_law
        w = float(propagate_law(ode_solve("euler", k), flow, flow.prior()).w2(flow.data.law))
        rows.append({"model": "exact velocity + euler (exact law)", "nfe": k, "w2": w})
    lines = [f"2-D Gaussian N((1, -0.5), diag(0.3, 0.6)); {iters} training iterations each; W2 of the "
             f"Gaussian fitted to 20000 samples (sampling error ~1e-2)"]
    lines += [f"{r['model']:<36} NFE {r['nfe']}: W2 {r['w2']:.3f}" for r in rows]
    dump("meanflow", "\n".join(lines) + f"\n[{time.time() - t0:.0f} s]", {**meta, "rows": rows})


if __name__ == "__main__":
    main()
