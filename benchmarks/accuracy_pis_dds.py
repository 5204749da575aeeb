"""Accuracy of PIS and DDS: |log Z error| of the FINAL model, mean ± std over seeds.

A thin wrapper over the benchmark runner (``logz bench``, ``logz.bench.runner``): the
default grid is the reference budget (9-mode GMM, Funnel-10, Many-Well-32; batch 256,
100 steps, 2x64 networks, 5000 iterations, 2000 evaluation samples, seeds 0 1 2); the
options below change that budget (the records say so: budget ``custom``). The full grid
takes hours on a 2-core CPU; it is resumable (finished cells are not re-run).

    python benchmarks/accuracy_pis_dds.py                      # the full grid
    python benchmarks/accuracy_pis_dds.py --iterations 60 --batch-size 128 --num-steps 50

Writes ``<out>/results.jsonl``, ``results.csv``, ``report.md`` (a table per target with the
published figures of the DGFS paper beside) and PNG plots.
"""

from __future__ import annotations

import argparse
import sys

from logz.bench import budgets
from logz.bench.report import write_report
from logz.bench.runner import run_grid


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samplers", nargs="+", default=["pis", "dds"])
    p.add_argument("--targets", nargs="+", default=["gmm9", "funnel", "manywell"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-steps", type=int, default=100)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--loss", default="kl", choices=["kl", "vargrad"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/accuracy_pis_dds")
    args = p.parse_args(argv)
    ref = budgets.get("reference")
    budget = ref.replace(iterations=args.iterations, batch_size=args.batch_size, num_steps=args.num_steps,
                         hidden=args.hidden, layers=args.layers, eval_samples=args.eval_samples,
                         overrides={**ref.overrides, **{s: {"loss": args.loss, "lr": args.lr} for s in ("pis", "dds")}})
    if budget.replace(overrides=ref.overrides) != ref or (args.loss, args.lr) != ("kl", 1e-3):
        budget = budget.replace(name="custom", note="NOT the reference budget (reduced by command-line options)")
    run_grid(args.targets, args.samplers, args.seeds, budget, args.out, threads=args.threads,
             command="python benchmarks/accuracy_pis_dds.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(write_report(args.out)["markdown"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
