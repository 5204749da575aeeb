"""``logz finetune``: the fine-tuning subcommand (registered by ``logz.cli`` via ``_ROOM_CLIS``)."""

from __future__ import annotations

import json


def add_subcommand(subparsers) -> None:
    """Add the ``finetune`` parser to ``subparsers``."""
    p = subparsers.add_parser(
        "finetune", help="reward fine-tuning of flow models (Adjoint Matching)",
        description="Reward fine-tuning of flow-matching models by stochastic optimal control. "
                    "--demo tilts a 2-D Gaussian-mixture flow toward a reward and plots base, "
                    "fine-tuned and exact tilted densities.")
    p.add_argument("--demo", action="store_true", help="run the 2-D demo")
    p.add_argument("--out", default="finetune_demo", help="output directory for the figure and JSON")
    p.add_argument("--reward", choices=["linear", "quadratic"], default="linear")
    p.add_argument("--fm-iterations", type=int, default=1500, help="flow-matching training steps")
    p.add_argument("--iterations", type=int, default=400, help="Adjoint Matching steps")
    p.add_argument("--num-steps", type=int, default=40, help="SDE steps K per trajectory")
    p.add_argument("--samples", type=int, default=20000, help="samples drawn for the figure")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=handler)


def handler(args) -> int:
    if not args.demo:
        print("logz finetune: only --demo is available from the command line; use the Python API "
              "(logz.finetune.AdjointMatching) for your own models")
        return 2
    for name in ("fm_iterations", "iterations", "num_steps", "samples"):
        if getattr(args, name) < 1 or (name == "num_steps" and args.num_steps < 2):
            print(f"logz finetune: --{name.replace('_', '-')} must be positive (num-steps >= 2)")
            return 2
    from logz.finetune.demo import result_dict, run_demo

    res = run_demo(out_dir=args.out, reward=args.reward, fm_iterations=args.fm_iterations,
                   am_iterations=args.iterations, num_steps=args.num_steps, num_samples=args.samples,
                   seed=args.seed, plot=not args.no_plot, progress=not args.quiet)
    out = result_dict(res)
    import os
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "finetune_demo.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps(out, indent=2))
    return 0
