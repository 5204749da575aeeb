"""Benchmark grid runner: cells (target, sampler, seed) -> plain record dicts, stored resumably.

One function runs one cell (:func:`run_cell`): build the target and the sampler from a
:class:`~logz.bench.budgets.Budget`, train, estimate log Z on fresh samples of the FINAL
model, compute the requested sample metrics against exact target samples, and return a
JSON-serializable record (config, seed, versions, device, wall times, peak memory,
training curves, estimates, metrics). :func:`run_grid` loops over the cells, skipping
those already finished in the output directory, and writes each record atomically as
soon as its cell ends; the report and plots (``report.py``, ``plots.py``) read only
the stored records, so they can be re-made without re-running anything.

Layout of an output directory::

    results.jsonl          append-only log, one record per finished cell run
    cells/<cell>.json      the latest record of each cell (written atomically; resume key)
    samples/<cell>.pt      the cell's evaluation samples and their energies (for plots)
    results.csv, report.md, *.png   made from the stored records
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import torch

from logz.bench import metrics as M
from logz.bench.budgets import Budget
from logz.bench.environment import PeakMemory, environment

PathLike = Union[str, os.PathLike]

#: the default grid: the targets with published figures, the samplers compared on them
DEFAULT_TARGETS = ("gmm9", "funnel", "manywell")
DEFAULT_SAMPLERS = ("smc", "ais", "pis", "dds", "dgfs", "tb")
DEFAULT_METRICS = ("sliced_w2", "mmd", "energy_w2", "mode_coverage")
MAX_CURVE_POINTS = 400


# -- sample metrics ----------------------------------------------------------------------------
def _mode_coverage(x, exact, target, seed) -> dict:
    mc = M.mode_coverage(x, target, seed=seed)
    # per-mode occupation (Many-Well: per pair, the right-well fraction) against the exact
    # weights, so the report can show WHICH modes a sampler misses, not only a summary number
    return {"value": mc.tv.value, "stderr": mc.tv.stderr, "coverage": mc.coverage.value,
            "coverage_stderr": mc.coverage.stderr, "what": "mode total variation",
            "fractions": [float(f) for f in mc.fractions], "expected": [float(p) for p in mc.expected],
            "fraction_stderr": [float(e) for e in mc.stderr], "kind": mc.kind,
            **({"labels": list(target.mode_labels())} if hasattr(target, "mode_labels") else {})}


#: name -> (needs exact samples, fn(x, exact, target, seed) -> Metric | dict)
METRICS: dict[str, tuple[bool, Callable]] = {
    "w2": (True, lambda x, y, t, s: M.w2(x, y, seed=s)),
    "sliced_w2": (True, lambda x, y, t, s: M.sliced_w2(x, y, seed=s)),
    "mmd": (True, lambda x, y, t, s: M.mmd(x, y, seed=s)),
    "energy_distance": (True, lambda x, y, t, s: M.energy_distance(x, y)),
    "energy_w2": (True, lambda x, y, t, s: M.energy_histogram_w2(x, y, t, seed=s)),
    "mode_coverage": (False, _mode_coverage),
}


def metric_names() -> list[str]:
    """Names accepted by ``run_cell(metrics=...)``."""
    return sorted(METRICS)


def _check_names(kind: str, given: Iterable[str], valid: Sequence[str]) -> list[str]:
    given = list(given)
    bad = [g for g in given if g not in valid]
    if bad:
        raise ValueError(f"unknown {kind} name(s) {', '.join(map(repr, bad))}; valid names: {', '.join(valid)}")
    if len(set(given)) != len(given):
        raise ValueError(f"duplicate {kind} names in {given}")
    return given


def _compute_metrics(names: Sequence[str], x, exact, target, seed: int) -> dict:
    out: dict[str, dict] = {}
    for name in names:
        needs_exact, fn = METRICS[name]
        if needs_exact and exact is None:
            out[name] = {"skipped": "target has no exact samples"}
            continue
        if not bool(torch.isfinite(x).all()):
            out[name] = {"skipped": "non-finite samples"}
            continue
        try:
            m = fn(x, exact, target, seed)
        except (ValueError, RuntimeError) as err:  # e.g. no mode structure on this target
            out[name] = {"skipped": str(err).splitlines()[0][:200]}
            continue
        out[name] = m if isinstance(m, dict) else {"value": m.value, "stderr": m.stderr}
    return out


# -- one cell ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One benchmark run: a target, a sampler and a seed."""

    target: str
    sampler: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.target}--{self.sampler}--seed{self.seed}"


