"""``logz calibrate``: whether an error bar is honest, measured over many seeds.

    logz calibrate --target funnel --sampler smc --seeds 50
    logz calibrate --target gaussian-corr20 --sampler smc --seeds 50 --out results/calibration/smc-gaussian-corr20
    logz calibrate --target gmm9 --sampler pis --iterations 1000 --seeds 20 --config batch_size=512
    logz calibrate --target gmm9 --sampler scld --train-once --iterations 500 --seeds 50
    logz calibrate --target gmm9 --sampler scld --checkpoint model.pt --seeds 50

For a target with a known (exact or stored reference) log Z, each seed gives an estimate
log Z^ +- SE and its z-score z = (log Z^ - log Z) / SE. A calibrated error bar gives z ~ N(0, 1)
over seeds: mean near 0, about 95% of seeds within +-2 and 99.7% within +-3. The study reports
those numbers (with their own Monte Carlo uncertainty), how many seeds were flagged
unreliable, and a plot: the histogram of z over the N(0, 1) density, and every seed's
estimate +- 2 SE against the truth.

A learned sampler is retrained per seed by default: the study then covers the spread over
training runs too, at the price of a training per seed. ``--train-once`` trains ONE model
(``--iterations`` at ``--model-seed``, saved as ``<out>/model.pt`` with the sampler's own
``save``, described in ``<out>/model.json`` and reused when the study resumes) and
``--checkpoint PATH`` loads one; every seed then re-draws only the estimate's noise
(``seed_estimates``) from that fixed model. This calibrates the error bar GIVEN the model,
which is what a printed standard error claims (it comes from independent replicates of one
model's estimate); it says nothing about how much the estimate moves between training runs.
Every record names the model (sha256 of the checkpoint, model seed, iterations).

Every finished seed is appended at once to ``<out>/seeds.jsonl``; the same command again skips
finished seeds (an interrupted study resumes). ``<out>/summary.json`` holds the command, date,
machine and the summary; ``<out>/calibration.png`` the plot.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from logz.bench.environment import environment
from logz.targets.data import file_sha256  # names the checkpoint a record was estimated from

PathLike = Union[str, Path]

#: the correlated Gaussian of the calibration studies (not in the target registry: its
#: covariance is a fixed random rotation of log-spaced variances).
CORRELATED_GAUSSIAN = "gaussian-corr20"


def correlated_gaussian(dim: int = 20, condition: float = 100.0, log_Z: float = 0.0, seed: int = 0):
    """N(0, C) with C = Q diag(lambda) Q^T, lambda log-spaced in [1 / sqrt(condition),
    sqrt(condition)] (condition number ``condition``), Q a Haar-random rotation from ``seed``."""
    from logz.targets import Gaussian

    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # Haar: fix the signs of the QR factor
    lam = torch.logspace(-0.5 * math.log10(condition), 0.5 * math.log10(condition), dim, dtype=torch.float64)
    cov = q @ torch.diag(lam) @ q.T
    return Gaussian(torch.zeros(dim, dtype=torch.float64), (cov + cov.T) / 2, log_Z=log_Z,
                    name=CORRELATED_GAUSSIAN)


def calibration_target(name: str, **kwargs):
    """A registered target, or ``gaussian-corr20`` (``correlated_gaussian(**kwargs)``)."""
    from logz import targets

    if name == CORRELATED_GAUSSIAN:
        return correlated_gaussian(**kwargs)
    return targets.get(name, **kwargs)


def summarize(z: Sequence[float]) -> dict[str, Any]:
    """Calibration numbers of z-scores: count, mean (and its standard error), sd, and the
    fractions within +-2 and +-3 (with binomial standard errors). A calibrated error bar:
    mean ~ 0, sd ~ 1, within_2 ~ 0.954, within_3 ~ 0.997."""
    zs = torch.tensor([float(v) for v in z], dtype=torch.float64)
    n = zs.numel()
    if n == 0:
        raise ValueError("no z-scores to summarize")
    finite = zs[torch.isfinite(zs)]
    w2, w3 = float((zs.abs() <= 2).double().mean()), float((zs.abs() <= 3).double().mean())
    mean = float(finite.mean()) if finite.numel() else math.nan
    sd = float(finite.std()) if finite.numel() > 1 else math.nan
    return {"seeds": n, "nonfinite": int(n - finite.numel()), "mean_z": mean, "sd_z": sd,
            "mean_z_stderr": sd / math.sqrt(finite.numel()) if finite.numel() > 1 else math.nan,
            "within_2": w2, "within_2_stderr": math.sqrt(w2 * (1 - w2) / n),
            "within_3": w3, "within_3_stderr": math.sqrt(w3 * (1 - w3) / n),
            "max_abs_z": float(zs.abs().max())}


def _num(v: Any) -> Optional[float]:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def run_seed(target, sampler_name: str, seed: int, *, num_samples: int, iterations: int = 0,
             config: Optional[dict] = None, true_log_z: Optional[float] = None) -> dict:
    """One seed: build the sampler, fit, estimate; a JSON-ready record with the z-score."""
    from logz import samplers

    cfg = {**(config or {}), "seed": int(seed)}
    t0 = time.perf_counter()
    sampler = samplers.get(sampler_name, target, **cfg)
    if iterations:
        sampler.fit(iterations)
    return _estimate_record(sampler, seed, t0, num_samples, true_log_z)


def run_fixed_model_seed(sampler, seed: int, model: dict, *, num_samples: int,
                         true_log_z: Optional[float] = None) -> dict:
    """One seed of a fixed model: re-seed only the estimate's noise (``seed_estimates``) and
    estimate; the record names the model (``model``: sha256, model seed, iterations)."""
    t0 = time.perf_counter()
    sampler.seed_estimates(int(seed))
    rec = _estimate_record(sampler, seed, t0, num_samples, true_log_z)
    rec["model"] = {k: model[k] for k in MODEL_KEYS}
    return rec


def _estimate_record(sampler, seed: int, t0: float, num_samples: int, true_log_z: Optional[float]) -> dict:
    import warnings

    from logz.samplers.estimators import UnreliableEstimateWarning

    with warnings.catch_warnings():  # the record keeps the flag; one warning per seed is noise
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        est = sampler.estimate_log_z(num_samples)
    rec = {"seed": int(seed), "log_z": est.log_z, "stderr": est.stderr, "elbo": _num(est.elbo),
           "eubo": _num(est.eubo), "ess": _num(est.ess), "pareto_k": _num(est.pareto_k),
           "stderr_batches": _num(est.stderr_batches), "reliable": bool(est.reliable),
           "reason": est.reason, "num_samples": est.num_samples, "wall_seconds": time.perf_counter() - t0}
    if true_log_z is not None:
        rec["error"] = est.log_z - true_log_z
        z = est.z_score(true_log_z)  # +-inf (zero SE, nonzero error) stored as +-1e300: JSON has no inf
        rec["z"] = z if math.isfinite(z) else math.copysign(1e300, z)
    return rec


#: the trained model of a ``--train-once`` study, and its description
MODEL_FILE, MODEL_INFO = "model.pt", "model.json"
#: what every record of a fixed-model study says about its model
MODEL_KEYS = ("sha256", "model_seed", "iterations")


def check_fixed_model_options(sampler_name: str, *, train_once: bool, checkpoint: Optional[PathLike],
                              iterations: int, model_seed: Optional[int]) -> None:
    """ValueError naming the problem for a combination ``fixed_model`` cannot run."""
    from logz import samplers

    if train_once and checkpoint is not None:
        raise ValueError("--train-once trains the model and --checkpoint loads one: give only one of them")
    if not (train_once or checkpoint is not None):
        if model_seed is not None:
            raise ValueError("--model-seed applies only with --train-once or --checkpoint")
        return
    flag = "--train-once" if train_once else "--checkpoint"
    if samplers.entry(sampler_name).kind != "learned":
        raise ValueError(f"{flag} fixes a trained model, but {sampler_name!r} is classical (nothing to train): "
                         f"calibrate it without {flag}")
    if train_once and iterations < 1:
        raise ValueError("--train-once needs --iterations N >= 1 (the one model's training)")
    if checkpoint is not None and iterations:
        raise ValueError("--checkpoint estimates from the model as saved; --iterations would train it "
                         "further: drop --iterations (or use --train-once)")
    if model_seed is not None and model_seed < 0:
        raise ValueError(f"--model-seed must be >= 0, got {model_seed}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ValueError(f"--checkpoint {str(checkpoint)!r}: no such file")


def fixed_model(target, sampler_name: str, out: PathLike, *, train_once: bool = False,
                checkpoint: Optional[PathLike] = None, iterations: int = 0, model_seed: Optional[int] = None,
                config: Optional[dict] = None, describe: Optional[dict] = None, progress: bool = True):
    """The one model of a fixed-model study: (sampler, model description).

    ``train_once``: train ``iterations`` at ``model_seed`` (0) and save ``<out>/model.pt`` and
    ``<out>/model.json``; when they exist (a resumed study) load them instead, after checking
    that they were trained for this study (sampler, target, config, seed, iterations) and are
    unchanged (sha256). ``checkpoint``: load that file (the sampler's ``load``: tensors only,
    matched to the configuration); its seed is not in the file, so ``model_seed`` is as stated
    (None: not stated). ``describe``: target fields stored with the model (name, config)."""
    from logz import samplers

    cfg = {**(config or {}), "seed": 0 if model_seed is None else int(model_seed)}
    sampler = samplers.get(sampler_name, target, **cfg)
    if not callable(getattr(sampler, "seed_estimates", None)):
        raise ValueError(f"{sampler_name!r} cannot re-seed its estimates from a fixed model (no seed_estimates)")
    if checkpoint is not None:
        sampler.load(str(checkpoint))
        return sampler, {"source": "checkpoint", "checkpoint": str(checkpoint), "sha256": file_sha256(checkpoint),
                         "model_seed": model_seed, "iterations": int(sampler.trainer.iteration)}
    out = Path(out)
    path, info_path = out / MODEL_FILE, out / MODEL_INFO
    want = json.loads(json.dumps({"source": "train-once", "sampler": sampler_name, **(describe or {}),
                                  "config": config or {}, "model_seed": cfg["seed"], "iterations": int(iterations)}))
    if path.exists():
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        differs = {k: (info.get(k), v) for k, v in want.items() if info.get(k) != v}
        if differs:
            raise ValueError(f"{path} was not trained for this study (stored vs asked: {differs}); "
                             f"use another --out")
        if file_sha256(path) != info.get("sha256"):
            raise ValueError(f"{path} changed since it was trained (sha256 differs from {info_path})")
        sampler.load(str(path))
        return sampler, info
    t0 = time.perf_counter()
    sampler.fit(int(iterations), progress=progress)
    train_seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    sampler.save(str(path))
    env = environment()
    info = {**want, "checkpoint": MODEL_FILE, "sha256": file_sha256(path), "train_seconds": train_seconds,
            "git_commit": env.get("git_commit"), "git_dirty": env.get("git_dirty"),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return sampler, info


def load_records(out: PathLike) -> list[dict]:
    """The finished seeds of a study directory (last record per seed wins)."""
    path = Path(out) / "seeds.jsonl"
    if not path.exists():
        return []
    by_seed = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            by_seed[rec["seed"]] = rec
    return [by_seed[s] for s in sorted(by_seed)]


def calibration_plot(records: Sequence[dict], true_log_z: float, path: PathLike, title: str = "") -> Path:
    """Histogram of z over the N(0, 1) density; estimate +- 2 SE per seed against the truth."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    recs = [r for r in records if r.get("z") is not None]
    z = torch.tensor([r["z"] for r in recs], dtype=torch.float64).clamp(-8, 8)
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax_h, ax_s = fig.subplots(1, 2, width_ratios=[1, 1.6])
    lim = max(4.0, float(z.abs().max()) + 0.5) if z.numel() else 4.0
    ax_h.hist(z.numpy(), bins=max(8, int(math.sqrt(len(z))) * 2), range=(-lim, lim), density=True,
              alpha=0.6, label="z over seeds")
    g = torch.linspace(-lim, lim, 200)
    ax_h.plot(g.numpy(), (torch.exp(-0.5 * g ** 2) / math.sqrt(2 * math.pi)).numpy(), "k", lw=1.2,
              label="N(0, 1)")
    ax_h.set(xlabel="z = (log Z^ - log Z) / SE", title="z-scores")
    ax_h.legend(fontsize=8)
    seeds = [r["seed"] for r in recs]
    est = [r["log_z"] for r in recs]
    err = [2 * r["stderr"] for r in recs]
    colors = ["C0" if abs(r["z"]) <= 2 else "C3" for r in recs]
    for s, e, d, c, r in zip(seeds, est, err, colors, recs):
        ax_s.errorbar([s], [e], yerr=[d], fmt="o" if r.get("reliable", True) else "x", ms=3, color=c, lw=0.8)
    ax_s.axhline(true_log_z, color="k", lw=1, label=f"log Z = {true_log_z:.4f}")
    ax_s.set(xlabel="seed", ylabel="log Z^ ± 2 SE", title="per seed (red: |z| > 2, x: flagged)")
    ax_s.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def markdown_summary(summary: dict) -> str:
    """A short human-readable report of a study (``summary.md``)."""
    s = summary["summary"]
    lines = [f"# Calibration: {summary['sampler']} on {summary['target']}", "",
             f"- command: `{summary['command']}`",
             f"- date: {summary['date']}; machine: {summary['environment'].get('cpu')} "
             f"({summary['environment'].get('cpu_count')} CPUs), torch {summary['environment'].get('torch_version')}, "
             f"commit {summary['environment'].get('git_commit')}"
             f"{' (dirty)' if summary['environment'].get('git_dirty') else ''}",
             f"- log Z = {summary['true_log_z']:.6f} ({summary['true_log_z_source']}); "
             f"{summary['num_samples']} samples per seed, config {summary['config']}",
             *_model_lines(summary.get("model")),
             f"- mean wall time per seed {summary['mean_wall_seconds']:.1f} s", "",
             "| seeds | mean z | sd z | within ±2 SE | within ±3 SE | max \\|z\\| | flagged | mean SE | sd of log Z^ |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| {s['seeds']} | {s['mean_z']:+.3f} ± {s['mean_z_stderr']:.3f} | {s['sd_z']:.3f} | "
             f"{s['within_2']:.1%} ± {s['within_2_stderr']:.1%} | {s['within_3']:.1%} | {s['max_abs_z']:.2f} | "
             f"{summary['flagged']} | {summary['mean_stderr']:.4f} | {summary['sd_log_z']:.4f} |", ""]
    return "\n".join(lines)


