"""``logz bench``: run a benchmark grid and make its report.

    logz bench --budget quick                                   # default grid, seeds 0 1 2
    logz bench --targets gmm9 funnel --samplers pis dgfs --seeds 3 --budget reference --out runs/ref
    logz bench --out runs/ref --report-only                     # re-make report.md / CSV / PNG
    logz bench --out runs/ref --recompute-metrics mode_coverage # metrics again, from saved samples
    logz bench --out runs/seq --compare results/reference       # side by side at equal iterations
    logz bench --list                                           # valid names
    logz calibrate --target funnel --sampler smc --seeds 50     # is the error bar calibrated?

Every finished cell is written at once to ``<out>/cells/<cell>.json`` (and appended to
``results.jsonl``); running the same command again skips finished cells, so an interrupted
bench resumes where it stopped. The report (``report.md``, ``results.csv``, PNG plots) is
re-made from the stored records at the end.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from logz.bench import budgets
from logz.bench.runner import DEFAULT_METRICS, DEFAULT_SAMPLERS, DEFAULT_TARGETS, metric_names
from logz._argtypes import positive_int as _positive_int


def add_subcommand(subparsers) -> None:
    """Add the ``bench`` parser to an argparse subparsers object."""
    p = subparsers.add_parser(
        "bench", help="run a benchmark grid (targets x samplers x seeds) and report it",
        description="Run every (target, sampler, seed) cell not yet finished in --out, then write "
                    "results.jsonl / results.csv, report.md and PNG plots there.")
    p.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS), metavar="NAME",
                   help=f"target names (default: {' '.join(DEFAULT_TARGETS)})")
    p.add_argument("--samplers", nargs="+", default=list(DEFAULT_SAMPLERS), metavar="NAME",
                   help=f"sampler names (default: {' '.join(DEFAULT_SAMPLERS)})")
    p.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds (default 3)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from here (default 0)")
    p.add_argument("--budget", default="quick", metavar="NAME",
                   help=f"one of {', '.join(budgets.names())} (default quick)")
    p.add_argument("--metrics", nargs="*", default=list(DEFAULT_METRICS), metavar="NAME",
                   help=f"sample metrics, of {', '.join(metric_names())} (default: {' '.join(DEFAULT_METRICS)})")
    p.add_argument("--out", default=None, help="output directory (default runs/bench/<budget>)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch intra-op threads")
    p.add_argument("--reference-file", default=None,
                   help="JSON of reference log Z records (python -m logz.bench.reference) for targets "
                        "without an exact log Z")
    p.add_argument("--rerun", action="store_true", help="run every cell again, even finished ones")
    p.add_argument("--report-only", action="store_true", help="only re-make the report from stored records")
    p.add_argument("--recompute-metrics", nargs="+", default=None, metavar="NAME",
                   help="recompute these metrics of the finished cells in --out (of --targets / "
                        "--samplers) from their saved samples, without training, then report")
    p.add_argument("--compare", nargs="+", default=None, metavar="DIR",
                   help="set the records of --out beside those of these result directories at equal "
                        "training iterations (mean |log Z error| over seeds per evaluation): writes "
                        "<out>/side_by_side.md and errors_vs_iterations_<target>.png, runs nothing")
    p.add_argument("--at", nargs="+", type=_positive_int, default=None, metavar="ITERATION",
                   help="with --compare: the iterations to tabulate (default: those two or more rows share)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list valid target, sampler, budget and metric names")
    p.set_defaults(func=handler)
    from logz.bench.calibrate import add_subcommand as add_calibrate

    add_calibrate(subparsers)


def _list() -> int:
    from logz import samplers, targets

    print(f"targets:  {' '.join(targets.names())}")
    print(f"samplers: {' '.join(samplers.names())}")
    print(f"budgets:  {' '.join(budgets.names())}")
    print(f"metrics:  {' '.join(metric_names())}")
    return 0


def _command(args, out: str) -> str:
    """The command line that reproduces this run (recorded in every cell)."""
    parts = ["logz", "bench", "--targets", *args.targets, "--samplers", *args.samplers,
             "--seeds", str(args.seeds), "--first-seed", str(args.first_seed), "--budget", args.budget,
             "--metrics", *args.metrics, "--out", out]
    for flag, value in (("--device", args.device), ("--threads", args.threads),
                        ("--reference-file", args.reference_file)):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _compare(args) -> int:
    """``--compare``: the side-by-side table and plots of --out and the given directories."""
    from logz.bench.compare import write_comparison

    out = args.out or f"runs/bench/{args.budget}"
    dirs = ([out] if (Path(out) / "cells").is_dir() else []) + [d for d in args.compare if d != out]
    try:
        paths = write_comparison(dirs, out, iterations=args.at, plots=not args.no_plots)
    except ValueError as err:
        print(f"logz bench: error: {err}", file=sys.stderr)
        return 2
    print(f"side by side: {paths['markdown']} ({paths['records']} records from {', '.join(dirs)})")
    for p in paths["plots"]:
        print(f"plot:    {p}")
    return 0


def handler(args) -> int:
    """Run the grid (unless --report-only / --recompute-metrics), then write the report; 2 on bad input."""
    from logz.bench.report import write_report
    from logz.bench.runner import grid, run_grid

    if args.list:
        return _list()
    if args.compare:
        return _compare(args)
    try:
        budget = budgets.get(args.budget)
        out = args.out or f"runs/bench/{budget.name}"
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        cells = {c.id for c in grid(args.targets, args.samplers, seeds)}
        if args.recompute_metrics:
            from logz.bench.recompute import recompute_metrics

            done = recompute_metrics(out, args.recompute_metrics, targets=args.targets, samplers=args.samplers)
            print(f"recomputed {', '.join(args.recompute_metrics)} for {len(done)} cell(s) in {out}")
        elif not args.report_only:
            command = _command(args, out)
            run_grid(args.targets, args.samplers, seeds, budget, out, device=args.device,
                     metrics=args.metrics, reference_file=args.reference_file, rerun=args.rerun,
                     threads=args.threads, progress=not args.quiet, command=command)
        elif not (Path(out) / "cells").is_dir():
            raise ValueError(f"no stored records in {out!r} to report")
    except ValueError as err:
        print(f"logz bench: error: {err}", file=sys.stderr)
        return 2
    paths = write_report(out, plots=not args.no_plots, cells=cells)
    print(f"report:  {paths['markdown']}\nresults: {paths['csv']} ({out}/results.jsonl)")
    for p in paths["plots"]:
        print(f"plot:    {p}")
    return 0


__all__ = ["add_subcommand", "handler"]
