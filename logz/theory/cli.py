"""``logz theory``: the PF-ODE convergence check on the command line.

    logz theory --schedule vp --dim 10
    logz theory --schedule ve --dims 1 4 16 --steps 32 64 128 --score-error 0 0.1 --json
    logz theory --schedule vp-linear --method rk4 --steps 16 32 64 --out out/theory
    logz theory --solvers --dim 8 --bespoke 2 4        # flow-model solvers x interpolants, W2 vs NFE

Prints the table (or one JSON document with --json) and writes the PNG plots to --out
(skip them with --no-plots). The lead registers this module in ``logz.cli._ROOM_CLIS``.
"""

from __future__ import annotations

import json
import sys

from logz.theory.processes import process_names
from logz.theory.sampler import METHODS
from logz._argtypes import positive_int as _positive_int, positive_float as _positive_float, nonnegative_float as _nonnegative_float


_PF_ODE_STEPS = [8, 16, 32, 64, 128, 256]


def add_subcommand(subparsers) -> None:
    """Add the ``theory`` parser to an argparse subparsers object."""
    p = subparsers.add_parser(
        "theory", help="check PF-ODE W2 bounds (Gao & Zhu 2024) against exact Gaussian measurements",
        description="Measured W2 of the discretized PF-ODE sampler on Gaussian data (exact, no "
                    "sampling) against the W2 bound, over step counts K, dimensions d and score "
                    "errors M; fitted log-log slopes give the solver's order.")
    p.add_argument("--schedule", default="vp", choices=process_names(), help="forward process (default vp)")
    p.add_argument("--dim", type=_positive_int, default=10, help="data dimension d (default 10)")
    p.add_argument("--dims", type=_positive_int, nargs="+", default=None,
                   help="several dimensions (overrides --dim)")
    p.add_argument("--T", type=_positive_float, default=None, help="horizon T (default: the schedule's)")
    p.add_argument("--steps", type=_positive_int, nargs="+", default=_PF_ODE_STEPS,
                   help="step counts K (default 8 16 ... 256)")
    p.add_argument("--score-error", type=_nonnegative_float, nargs="+", default=[0.0], metavar="M",
                   help="score error(s) M (default 0)")
    p.add_argument("--perturbation", choices=["bias", "lipschitz"], default="bias",
                   help="shape of the score error (default bias)")
    p.add_argument("--method", choices=list(METHODS), default="exp",
                   help="exp (exponential integrator, the theorem's), euler, heun, midpoint, rk4")
    p.add_argument("--prior", choices=["gaussian", "stationary", "exact"], default="gaussian",
                   help="initial law: N(0, sigma_T^2 I) (default), stationary (VP), exact p_T")
    p.add_argument("--l1", choices=["local", "global"], default="local",
                   help="time-Lipschitz constant in the bound: local modulus or the paper's global L1")
    p.add_argument("--seed", type=int, default=0, help="seed of the random data covariance")
    p.add_argument("--out", default="out/theory", help="directory for the PNG plots (default out/theory)")
    p.add_argument("--no-plots", action="store_true", help="do not write plots")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    g = p.add_argument_group("flow-model solvers (--solvers)")
    g.add_argument("--solvers", action="store_true",
                   help="instead: W2 vs NFE of every ODE solver x interpolant (linear, gvp, vp) on "
                        "Gaussian data, exact; --steps default 1 2 4 ... 64; plot w2_vs_nfe.png")
    g.add_argument("--interpolants", nargs="+", default=["linear", "gvp", "vp"],
                   choices=["linear", "gvp", "vp"], help="paths (default all three)")
    g.add_argument("--eig-min", type=_positive_float, default=0.05,
                   help="smallest data covariance eigenvalue (largest 1; default 0.05)")
    g.add_argument("--bespoke", type=_positive_int, nargs="*", default=[], metavar="N",
                   help="also train bespoke RK2 solvers with N steps (2N NFE) on each path")
    p.set_defaults(func=handler, _theory_parser=p)


def solvers_handler(args) -> int:
    """``logz theory --solvers``: the W2-vs-NFE table and plot of ``logz.theory.flows``."""
    from logz.theory.flows import solver_study

    steps = [1, 2, 4, 8, 16, 32, 64] if args.steps == _PF_ODE_STEPS else args.steps
    dim = args.dims[0] if args.dims else args.dim
    if not args.eig_min <= 1.0:
        raise ValueError(f"--eig-min must be <= 1 (the largest eigenvalue), got {args.eig_min}")
    study = solver_study(interpolants=args.interpolants, steps=steps, dim=dim,
                         eig_range=(args.eig_min, 1.0), seed=args.seed, bespoke_steps=args.bespoke)
    plots = [] if args.no_plots else study.plot(args.out)
    if args.json:
        print(json.dumps({**study.to_dict(), "plots": plots}))
    else:
        print(study.table())
        for path in plots:
            print(f"wrote {path}")
    return 0


def handler(args) -> int:
    """Run ``check_pf_ode`` with the parsed arguments; print; write plots. Returns 0."""
    from logz.theory.check import check_pf_ode

    try:
        if getattr(args, "solvers", False):
            return solvers_handler(args)
        result = check_pf_ode(args.schedule, dim=args.dim, dims=args.dims, T=args.T, steps=args.steps,
                              method=args.method, score_errors=args.score_error,
                              perturbation=args.perturbation, prior=args.prior, l1=args.l1,
                              seed=args.seed)
    except ValueError as err:   # a broken assumption: a usage error, not a traceback
        parser = getattr(args, "_theory_parser", None)
        if parser is not None:
            parser.error(str(err))
        print(f"logz theory: error: {err}", file=sys.stderr)
        return 2
    plots = [] if args.no_plots else result.plot(args.out)
    if args.json:
        print(json.dumps({**result.to_dict(), "plots": plots}))
    else:
        print(result.table())
        for path in plots:
            print(f"wrote {path}")
    return 0
