"""Modular MeanFlow (gradient modulation lambda, its warm-up) and Decoupled MeanFlow against plain
MeanFlow, trained from scratch on the 2-D Gaussian of run.py's meanflow part.

    OMP_NUM_THREADS=1 python results/fewstep_flows/meanflow_variants.py [--test-config]

Default: the run.py set-up (hidden 64, flow_fraction 0.5, 1500 iterations, W2 of the Gaussian
fitted to 20000 samples, sampling error ~1e-2). ``--test-config``: the smaller set-up of
tests/finetune/test_meanflow_variants.py (hidden 32, depth 2, 300 iterations, 4000 samples), whose
numbers the test's bounds derive from. Writes meanflow_variants[_test].{txt,json}.
"""

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone

import torch

from logz.finetune import FlowMatching, GaussianMixtureVelocity, fitted_gaussian_w2
from logz.finetune.meanflow import DecoupledMLP, MeanFlow

HERE = os.path.dirname(os.path.abspath(__file__))
TEST = "--test-config" in sys.argv
torch.set_num_threads(1)
target = GaussianMixtureVelocity.gaussian([1.0, -0.5], [0.3, 0.6])
mean, cov = target.mean_and_cov()
hidden, depth, iters, n = (32, 2, 300, 4000) if TEST else (64, 3, 1500, 20000)
common = dict(hidden=hidden, depth=depth, flow_fraction=0.5, seed=0)


def decoupled(pretrain: int):
    """Decoupled MeanFlow: ``pretrain`` flow-matching iterations on the same net, then MeanFlow."""
    torch.manual_seed(0)
    net = DecoupledMLP(2, hidden, depth, decoder_depth=1)
    if pretrain:
        FlowMatching(2, net=net, seed=0).fit(target, pretrain, progress=False)
    return MeanFlow(2, net=net, flow_fraction=0.5, seed=0), iters - pretrain


models = {
    "meanflow (lambda 0)": lambda: (MeanFlow(2, **common), iters),
    "modular meanflow (lambda 0.5)": lambda: (MeanFlow(2, grad_modulation=0.5, **common), iters),
    "modular meanflow (lambda 1)": lambda: (MeanFlow(2, grad_modulation=1.0, **common), iters),
    "modular meanflow (lambda 0->1, warm-up half)": lambda: (
        MeanFlow(2, grad_modulation=1.0, modulation_warmup=iters // 2, **common), iters),
    "decoupled meanflow (scratch)": lambda: decoupled(0),
    "decoupled meanflow (half flow matching first)": lambda: decoupled(iters // 2),
}
rows, t0 = [], time.time()
for label, make in models.items():
    model, k_iters = make()
    t1 = time.time()
    model.fit(target, k_iters)
    for k in (1, 2):
        g = torch.Generator().manual_seed(11)
        rows.append({"model": label, "nfe": k, "w2": fitted_gaussian_w2(model.sample(n, k, generator=g), mean, cov),
                     "fit_s": round(time.time() - t1, 1)})
lines = [f"2-D Gaussian N((1, -0.5), diag(0.3, 0.6)); from scratch, hidden {hidden}, depth {depth}, {iters} "
         f"iterations in all; W2 of the Gaussian fitted to {n} samples"]
lines += [f"{r['model']:<46} NFE {r['nfe']}: W2 {r['w2']:.3f}" for r in rows]
meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus (shared)", "torch": torch.__version__,
        "command": "python results/fewstep_flows/meanflow_variants.py " + " ".join(sys.argv[1:])}
name = "meanflow_variants_test" if TEST else "meanflow_variants"
with open(os.path.join(HERE, name + ".txt"), "w") as f:
    f.write("\n".join(lines) + f"\n[{time.time() - t0:.0f} s]\n")
with open(os.path.join(HERE, name + ".json"), "w") as f:
    json.dump({**meta, "rows": rows}, f, indent=1)
print("\n".join(lines), f"[{time.time() - t0:.0f} s]")