def _curve(values: Sequence[float]) -> dict:
    n = len(values)
    idx = list(range(n)) if n <= MAX_CURVE_POINTS else sorted({round(i * (n - 1) / (MAX_CURVE_POINTS - 1))
                                                              for i in range(MAX_CURVE_POINTS)})
    return {"iteration": [i + 1 for i in idx], "value": [_num(values[i]) for i in idx]}


def _clean(obj: Any) -> Any:
    """Recursively replace non-finite floats by None (JSON has no NaN / inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _num(v: Any) -> Optional[float]:
    """A float, with NaN / inf as None (JSON has no NaN)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def reference_log_z(target, target_name: str, reference_file: Optional[PathLike]) -> tuple[Optional[float], str]:
    """(log Z to compare with, its source): the exact one, else a stored reference record, from
    ``reference_file`` or, if None, the project's stored references
    (``logz.bench.reference.default_reference_file``; one made on other data is not used)."""
    exact = getattr(target, "log_Z", None)
    if exact is not None:
        return float(exact), "exact"
    from logz.bench.reference import default_reference_file, load_reference_log_z

    given = reference_file is not None
    reference_file = reference_file if given else default_reference_file()
    if reference_file is not None:
        try:
            rec = load_reference_log_z(reference_file, target)
        except KeyError:
            return None, "none"
        except ValueError:  # the stored default was computed on another data file
            if given:
                raise
            return None, "none (the stored reference was computed on different data)"
        shown = reference_file if given else _project_relative(reference_file)
        return float(rec["log_z"]), f"reference ({rec['sampler']}, {rec['num_samples']} samples, {shown})"
    return None, "none"


