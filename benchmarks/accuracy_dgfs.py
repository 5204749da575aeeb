"""Accuracy of DGFS beside PIS and DDS: |log Z error| of the FINAL model, mean ± std over seeds.

A thin wrapper over the benchmark runner (``logz bench``, ``logz.bench.runner``). Default
grid = the DGFS reference budget: 9-mode GMM, Funnel-10, Many-Well-32; batch 256, N = 100
steps, FourierMLP 2 x 64, 5000 iterations, 2000 evaluation samples, seeds 0 1 2; DGFS with
SubTB (lambda 2), lr 1e-4 (drift) / 1e-3 (flow), sigma 1, dt 0.01 (0.05 on the GMM, as the
reference runs its MoG), scaled by 100 / N when N changes; PIS / DDS with their logz
defaults. On Many-Well the ``mode_coverage`` metric is the mean over the 16 pairs of
|fraction in the right well - exact weight|. Options below change the budget (the
records then say budget ``custom``). Resumable: finished cells are not re-run.

    python benchmarks/accuracy_dgfs.py                       # the full grid (many hours)
    python benchmarks/accuracy_dgfs.py --iterations 100 --batch-size 64 --num-steps 50 --seeds 0

Writes ``<out>/results.jsonl``, ``results.csv``, ``report.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import sys

from logz.bench import budgets
from logz.bench.report import write_report
from logz.bench.runner import run_grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samplers", nargs="+", default=["dgfs", "pis", "dds"])
    p.add_argument("--targets", nargs="+", default=["gmm9", "funnel", "manywell"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-steps", type=int, default=100)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--dgfs-loss", default="subtb", choices=["subtb", "tb", "db", "vargrad"])
    p.add_argument("--lr-policy", type=float, default=1e-4)
    p.add_argument("--lr-flow", type=float, default=1e-3)
    p.add_argument("--dt", type=float, default=None, help="DGFS step at N = 100 (default: per target)")
    p.add_argument("--eval-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/accuracy_dgfs")
    args = p.parse_args(argv)
    ref = budgets.get("reference")
    budget = ref.replace(iterations=args.iterations, batch_size=args.batch_size, num_steps=args.num_steps,
                         hidden=args.hidden, layers=args.layers, eval_samples=args.eval_samples,
                         gfn_lr=(args.lr_policy, args.lr_flow),
                         gfn_dt=ref.gfn_dt if args.dt is None else (args.dt, args.dt),
                         overrides={**ref.overrides, "dgfs": {"loss": args.dgfs_loss}})
    if budget.replace(overrides=ref.overrides) != ref or args.dgfs_loss != "subtb":
        budget = budget.replace(name="custom", note="NOT the reference budget (changed by command-line options)")
    run_grid(args.targets, args.samplers, args.seeds, budget, args.out, threads=args.threads,
             command="python benchmarks/accuracy_dgfs.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(write_report(args.out)["markdown"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