def _model_lines(model: Optional[dict]) -> list[str]:
    if not model:
        return []
    how = ("trained once by this study" if model.get("source") == "train-once"
           else f"loaded from {model.get('checkpoint')}")
    took = f", {model['train_seconds']:.0f} s" if model.get("train_seconds") is not None else ""
    return [f"- ONE model, {how}: seed {model.get('model_seed')}, {model.get('iterations')} iterations{took}, "
            f"sha256 {model['sha256'][:16]}; every seed re-draws only the estimate's noise, so this "
            f"calibrates the error bar GIVEN the model, not the spread over training runs"]


def run_calibration(target_name: str, sampler: str, seeds: Sequence[int], *, out: PathLike,
                    num_samples: int = 2000, iterations: int = 0, config: Optional[dict] = None,
                    target_config: Optional[dict] = None, reference_file: Optional[PathLike] = None,
                    command: str = "", plot: bool = True, progress: bool = True, train_once: bool = False,
                    checkpoint: Optional[PathLike] = None, model_seed: Optional[int] = None) -> dict:
    """Run the seeds not yet in ``<out>/seeds.jsonl``, then write ``summary.json`` / ``.md`` and
    the plot. Returns the summary dict. ValueError without a known log Z.

    ``train_once`` / ``checkpoint``: every seed estimates from ONE model (``fixed_model``),
    re-drawing only the estimate's noise; a study directory holds the seeds of one model only."""
    from logz.bench.runner import reference_log_z

    check_fixed_model_options(sampler, train_once=train_once, checkpoint=checkpoint, iterations=iterations,
                              model_seed=model_seed)
    target = calibration_target(target_name, **(target_config or {}))
    true_log_z, source = reference_log_z(target, target_name, reference_file)
    if true_log_z is None:
        raise ValueError(f"target {target_name!r} has no exact log Z; pass --reference-file with a "
                         f"stored reference (python -m logz.bench.reference)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model_sampler = None
    if train_once or checkpoint is not None:
        model_sampler, model = fixed_model(
            target, sampler, out, train_once=train_once, checkpoint=checkpoint, iterations=iterations,
            model_seed=model_seed, config=config, progress=progress,
            describe={"target": target_name, "target_config": target_config or {}})
    previous = load_records(out)
    for r in previous:  # one study, one model (or none: retrained per seed)
        theirs, ours = r.get("model"), None if model is None else {k: model[k] for k in MODEL_KEYS}
        if (theirs or {}).get("sha256") != (ours or {}).get("sha256"):
            raise ValueError(f"{out} holds seeds of {_model_words(theirs)}, not of {_model_words(ours)}: "
                             f"use another --out")
    done = {r["seed"] for r in previous}
    todo = [s for s in seeds if s not in done]
    with open(out / "seeds.jsonl", "a") as f:
        for i, seed in enumerate(todo):
            if model is None:
                rec = run_seed(target, sampler, seed, num_samples=num_samples, iterations=iterations,
                               config=config, true_log_z=true_log_z)
            else:
                rec = run_fixed_model_seed(model_sampler, seed, model, num_samples=num_samples,
                                           true_log_z=true_log_z)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            if progress:
                print(f"[{i + 1}/{len(todo)}] seed {seed}: log Z^ {rec['log_z']:.4f} ± {rec['stderr']:.4f} "
                      f"z {rec['z']:+.2f} ({rec['wall_seconds']:.1f} s)", file=sys.stderr, flush=True)
    records = [r for r in load_records(out) if r["seed"] in set(seeds)]
    log_zs = torch.tensor([r["log_z"] for r in records], dtype=torch.float64)
    summary = {"target": target_name, "target_config": target_config or {}, "sampler": sampler,
               "config": config or {}, "iterations": iterations, "num_samples": num_samples,
               "true_log_z": true_log_z, "true_log_z_source": source, "command": command,
               "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "environment": environment(), "seeds": [r["seed"] for r in records],
               "summary": summarize([r["z"] for r in records]),
               "flagged": sum(not r.get("reliable", True) for r in records),
               "mean_stderr": sum(r["stderr"] for r in records) / len(records),
               "sd_log_z": float(log_zs.std()) if len(records) > 1 else math.nan,
               "mean_error": float(log_zs.mean()) - true_log_z,
               "mean_wall_seconds": sum(r["wall_seconds"] for r in records) / len(records),
               "model": model}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "summary.md").write_text(markdown_summary(summary))
    if plot:
        calibration_plot(records, true_log_z, out / "calibration.png",
                         title=f"{sampler} on {target_name}: {len(records)} seeds")
    return summary


