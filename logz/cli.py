"""The ``logz`` command line: ``logz run | targets | samplers`` plus room subcommands.

A room adds a subcommand by providing ``logz/<room>/cli.py`` with
``add_subcommand(subparsers) -> None`` that calls ``subparsers.add_parser(...)`` and
``set_defaults(func=handler)`` where ``handler(args) -> int``; list the module in
``_ROOM_CLIS`` below.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import sys
import time
from typing import Optional, Sequence

_ROOM_CLIS: list[str] = ["logz.theory.cli", "logz.finetune.cli", "logz.bench.cli"]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with usage (status 2) on any bad argument, never a traceback."""


DEFAULT_ITERATIONS = 1000
"""Training iterations of a learned sampler run without ``--iterations`` (and without
``--resume``): enough to move a default network well away from its initialisation on the
built-in 2-10-D targets (a few minutes on one CPU core); stated when it is used."""

SMALL_MACHINE_CORES = 4


def default_threads() -> int:
    """torch intra-op threads for ``logz run`` without ``--threads``: 1 on a machine with at
    most ``SMALL_MACHINE_CORES`` cores, else half the cores (at most 8). On the shared 2-core
    machine 20 PIS iterations took 10 s with one thread and 159 s with torch's default
    (issue 21; ``results/own_model/threads.md`` has this machine's measurement)."""
    cores = os.cpu_count() or 1
    return 1 if cores <= SMALL_MACHINE_CORES else min(8, cores // 2)


class UserError(ValueError):
    """A problem with the command line or the environment: one line, exit status 2."""


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    if isinstance(err, KeyError) and text.startswith("'"):
        text = text.strip("'")
    first = text.splitlines()[0] if text else ""
    return first or type(err).__name__


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

    rows = [(e.name, e.kind, e.variant_of or "", e.description) for e in map(samplers.entry, samplers.names())]
    print(f"{'name':18s} {'kind':9s} {'variant of':10s}  description")
    for name, kind, variant, description in rows:
        print(f"{name:18s} {kind:9s} {variant:10s}  {description}")
    return 0


def _parse_config(items: Sequence[str]) -> dict:
    """--config key=value pairs; values parsed as JSON when possible (numbers, bools). A key
    ``group.field`` (``network.hidden=32``, ``optimiser.lr=3e-4``) sets a field of one of the
    sampler's configuration groups (``logz.samplers.config``)."""
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


_DTYPES = {"float32": "float32", "float": "float32", "torch.float32": "float32",
           "float64": "float64", "double": "float64", "torch.float64": "float64"}


def _constructor_parameters(factory) -> dict[str, inspect.Parameter]:
    """Keyword parameters a sampler factory accepts: its own, those of the classes its
    ``**config`` is forwarded to (base classes), and, for a function factory, those of the
    sampler class it builds. Empty when unknown."""
    classes = []
    if inspect.isclass(factory):
        classes = [factory]
    elif callable(factory):
        code, glb = getattr(factory, "__code__", None), getattr(factory, "__globals__", {})
        classes = [glb[n] for n in (code.co_names if code else ()) if inspect.isclass(glb.get(n))]
    params: dict[str, inspect.Parameter] = {}
    for cls in classes[:1]:
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for name, p in list(inspect.signature(init).parameters.items())[1:]:
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name != "target":
                    params.setdefault(name, p)
    return params


def _group_parameters() -> dict[str, inspect.Parameter]:
    """The learned samplers' configuration-group fields as parameters, under their flat
    name (``hidden``) and their dotted one (``network.hidden``)."""
    import dataclasses

    from logz.samplers.config import GROUPS

    params: dict[str, inspect.Parameter] = {}
    for group_name, cls in GROUPS.items():
        for f in dataclasses.fields(cls):
            p = inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
            params.setdefault(f.name, p)
            params[f"{group_name}.{f.name}"] = p
    return params


def _expected_kind(p: inspect.Parameter) -> Optional[str]:
    """'int', 'float', 'bool' or 'str' from a parameter's default (or its annotation)."""
    default = p.default
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    ann = str(p.annotation) if p.annotation is not inspect.Parameter.empty else ""
    if default is None and ann.startswith("Optional[") and "," not in ann and "Union" not in ann:
        inner = ann[len("Optional["):-1]
        return inner if inner in ("int", "float", "bool", "str") else None
    return None


def _checked_config(sampler: str, config: dict) -> dict:
    """--config values checked against the sampler's constructor: a value of the wrong type
    is a ``UserError`` naming the key and the expected type; ``dtype`` names become dtypes."""
    from logz import samplers

    entry = samplers.entry(sampler) if sampler in samplers.names() else None
    params = _constructor_parameters(entry.resolve()) if entry is not None else {}
    if entry is not None and entry.kind == "learned":
        params = {**_group_parameters(), **params}
    out = dict(config)
    for key, value in config.items():
        if key in ("dtype", "placement.dtype"):
            import torch

            name = _DTYPES.get(str(value).lower())
            if name is None:
                raise UserError(f"--config dtype={value}: expected float32 or float64")
            out[key] = getattr(torch, name)
            continue
        p = params.get(key)
        kind = _expected_kind(p) if p is not None else None
        if kind is None or (value is None and p.default is None):
            continue
        ok = {"bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str)}[kind]
        if kind == "float" and ok and not math.isfinite(value):
            ok = False
        if not ok:
            what = {"bool": "true or false", "int": "an integer", "float": "a finite number",
                    "str": "a string"}[kind]
            raise UserError(f"--config {key}={json.dumps(value) if not isinstance(value, str) else value}: "
                            f"{sampler} expects {what} for {key!r} (default {p.default!r})")
    return out


def _check_device(device: Optional[str]) -> None:
    """An unknown or unavailable ``--device`` is a ``UserError`` before anything is built."""
    if not device:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"--device {device}: not a torch device ({_one_line(err)}); use cpu or cuda") from None
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise UserError(f"--device {device}: this torch ({torch.__version__}) is built without CUDA; "
                            f"use --device cpu, or install a CUDA build of torch")
        if not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count():
            raise UserError(f"--device {device}: no such CUDA device is visible "
                            f"({torch.cuda.device_count()} available); use --device cpu")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UserError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {device}: unsupported device type {dev.type!r}; use cpu or cuda")


def _check_save_path(path: Optional[str]) -> None:
    """An unwritable ``--save`` path is a ``UserError`` before any training."""
    if not path:
        return
    target = os.path.abspath(os.path.expanduser(path))
    parent = os.path.dirname(target)
    if os.path.isdir(target):
        raise UserError(f"--save {path}: is a directory; give a file name, e.g. {os.path.join(path, 'sampler.pt')}")
    if not os.path.isdir(parent):
        raise UserError(f"--save {path}: directory {parent!r} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise UserError(f"--save {path}: directory {parent!r} is not writable")


def _prepare_run(args) -> None:
    """Checks and settings of ``logz run`` that need no target or sampler: threads, device,
    the --save path (all before any training)."""
    import torch

    args.threads = default_threads() if args.threads is None else args.threads
    torch.set_num_threads(args.threads)
    _check_device(args.device)
    _check_save_path(args.save)


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
        config = _checked_config(args.sampler, _parse_config(args.config))
        config.setdefault("seed", args.seed)
        seed = config["seed"]  # --config seed=N overrides --seed: print and record what runs
        device = args.device
        if shard.active and (device is None or device == "cuda"):
            device = str(default_device(shard))  # one GPU per rank (LOCAL_RANK)
        if device:
            config["device"] = device
        sampler = samplers.get(args.sampler, target, **config)
    except (ValueError, TypeError) as err:
        print(f"logz run: error: {_one_line(err)}", file=sys.stderr)
        return 2
    if args.resample and not getattr(sampler, "intermediate_log_densities", False):
        print(f"logz run: error: --resample needs intermediate log-densities along the learned path (a "
              f"learned log-flow: dgfs with loss subtb or db); {args.sampler!r} has none", file=sys.stderr)
        return 2
    progress = not args.json and not args.quiet and shard.is_main
    learned = samplers.entry(args.sampler).kind == "learned"
    iterations = args.iterations
    if iterations is None:  # learned samplers (those with checkpoints) get a stated budget
        iterations = DEFAULT_ITERATIONS if learned and not args.resume else 0
        if iterations:
            say(f"training {iterations} iterations (the default budget; set --iterations N, "
                f"or --iterations 0 to estimate with the untrained sampler)", file=sys.stderr)
    start = time.perf_counter()
    if args.resume:
        if not learned:
            print(f"logz run: error: sampler {args.sampler!r} has no checkpoints to resume", file=sys.stderr)
            return 2
        try:
            sampler.load(args.resume)
        except (ValueError, OSError, RuntimeError) as err:
            print(f"logz run: error: cannot resume from {args.resume!r}: {err}", file=sys.stderr)
            return 2
    try:
        if iterations:
            sampler.fit(iterations, progress=progress)
        if args.save:
            if not learned:
                print(f"logz run: error: sampler {args.sampler!r} has no state to save", file=sys.stderr)
                return 2
            sampler.save(args.save)
        resample = {"resample": True} if args.resample else {}  # samplers without the option keep their signature
        est = sampler.estimate_log_z(args.num_samples, progress=progress, **resample)
    except (TrainingError, ValueError, RuntimeError) as err:
        print(f"logz run: error: {_one_line(err)}", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    entry = samplers.entry(args.sampler)
    calibrated = entry.calibrated_on(args.target)
    calibration = entry.calibration if calibrated else None
    calibration_scope = entry.calibration_scope + (
        f" on {', '.join(entry.calibration_targets)}" if entry.calibration_targets else "")
    exact = getattr(target, "log_Z", None)
    overrides = {k: v if isinstance(v, (bool, int, float, str, type(None))) else str(v)
                 for k, v in config.items() if k not in ("seed", "device")}
    record = {"target": args.target, "sampler": args.sampler, "seed": seed, "config": overrides,
              "iterations": iterations, "threads": args.threads,
              "device": str(config.get("device", "cpu")), "world_size": shard.world_size, **est.to_dict(),
              "calibration": calibration, "calibration_scope": calibration_scope if calibration else None,
              "exact_log_z": exact, "error": None if exact is None else est.log_z - exact,
              "wall_time_s": wall, "torch": torch.__version__}
    try:
        check = _smc_check(args, target, est, torch) if args.check and shard.is_main else None
    except (ValueError, RuntimeError) as err:
        print(f"logz run: error: the --check SMC run failed: {err}", file=sys.stderr)
        return 1
    if check is not None:
        record["check"] = check
    if args.resample:
        record["resample"] = True
    if args.json:
        say(json.dumps(record))
        return 0
    say(f"target   {args.target} (dim {target.dim})")
    ranks = f", {shard.world_size} processes" if shard.active else ""
    say(f"sampler  {args.sampler} (seed {seed}, {record['device']}{ranks}, {args.threads} thread{'s' * (args.threads != 1)}, "
        f"{iterations} training iterations)")
    if overrides:
        say("config   " + " ".join(f"{k}={v}" for k, v in overrides.items()))
    if args.resample:
        say("estimate SMC-corrected: resampling along the learned path (error bar from independent replicates)")
    say(f"log Z    {est.log_z:.4f} ± {est.stderr:.4f}  (± one standard error)")
    if est.elbo is not None:
        say(f"ELBO     {est.elbo:.4f}")
    if est.eubo is not None:
        say(f"EUBO     {est.eubo:.4f}")
    if est.ess is not None:
        say(f"ESS      {est.ess:.3f}  (normalized, n = {est.num_samples})")
    if getattr(est, "pareto_k", None) is not None:
        say(f"Pareto k {est.pareto_k:.2f}  (< 0.7: the weights' tail allows an error bar)")
    if getattr(est, "reliable", True) and calibration is not None:
        say(f"flag     reliable (no diagnostic contradicts the error bar; calibrated {calibration_scope}: "
            f"{calibration})")
    elif getattr(est, "reliable", True) and entry.calibration is not None:
        say(f"flag     not flagged by the diagnostics, but no calibration study backs {args.sampler}'s "
            f"error bar on {args.target} (it is calibrated {calibration_scope}: {entry.calibration}): "
            f"cross-check with --check")
    elif getattr(est, "reliable", True):
        say(f"flag     not flagged by the diagnostics, but no calibration study backs {args.sampler}'s "
            f"error bar: cross-check with --check")
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
    from logz._argtypes import positive_int

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
    run.add_argument("--iterations", type=int, default=None,
                     help=f"training iterations (learned samplers; default {DEFAULT_ITERATIONS}, "
                          f"0 after --resume)")
    run.add_argument("--threads", type=positive_int, default=None,
                     help="torch CPU threads (default: 1 on a machine with <= "
                          f"{SMALL_MACHINE_CORES} cores, else half the cores up to 8)")
    run.add_argument("--config", nargs="*", metavar="KEY=VALUE",
                     help="sampler configuration; group.key=value reaches a group "
                          "(network, optimiser, evaluation, placement)")
    run.add_argument("--save", default=None, help="write a checkpoint after training")
    run.add_argument("--resume", default=None, help="load a checkpoint before training")
    run.add_argument("--json", action="store_true", help="print one JSON record")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--check", action="store_true",
                     help="also run a quick SMC (default settings) and report the disagreement in "
                          "standard errors")
    run.add_argument("--resample", action="store_true",
                     help="SMC-corrected estimate: sequential importance resampling along the learned path "
                          "(samplers with a learned log-flow: dgfs; docs/smc_corrected.md)")
    run.set_defaults(func=_cmd_run)

    sub.add_parser("targets", help="list built-in targets").set_defaults(func=_cmd_targets)
    sub.add_parser("samplers", help="list samplers").set_defaults(func=_cmd_samplers)
    for mod in _ROOM_CLIS:
        importlib.import_module(mod).add_subcommand(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run a command. A user error (bad argument, configuration, device, data directory,
    unwritable path) is one line on stderr and a non-zero exit, never a traceback; set
    ``LOGZ_TRACEBACK=1`` to see the traceback of an unexpected error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.num_samples < 2:
            parser.error("--num-samples must be >= 2")
        if args.iterations is not None and args.iterations < 0:
            parser.error("--iterations must be >= 0")
    try:
        if args.command == "run":
            _prepare_run(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"logz {args.command}: interrupted", file=sys.stderr)
        return 130
    except UserError as err:
        print(f"logz {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:  # bad input or environment, explained by the raiser
        print(f"logz {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the one-line contract of the command line
        if os.environ.get("LOGZ_TRACEBACK"):
            raise
        print(f"logz {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
