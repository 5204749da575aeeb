"""The ``logz`` command line: ``logz run | targets | samplers`` plus room subcommands.

A room adds a subcommand by providing ``logz/<room>/cli.py`` with
``add_subcommand(subparsers) -> None`` that calls ``subparsers.add_parser(...)`` and
``set_defaults(func=handler)`` where ``handler(args) -> int``; list the module in
``_ROOM_CLIS`` below.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from typing import Optional, Sequence

_ROOM_CLIS: list[str] = ["logz.theory.cli", "logz.finetune.cli", "logz.bench.cli"]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with usage (status 2) on any bad argument, never a traceback."""


def _cmd_targets(args) -> int:
    from logz import targets

    import warnings

    for name in targets.names():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = targets.get(name)
        except (OSError, ValueError) as err:  # data-backed targets without their files
            print(f"{name:12s} unavailable: {str(err).splitlines()[0][:100]}")
            continue
        log_z = "unknown" if getattr(t, "log_Z", None) is None else f"{t.log_Z:.4f}"
        print(f"{name:12s} dim={t.dim:<5d} log Z = {log_z}")
    return 0


def _cmd_samplers(args) -> int:
    from logz import samplers

    for name in samplers.names():
        print(name)
    return 0


def _parse_config(items: Sequence[str]) -> dict:
    """--config key=value pairs; values parsed as JSON when possible (numbers, bools)."""
    config = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--config expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return config


def _cmd_run(args) -> int:
    """Train (learned samplers) and estimate. Under ``torchrun`` every rank runs this; the
    batch is split over the ranks (``logz.distributed``) and rank 0 prints and saves."""
    import torch

    from logz import distributed, samplers, targets
    from logz.samplers.training import TrainingError

    try:
        shard = distributed.init_from_env()
    except (RuntimeError, ValueError) as err:
        print(f"logz run: error: cannot join the torchrun process group: {err}", file=sys.stderr)
        return 2
    try:
        return _run(args, shard, torch, samplers, targets, TrainingError)
    finally:
        if shard.active and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _smc_check(args, target, est, torch) -> dict:
    """A quick independent SMC estimate (default settings, the same seed and sample count) and
    the difference from ``est`` in combined standard errors."""
    from logz import samplers

    # seed + 1: independent of an SMC run being checked
    smc = samplers.get("smc", target, seed=args.seed + 1).estimate_log_z(args.num_samples)
    diff = est.log_z - smc.log_z
    se = math.hypot(est.stderr, smc.stderr)
    z = diff / se if se > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return {"log_z": smc.log_z, "stderr": smc.stderr, "difference": diff, "z": z}