def _model_words(model: Optional[dict]) -> str:
    if not model:
        return "a model retrained per seed"
    return (f"the model sha256 {model['sha256'][:12]} (seed {model.get('model_seed')}, "
            f"{model.get('iterations')} iterations)")


def add_subcommand(subparsers) -> None:
    """Add the ``calibrate`` parser (wired through ``logz.bench.cli``)."""
    from logz._argtypes import positive_int

    p = subparsers.add_parser(
        "calibrate", help="measure whether a sampler's error bar is calibrated over many seeds",
        description="Run a sampler on a target with known log Z over many seeds and report the "
                    "z-scores (log Z^ - log Z) / SE: mean, spread, fraction within 2 and 3 SE, and a plot.")
    p.add_argument("--target", required=True,
                   help=f"target name (see `logz targets`) or {CORRELATED_GAUSSIAN!r} (d = 20, condition 100)")
    p.add_argument("--sampler", required=True, help="sampler name (see `logz samplers`)")
    p.add_argument("--seeds", type=positive_int, default=50, help="number of seeds (default 50)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds run from here (default 0)")
    p.add_argument("--num-samples", type=positive_int, default=2000, help="samples per estimate (default 2000)")
    p.add_argument("--iterations", type=int, default=0, help="training iterations (learned samplers)")
    p.add_argument("--train-once", action="store_true",
                   help="learned samplers: train ONE model (--iterations at --model-seed, saved as "
                        "<out>/model.pt and reused on resume); every seed re-draws only the estimate's noise")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="learned samplers: estimate every seed from this saved model (the sampler's save)")
    p.add_argument("--model-seed", type=int, default=None,
                   help="seed of the one model (--train-once trains at it, default 0; with --checkpoint it "
                        "is recorded as stated)")
    p.add_argument("--config", nargs="*", metavar="KEY=VALUE", help="sampler configuration")
    p.add_argument("--target-config", nargs="*", metavar="KEY=VALUE", help="target configuration")
    p.add_argument("--reference-file", default=None, help="JSON of reference log Z records, for targets "
                   "without an exact log Z")
    p.add_argument("--out", default=None, help="study directory (default results/calibration/<sampler>-<target>)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--quiet", action="store_true", help="no per-seed lines")
    p.set_defaults(func=handler)


