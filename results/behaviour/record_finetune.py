"""Record short fixed-seed runs of every fine-tuner and of flow-matching pretraining.

The record (``finetune_baseline.json`` beside this script) was written with the training loops
the fine-tuners had before they moved onto ``logz.training.Trainer``; the test
``tests/finetune/test_finetune_behaviour.py`` re-runs the same configurations (``RUNS``
below, through ``run``) and compares with it to float round-off, so a change of
the updates or of the random-number consumption shows up there.

Each run records the per-iteration objective value (``loss``: for the continuous adjoint the
SOC objective estimate, for the others the loss that is backpropagated), the mean reward of
each training batch (``reward``), and a checksum of the trained parameters (float64 sum and
sum of squares).

    OMP_NUM_THREADS=1 python results/behaviour/record_finetune.py   # rewrites the JSON
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys

import torch

from logz.finetune import (DRaFT, AdjointMatching, ContinuousAdjoint, FlowMatching,
                           GaussianMixtureVelocity, NonMemorylessAdjointMatching, QuadraticReward)

HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = os.path.join(HERE, "finetune_baseline.json")
ITERATIONS = 30


def _problem():
    base = GaussianMixtureVelocity([0.5, 0.5], [[-1.0, 0.5], [1.5, -0.5]], 0.4)
    return base, QuadraticReward(2, b=[0.8, -0.4])


def _fm(data: str) -> FlowMatching:
    base, _ = _problem()
    fm = FlowMatching(hidden=32, depth=2, lr=3e-3, batch_size=64, seed=3)
    if data == "target":
        fm.fit(base, iterations=ITERATIONS)
    else:
        x = base.sample(500, generator=torch.Generator().manual_seed(11))
        fm.fit(x, iterations=ITERATIONS)
    return fm


def _finetuner(name: str):
    base, reward = _problem()
    common = dict(num_steps=10, batch_size=32, lr=2e-3, seed=5, hidden=32, depth=2)
    if name == "adjoint_matching":
        return AdjointMatching(base, reward, time_subsample=(3, 4), loss_clip=50.0, grad_clip=1.0, **common)
    if name == "adjoint_matching_fm_base":
        fm = FlowMatching(hidden=32, depth=2, lr=3e-3, batch_size=64, seed=3)
        fm.fit(base, iterations=20)
        return AdjointMatching(fm, reward, betas=(0.95, 0.999), **common)
    if name == "non_memoryless_adjoint_matching":
        return NonMemorylessAdjointMatching(base, reward, **common)
    if name == "continuous_adjoint":
        return ContinuousAdjoint(base, reward, reward_scale=0.7, **common)
    if name == "draft":
        return DRaFT(base, reward, backprop_steps=2, **common)
    raise ValueError(name)


RUNS = ["flow_matching_tensor", "flow_matching_target", "adjoint_matching", "adjoint_matching_fm_base",
        "non_memoryless_adjoint_matching", "continuous_adjoint", "draft"]


def _checksum(module: torch.nn.Module) -> list[float]:
    flat = torch.cat([p.detach().double().reshape(-1) for p in module.parameters() if p.requires_grad])
    return [float(flat.sum()), float(flat.pow(2).sum())]


def _series(history, old: str, new: str, metric: str = "") -> list[float]:
    """A per-iteration series from the pre-Trainer histories (``losses``/``rewards``) or the
    shared ``logz.training.History`` (``loss``, ``metrics[...]``)."""
    if hasattr(history, old):
        return [float(v) for v in getattr(history, old)]
    if metric:
        return [float(v) for v in history.metrics[metric]]
    return [float(v) for v in getattr(history, new)]


def run(name: str) -> dict:
    """Train the run ``name`` from scratch and return what the record holds for it."""
    torch.manual_seed(0)
    if name.startswith("flow_matching"):
        fm = _fm(name.rsplit("_", 1)[1])
        return {"loss": _series(fm.history, "losses", "loss"), "checksum": _checksum(fm.velocity)}
    ft = _finetuner(name)
    ft.fit(ITERATIONS)
    metric = "soc_objective" if name == "continuous_adjoint" else ""
    return {"loss": _series(ft.history, "losses", "loss", metric),
            "reward": _series(ft.history, "rewards", "", "reward"),
            "checksum": _checksum(ft.model)}


def main() -> None:
    torch.set_num_threads(1)
    record = {
        "command": "OMP_NUM_THREADS=1 python results/behaviour/record_finetune.py",
        "script": "results/behaviour/record_finetune.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "iterations": ITERATIONS,
        "runs": {name: run(name) for name in RUNS},
    }
    with open(RECORD, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {RECORD}", file=sys.stderr)


if __name__ == "__main__":
    main()