def _run(args, shard, torch, samplers, targets, TrainingError) -> int:
    from logz.distributed import default_device

    say = print if shard.is_main else (lambda *a, **k: None)
    try:
        target = targets.get(args.target)
        config = _parse_config(args.config)
        config.setdefault("seed", args.seed)
        device = args.device
        if shard.active and (device is None or device == "cuda"):
            device = str(default_device(shard))  # one GPU per rank (LOCAL_RANK)
        if device:
            config["device"] = device
        sampler = samplers.get(args.sampler, target, **config)
    except (ValueError, TypeError) as err:
        print(f"logz run: error: {err}", file=sys.stderr)
        return 2
    progress = not args.json and not args.quiet and shard.is_main
    start = time.perf_counter()
    if args.resume:
        if not hasattr(sampler, "load"):
            print(f"logz run: error: sampler {args.sampler!r} has no checkpoints to resume", file=sys.stderr)
            return 2
        try:
            sampler.load(args.resume)
        except (ValueError, OSError, RuntimeError) as err:
            print(f"logz run: error: cannot resume from {args.resume!r}: {err}", file=sys.stderr)
            return 2
    try:
        if args.iterations and hasattr(sampler, "fit"):
            sampler.fit(args.iterations, progress=progress)
        if args.save:
            if not hasattr(sampler, "save"):
                print(f"logz run: error: sampler {args.sampler!r} has no state to save", file=sys.stderr)
                return 2
            sampler.save(args.save)
        est = sampler.estimate_log_z(args.num_samples, progress=progress)
    except (TrainingError, ValueError, RuntimeError) as err:
        print(f"logz run: error: {err}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    exact = getattr(target, "log_Z", None)
    record = {"target": args.target, "sampler": args.sampler, "seed": args.seed,
              "device": str(config.get("device", "cpu")), "world_size": shard.world_size, **est.to_dict(),
              "exact_log_z": exact, "error": None if exact is None else est.log_z - exact,
              "wall_time_s": wall, "torch": torch.__version__}
    try:
        check = _smc_check(args, target, est, torch) if args.check and shard.is_main else None
    except (ValueError, RuntimeError) as err:
        print(f"logz run: error: the --check SMC run failed: {err}", file=sys.stderr)
        return 1
    if check is not None:
        record["check"] = check
    if args.json:
        say(json.dumps(record))
        return 0
    say(f"target   {args.target} (dim {target.dim})")
    ranks = f", {shard.world_size} processes" if shard.active else ""
    say(f"sampler  {args.sampler} (seed {args.seed}, {record['device']}{ranks})")
    say(f"log Z    {est.log_z:.4f} ± {est.stderr:.4f}  (importance-weighted, ± one standard error)")
    if est.elbo is not None:
        say(f"ELBO     {est.elbo:.4f}")
    if est.eubo is not None:
        say(f"EUBO     {est.eubo:.4f}")
    if est.ess is not None:
        say(f"ESS      {est.ess:.3f}  (normalized, n = {est.num_samples})")
    if getattr(est, "pareto_k", None) is not None:
        say(f"Pareto k {est.pareto_k:.2f}  (< 0.7: the weights' tail allows an error bar)")
    if getattr(est, "reliable", True):
        say("flag     reliable (no diagnostic contradicts the error bar)")
    else:
        say(f"flag     UNRELIABLE: {est.reason}")
    if exact is not None:
        err = est.log_z - exact
        z = err / est.stderr if est.stderr > 0 else math.copysign(math.inf, err) if err else 0.0
        say(f"exact    {exact:.4f}   error {err:+.4f}  ({z:+.2f} standard errors)")
        if abs(z) > 3:
            say("         the error bar does not cover the exact value: not converged or modes missed")
    if check is not None:
        say(f"check    SMC {check['log_z']:.4f} ± {check['stderr']:.4f}: {args.sampler} differs by "
            f"{check['difference']:+.4f} ({check['z']:+.2f} combined standard errors)"
            + ("  -- they disagree" if abs(check["z"]) > 3 else ""))
    say(f"time     {wall:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="logz", description="Sample unnormalized densities and estimate log Z.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="estimate log Z of a target with a sampler")
    run.add_argument("--target", required=True, help="target name (see `logz targets`)")
    run.add_argument("--sampler", required=True, help="sampler name (see `logz samplers`)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda")
    run.add_argument("--num-samples", type=int, default=2000,
                     help="samples/particles for the estimate (default 2000)")
    run.add_argument("--iterations", type=int, default=0, help="training iterations (learned samplers)")
    run.add_argument("--config", nargs="*", metavar="KEY=VALUE", help="sampler configuration")
    run.add_argument("--save", default=None, help="write a checkpoint after training")
    run.add_argument("--resume", default=None, help="load a checkpoint before training")
    run.add_argument("--json", action="store_true", help="print one JSON record")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--check", action="store_true",
                     help="also run a quick SMC (default settings) and report the disagreement in "
                          "standard errors")
    run.set_defaults(func=_cmd_run)

    sub.add_parser("targets", help="list built-in targets").set_defaults(func=_cmd_targets)
    sub.add_parser("samplers", help="list samplers").set_defaults(func=_cmd_samplers)
    for mod in _ROOM_CLIS:
        importlib.import_module(mod).add_subcommand(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.num_samples < 2:
            parser.error("--num-samples must be >= 2")
        if args.iterations < 0:
            parser.error("--iterations must be >= 0")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