def _command(args, out: str) -> str:
    parts = ["logz", "calibrate", "--target", args.target, "--sampler", args.sampler, "--seeds", str(args.seeds),
             "--first-seed", str(args.first_seed), "--num-samples", str(args.num_samples), "--out", out]
    if args.iterations:
        parts += ["--iterations", str(args.iterations)]
    if args.train_once:
        parts += ["--train-once"]
    if args.checkpoint:
        parts += ["--checkpoint", args.checkpoint]
    if args.model_seed is not None:
        parts += ["--model-seed", str(args.model_seed)]
    for flag, items in (("--config", args.config), ("--target-config", args.target_config)):
        if items:
            parts += [flag, *items]
    if args.reference_file:
        parts += ["--reference-file", args.reference_file]
    return " ".join(shlex.quote(p) for p in parts)


def handler(args) -> int:
    """Run the study and print its summary; 2 on bad input."""
    from logz.cli import _parse_config

    out = args.out or f"results/calibration/{args.sampler}-{args.target}"
    try:
        if args.iterations < 0:
            raise ValueError("--iterations must be >= 0")
        summary = run_calibration(
            args.target, args.sampler, list(range(args.first_seed, args.first_seed + args.seeds)), out=out,
            num_samples=args.num_samples, iterations=args.iterations, config=_parse_config(args.config),
            target_config=_parse_config(args.target_config), reference_file=args.reference_file,
            command=_command(args, out), plot=not args.no_plot, progress=not args.quiet,
            train_once=args.train_once, checkpoint=args.checkpoint, model_seed=args.model_seed)
    except (ValueError, TypeError, KeyError, OSError) as err:
        print(f"logz calibrate: error: {err}", file=sys.stderr)
        return 2
    print(markdown_summary(summary))
    print(f"study:   {out}/seeds.jsonl, {out}/summary.json" + ("" if args.no_plot else f", {out}/calibration.png"))
    return 0


__all__ = ["CORRELATED_GAUSSIAN", "MODEL_FILE", "MODEL_INFO", "MODEL_KEYS", "add_subcommand", "calibration_plot",
           "calibration_target", "check_fixed_model_options", "correlated_gaussian", "fixed_model",
           "handler", "load_records", "markdown_summary", "run_calibration", "run_fixed_model_seed", "run_seed",
           "summarize"]
