"""Write a 2-iteration checkpoint of every learned sampler (gmm9, tiny networks, seed 0) into
this folder. The files here were written by the code BEFORE the issue-18 refactor (commit
0d8b9b9, 2026-12-03, torch 2.13 CPU); ``tests/samplers/test_behaviour_preserved.py`` loads them
with the current code: the refactor changed no checkpoint fingerprint or module name.

    PYTHONPATH=. python results/behaviour/checkpoints/write.py
"""

import os

from logz import samplers, targets

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ["pis", "dds", "dgfs", "tb", "dgfs_lv", "adjoint_sampling"]


def config(name: str) -> dict:
    extra = {"paths_per_refresh": 8, "buffer_size": 32} if name == "adjoint_sampling" else {}
    return dict(hidden=8, layers=1, num_steps=4, batch_size=8, seed=0, **extra)


if __name__ == "__main__":
    for name in NAMES:
        s = samplers.get(name, targets.get("gmm9"), **config(name))
        s.fit(2, progress=False)
        s.save(os.path.join(HERE, f"{name}.pt"))
