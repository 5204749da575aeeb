"""Samplers side by side at equal training iterations, from stored records of several runs.

A record of a learned sampler keeps its periodic training evaluations (``evaluations``:
iteration, log Z, stderr; ``Budget.eval_every``). Runs of different lengths (the stored
``reference`` grid at 5000 iterations, a ``sequential`` run of CMCD / SCLD at 1000) are
therefore comparable at the iterations both evaluated: this module tabulates, per target and
iteration, each (sampler, budget)'s mean |log Z error| ± std over seeds with the number of
seeds, and draws the error-vs-iterations curves (``plots.error_vs_iterations_plot``).

    logz bench --out runs/seq --compare results/reference      # runs/seq/side_by_side.md + PNGs

The error at an iteration is that evaluation's log Z minus the record's true (or stored
reference) log Z; at the last iteration, without an evaluation there, the final model's.
Classical samplers (no training, no evaluations) have no curve and are left out.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Optional, Sequence

from logz.bench.runner import PathLike, ResultStore, save_atomic

Row = tuple[str, str]  # (sampler, budget)


def load_records(dirs: Sequence[PathLike]) -> list[dict]:
    """The finished records of every result directory, in order; a (target, sampler, budget, seed)
    already read from an earlier directory is skipped (the first directory wins)."""
    seen, out = set(), []
    for d in dirs:
        if not (Path(d) / "cells").is_dir():
            raise ValueError(f"no stored records in {str(d)!r} (no cells/ directory)")
        for r in ResultStore(d).records():
            key = (r.get("target"), r.get("sampler"), r.get("budget"), r.get("seed"))
            if r.get("status") == "ok" and key not in seen:
                seen.add(key)
                out.append({**r, "source_dir": str(d)})
    return out


def error_at(record: dict, iteration: int) -> Optional[float]:
    """Signed log Z error of ``record`` at training iteration ``iteration``: its evaluation there,
    else (at the record's last iteration) the final model's; None without one or without a truth."""
    truth = record.get("true_log_z")
    if truth is None:
        return None
    ev = record.get("evaluations") or {}
    for it, v in zip(ev.get("iteration", []), ev.get("log_z", [])):
        if it == iteration:
            return None if v is None else v - truth
    if iteration == record.get("iterations") and record.get("log_z") is not None:
        return record["log_z"] - truth
    return None


def iterations_of(record: dict) -> list[int]:
    """The iterations at which ``record`` has a log Z estimate (evaluations and the final model)."""
    its = set((record.get("evaluations") or {}).get("iteration", []))
    if record.get("iterations"):
        its.add(int(record["iterations"]))
    return sorted(its)


def error_curves(records: Iterable[dict]) -> dict[str, dict[Row, dict[int, list[float]]]]:
    """target -> (sampler, budget) -> iteration -> the per-seed |errors| (seed order); records
    without a truth or without training are left out."""
    out: dict[str, dict[Row, dict[int, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    for r in sorted(records, key=lambda r: r.get("seed", 0)):
        if r.get("status", "ok") != "ok" or r.get("true_log_z") is None or not r.get("iterations"):
            continue
        per_it = out[r["target"]][(r["sampler"], str(r.get("budget")))]
        for it in iterations_of(r):
            e = error_at(r, it)
            if e is not None:
                per_it.setdefault(it, []).append(abs(e))
    return {t: dict(rows) for t, rows in out.items()}


def cell(values: Sequence[float]) -> str:
    """'mean ± std (n)' of |errors| over seeds ('mean (1)' for one seed, '' for none)."""
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.3f} (1)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)})"


def shared_iterations(rows: dict[Row, dict[int, list[float]]]) -> list[int]:
    """Iterations at which at least two rows have an estimate (all iterations if no two share one)."""
    count: dict[int, int] = defaultdict(int)
    for per_it in rows.values():
        for it in per_it:
            count[it] += 1
    shared = sorted(it for it, n in count.items() if n >= 2)
    return shared or sorted(count)


def _row_order(row: Row) -> tuple:
    from logz.bench.report import row_rank
    return (row_rank(row[0]), row[1])


def iteration_table(records: Sequence[dict], iterations: Optional[Sequence[int]] = None) -> list[str]:
    """Markdown lines: per target, one row per (sampler, budget) and one column per iteration,
    each cell the mean |log Z error| ± std over seeds (seeds in brackets) at that iteration.

    Args:
        iterations: the columns (default: every iteration at which two or more rows have an estimate).
    """
    from logz.bench.report import published_cell

    curves = error_curves(records)
    if not curves:
        return []
    lines = ["|log Z error| at equal training iterations: mean ± std over seeds (seeds in brackets), "
             "from each run's periodic evaluation at that iteration (2000 samples unless the budget "
             "says otherwise; the last column of a run may be its final model). Rows are "
             "sampler (budget); an empty cell: no evaluation of that run at that iteration.", ""]
    lines += budget_lines(records) + [""]
    for target in sorted(curves):
        rows = curves[target]
        cols = list(iterations) if iterations is not None else shared_iterations(rows)
        truth = next((r for r in records if r.get("target") == target and r.get("true_log_z") is not None), None)
        lines += [f"### {target}", ""]
        if truth:
            lines += [f"log Z = {truth['true_log_z']:.4f} ({truth.get('true_log_z_source', '?')})", ""]
        lines += ["| sampler (budget) | " + " | ".join(str(c) for c in cols) + " | published \\|error\\| |",
                  "|---|" + "---|" * (len(cols) + 1)]
        for row in sorted(rows, key=_row_order):
            lines.append(f"| {row[0]} ({row[1]}) | " + " | ".join(cell(rows[row].get(c, [])) for c in cols)
                         + f" | {published_cell(row[0], target)} |")
        lines.append("")
    from logz.bench.report import PUBLISHED_NOTE, SEQUENTIAL_PUBLISHED_NOTE

    sequential = {r.get("sampler") for r in records} & {"cmcd", "scld"}
    return lines + [f"- {PUBLISHED_NOTE}"] + ([f"- {SEQUENTIAL_PUBLISHED_NOTE}"] if sequential else []) + [""]


def budget_lines(records: Sequence[dict]) -> list[str]:
    """One markdown line per budget of the learned samplers' records: its most frequent description
    (records of one budget differ by their sampler's overrides) and how many others there are."""
    by_budget: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r.get("iterations"):
            by_budget[str(r.get("budget"))][r.get("budget_description") or "no description stored"] += 1
    lines = []
    for b, descriptions in sorted(by_budget.items()):
        (text, _), others = descriptions.most_common(1)[0], len(descriptions) - 1
        lines.append(f"- `{b}`: {text}" + (f" ({others} other description{'s' if others > 1 else ''} in "
                                             "these records: per-sampler overrides, or the budget as it "
                                             "was when they ran; each record keeps its own)" if others else ""))
    return lines


def write_comparison(dirs: Sequence[PathLike], out: PathLike, *, iterations: Optional[Sequence[int]] = None,
                     plots: bool = True) -> dict:
    """Write ``side_by_side.md`` (and ``errors_vs_iterations_<target>.png``) into ``out`` from the
    records of ``dirs``; returns {"markdown": path, "plots": [paths], "records": n}."""
    records = load_records(dirs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict = {"markdown": out / "side_by_side.md", "plots": [], "records": len(records)}
    table = iteration_table(records, iterations)
    text = "\n".join(["# Side by side at equal iterations", "",
                      "Result directories: " + ", ".join(f"`{d}`" for d in dirs), ""] +
                     (table or ["No record with a true log Z and training evaluations."]))
    if plots and table:
        from logz.bench.plots import error_vs_iterations_plot
        by_target: dict[str, list[dict]] = defaultdict(list)
        for r in records:
            by_target[r["target"]].append(r)
        for target, rs in sorted(by_target.items()):
            p = error_vs_iterations_plot(target, rs, out / f"errors_vs_iterations_{target}.png")
            if p is not None:
                paths["plots"].append(p)
        text += "\n## Plots\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in paths["plots"]) + "\n"
    save_atomic(paths["markdown"], lambda p: Path(p).write_text(text + "\n"))
    return paths


__all__ = ["load_records", "error_at", "iterations_of", "error_curves", "cell", "shared_iterations",
           "iteration_table", "budget_lines", "write_comparison"]