def _project_relative(path: PathLike) -> str:
    """``path`` relative to the project root (the directory above the ``logz`` package) when
    it lies there, so that records name the stored file the same on every machine."""
    from logz.bench.reference import project_root

    try:
        return str(Path(path).resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def run_cell(cell: Cell, budget: Budget, *, device: Optional[str] = None,
             metrics: Sequence[str] = DEFAULT_METRICS, reference_file: Optional[PathLike] = None,
             samples_path: Optional[PathLike] = None, progress: bool = False) -> dict:
    """Run one cell and return its record (a plain, JSON-serializable dict).

    Args:
        cell: (target, sampler, seed); names as in ``logz.targets.names()`` / ``logz.samplers.names()``.
        budget: iterations, evaluation samples and the sampler configuration.
        device: torch device string (None: the samplers' default, CPU).
        metrics: sample metrics to compute (:func:`metric_names`).
        reference_file: JSON of ``logz.bench.reference`` records, for targets without exact log Z.
        samples_path: where to save the evaluation samples and energies (``torch.save``), or None.
        progress: show the sampler's own training progress bar.
    Returns:
        dict with status "ok", the configuration, environment, timings, peak memory, the
        estimate (log_z, stderr, elbo, eubo, ess), error vs the exact / reference log Z,
        training curves and metrics; for samplers with a learned log-flow also the
        SMC-corrected estimate (log_z_smc, stderr_smc, error_smc, ...).
    """
    from logz import samplers, targets

    metrics = _check_names("metric", metrics, metric_names())
    target = targets.get(cell.target)
    config = {"seed": cell.seed, **budget.sampler_config(cell.sampler, cell.target)}
    if device is not None:
        config["device"] = device
    iterations = budget.train_iterations(cell.sampler)
    env = environment(device)
    record: dict[str, Any] = {
        "cell": cell.id, "target": cell.target, "sampler": cell.sampler, "seed": cell.seed,
        "budget": budget.name, "budget_description": budget.describe(), "budget_note": budget.note,
        "iterations": iterations, "eval_samples": budget.eval_samples,
        "config": {k: v for k, v in config.items() if k != "seed"}, "metrics_requested": list(metrics),
        "dim": int(target.dim), "threads": torch.get_num_threads(), **env,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    sampler = samplers.get(cell.sampler, target, **config)
    with PeakMemory(torch.device(env["device"])) as mem:
        t0 = time.perf_counter()
        history = sampler.fit(iterations, progress=progress)
        t1 = time.perf_counter()
        est = sampler.estimate_log_z(budget.eval_samples)
        t2 = time.perf_counter()
        x = sampler.sample(budget.eval_samples).detach()
        t3 = time.perf_counter()
    true_log_z, source = reference_log_z(target, cell.target, reference_file)
    error = None if true_log_z is None else est.log_z - true_log_z
    record.update(
        status="ok", train_seconds=t1 - t0, eval_seconds=t2 - t1, sample_seconds=t3 - t2,
        it_per_s=iterations / (t1 - t0) if iterations and t1 > t0 else None,
        peak_memory_mib=_num(mem.peak_mib), start_memory_mib=_num(mem.start_mib), memory_kind=mem.kind,
        log_z=_num(est.log_z), stderr=_num(est.stderr), elbo=_num(est.elbo), eubo=_num(est.eubo),
        ess=_num(est.ess), num_samples=est.num_samples, true_log_z=true_log_z, true_log_z_source=source,
        pareto_k=_num(getattr(est, "pareto_k", None)), stderr_batches=_num(getattr(est, "stderr_batches", None)),
        reliable=bool(getattr(est, "reliable", True)), reliability_reason=getattr(est, "reason", ""),
        error=_num(error), abs_error=None if error is None else _num(abs(error)),
        learned_log_z=_num(getattr(sampler, "learned_log_z", None)))
    if getattr(sampler, "intermediate_log_densities", False):  # a learned log-flow: SMC along the path too
        record.update(_smc_corrected(sampler, budget.eval_samples, true_log_z))
    if samplers.entry(cell.sampler).kind == "learned":
        record["curves"] = {"loss": _curve(history.loss), "batch_log_z": _curve(history.log_z)}
        record["evaluations"] = {"iteration": list(history.eval_iterations),
                                 "log_z": [_num(e.log_z) for e in history.estimates],
                                 "stderr": [_num(e.stderr) for e in history.estimates]}
    exact = None
    # real-data targets (LGCP, logistic regression) have a `sample` that raises: ask the flag
    if getattr(target, "has_exact_samples", False) and callable(getattr(target, "sample", None)):
        gen = torch.Generator().manual_seed(10_007 + cell.seed)
        exact = target.sample(budget.eval_samples, generator=gen).detach().cpu()
    x = x.cpu()
    t4 = time.perf_counter()
    record["metrics"] = _compute_metrics(metrics, x, exact, target, cell.seed)
    record["metric_seconds"] = time.perf_counter() - t4
    if samples_path is not None:
        with torch.no_grad():
            energy = -target.log_prob(x)
            energy_exact = None if exact is None else -target.log_prob(exact)
        save_atomic(samples_path, lambda p: torch.save(
            {"x": x.float(), "energy": energy.float().cpu(),
             "energy_exact": None if energy_exact is None else energy_exact.float().cpu(),
             "exact": None if exact is None else exact.float()}, p))
    record["wall_seconds"] = time.perf_counter() - t0
    return record


def _smc_corrected(sampler, num_samples: int, true_log_z: Optional[float]) -> dict:
    """The SMC-corrected estimate (``estimate_log_z(resample=True)``, default segments and
    replicates) of the same final model, next to the plain importance-weighted one; run after
    the model's samples are drawn, so those are the same with or without it."""
    t0 = time.perf_counter()
    est = sampler.estimate_log_z(num_samples, resample=True)
    error = None if true_log_z is None else est.log_z - true_log_z
    return {"log_z_smc": _num(est.log_z), "stderr_smc": _num(est.stderr), "ess_smc": _num(est.ess),
            "reliable_smc": bool(est.reliable), "error_smc": _num(error),
            "abs_error_smc": None if error is None else _num(abs(error)),
            "eval_smc_seconds": time.perf_counter() - t0}


# -- the store --------------------------------------------------------------------------------
def save_atomic(path: PathLike, write: Callable[[str], None]) -> None:
    """Write a file via ``write(tmp_path)`` then ``os.replace``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(str(tmp))
    os.replace(tmp, path)


class ResultStore:
    """An output directory: ``results.jsonl`` (append-only) + ``cells/<cell>.json`` (latest per cell)."""

    def __init__(self, root: PathLike):
        self.root = Path(root)

    def cell_path(self, cell: Cell) -> Path:
        return self.root / "cells" / f"{cell.id}.json"

    def samples_path(self, cell: Cell) -> Path:
        return self.root / "samples" / f"{cell.id}.pt"

    def load(self, cell: Cell) -> Optional[dict]:
        """The stored record of ``cell``, or None."""
        p = self.cell_path(cell)
        return json.loads(p.read_text()) if p.is_file() else None

    def save(self, record: dict) -> None:
        """Append the record to the log, then (atomically) make it the cell's record."""
        self.root.mkdir(parents=True, exist_ok=True)
        record = _clean(record)
        line = json.dumps(record, sort_keys=True, allow_nan=False)
        with open(self.root / "results.jsonl", "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        cell = Cell(record["target"], record["sampler"], int(record["seed"]))

        def write(p: str) -> None:
            with open(p, "w") as f:
                f.write(json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        save_atomic(self.cell_path(cell), write)

    def records(self) -> list[dict]:
        """All cells' latest records, sorted by (target, sampler, seed)."""
        files = sorted((self.root / "cells").glob("*.json"))
        recs = [json.loads(p.read_text()) for p in files]
        return sorted(recs, key=lambda r: (r["target"], r["sampler"], r["seed"]))


# -- the grid ---------------------------------------------------------------------------------
_SAME_RUN_KEYS = ("budget", "iterations", "eval_samples", "config", "metrics_requested")


def grid(targets: Sequence[str], samplers: Sequence[str], seeds: Sequence[int]) -> list[Cell]:
    """The cells, target-major; unknown target / sampler names raise ValueError listing the valid ones."""
    import logz.samplers as S
    import logz.targets as T

    targets = _check_names("target", targets, T.names())
    samplers = _check_names("sampler", samplers, S.names())
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and non-empty, got {list(seeds)}")
    return [Cell(t, s, int(seed)) for t in targets for s in samplers for seed in seeds]


def _mismatch(stored: dict, cell: Cell, budget: Budget, device: Optional[str], metrics: Sequence[str]) -> list[str]:
    want = {"budget": budget.name, "iterations": budget.train_iterations(cell.sampler),
            "eval_samples": budget.eval_samples, "metrics_requested": list(metrics),
            "config": {**budget.sampler_config(cell.sampler, cell.target),
                       **({"device": device} if device is not None else {})}}
    want = json.loads(json.dumps(want))  # tuples -> lists, as stored
    return [k for k in _SAME_RUN_KEYS if stored.get(k) != want[k]]


def run_grid(targets: Sequence[str], samplers: Sequence[str], seeds: Sequence[int], budget: Budget,
             out: PathLike, *, device: Optional[str] = None, metrics: Sequence[str] = DEFAULT_METRICS,
             reference_file: Optional[PathLike] = None, rerun: bool = False, threads: Optional[int] = None,
             progress: bool = True, command: Optional[str] = None,
             run: Callable[..., dict] = run_cell) -> list[dict]:
    """Run every (target, sampler, seed) cell not yet finished in ``out``; return all stored records.

    Finished cells (status "ok") are skipped unless ``rerun``; a stored cell run with another
    configuration raises ValueError (use another ``out`` or ``rerun=True``). A cell that raises
    is stored with status "failed" (and re-run next time); KeyboardInterrupt stops the grid,
    keeping every finished cell. ``run`` is the cell function (tests count its calls).
    """
    cells = grid(targets, samplers, seeds)
    metrics = _check_names("metric", metrics, metric_names())
    store = ResultStore(out)
    todo = []
    for cell in cells:
        stored = None if rerun else store.load(cell)
        if stored is not None and stored.get("status") == "ok":
            diff = _mismatch(stored, cell, budget, device, metrics)
            if diff:
                raise ValueError(f"{store.cell_path(cell)} was run with a different {', '.join(diff)}; "
                                 f"use another output directory or rerun")
            continue
        todo.append(cell)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    from tqdm.auto import tqdm
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc=f"logz bench ({budget.name})",
               unit="cell", disable=not progress, dynamic_ncols=True)
    try:
        for cell in todo:
            if not rerun and (store.load(cell) or {}).get("status") == "ok":
                bar.update(1)  # finished meanwhile by another process on the same ``out``
                continue
            bar.set_postfix_str(cell.id)
            try:
                record = run(cell, budget, device=device, metrics=metrics, reference_file=reference_file,
                             samples_path=store.samples_path(cell))
            except Exception as err:  # noqa: BLE001 - one bad cell must not lose the grid
                record = {"cell": cell.id, "target": cell.target, "sampler": cell.sampler, "seed": cell.seed,
                          "budget": budget.name, "status": "failed", "error_type": type(err).__name__,
                          "error_message": str(err)[:2000], "traceback": traceback.format_exc()[-4000:],
                          **environment(device)}
            record["command"] = command
            record["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            store.save(record)
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(old_threads)
    wanted = {c.id for c in cells}
    return [r for r in store.records() if r["cell"] in wanted]


__all__ = ["Cell", "ResultStore", "PeakMemory", "METRICS", "DEFAULT_TARGETS", "DEFAULT_SAMPLERS",
           "DEFAULT_METRICS", "metric_names", "grid", "run_cell", "run_grid", "environment",
           "reference_log_z", "save_atomic"]
