"""PNG plots of a benchmark directory, from stored records and saved samples only.

- ``log_z_error.png``: |log Z error| per sampler and seed (± the estimate's stderr), the mean
  over seeds, and the published figure, one panel per target (log scale);
- ``training_<target>.png``: training loss and the running batch log Z estimate (minus the
  true log Z) per learned sampler, one line per seed;
- ``errors_vs_iterations_<target>.png``: |log Z error| of the periodic evaluations against the
  training iteration, every sampler in one panel (mean over seeds, range as a band);
- ``samples_<target>.png``: model samples (first two coordinates) over the density's
  contours (2-D targets) or over exact target samples (higher dimensions);
- ``energy_<target>.png``: histograms of the energy -log p~ of model and exact samples;
- ``modes_<target>.png``: per-mode occupation (Many-Well: per pair, the right-well fraction)
  of each sampler (mean over seeds, seed range as error bars) against the exact weights.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import torch

from logz.bench.runner import Cell, PathLike, ResultStore

MAX_POINTS = 1000


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    _plt().close(fig)
    return path


def _ok(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok"]


def _by(records: Sequence[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        out[r[key]].append(r)
    return dict(sorted(out.items()))


def log_z_error_plot(records: Sequence[dict], path: Path) -> Optional[Path]:
    """|log Z error| per sampler and seed, mean over seeds and published figure, a panel per target."""
    from logz.bench.report import published, row_rank

    per_target = {t: rs for t, rs in _by(_ok(records), "target").items()
                  if any(r.get("abs_error") is not None for r in rs)}
    if not per_target:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(per_target), figsize=(4.5 * len(per_target), 3.8), squeeze=False)
    for ax, (target, rs) in zip(axes[0], per_target.items()):
        samplers = sorted({r["sampler"] for r in rs}, key=row_rank)
        for i, s in enumerate(samplers):
            rows = [r for r in rs if r["sampler"] == s and r.get("abs_error") is not None]
            errs = [max(r["abs_error"], 1e-6) for r in rows]
            xs = [i + 0.08 * (j - (len(rows) - 1) / 2) for j in range(len(rows))]
            se = [r.get("stderr") or 0.0 for r in rows]
            ax.errorbar(xs, errs, yerr=[[min(e, s_) * 0.999 for e, s_ in zip(errs, se)], se], fmt="o",
                        ms=4, color="C0", alpha=0.8, label="logz, per seed" if i == 0 else None)
            if errs:
                ax.hlines(sum(errs) / len(errs), i - 0.25, i + 0.25, color="C0", lw=2,
                          label="logz, mean over seeds" if i == 0 else None)
            pub = published(s, target)
            if pub is not None:
                ax.plot([i], [pub["value"]], marker="x" if pub["verified"] else "+", ms=10, color="C3",
                        ls="none", label="published" if pub["verified"] else "published (unverified)")
        ax.set_xticks(range(len(samplers)), samplers, rotation=30)
        ax.set_yscale("log")
        ax.set_title(target)
        ax.set_ylabel("|log Z error|")
        ax.grid(alpha=0.3)
    handles = {lab: h for a in axes[0] for h, lab in zip(*a.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles),
               bbox_to_anchor=(0.5, -0.08))
    fig.suptitle("|log Z error| of the final model (x: published, +: published, unverified)")
    return _save(fig, path)


def training_plot(target: str, records: Sequence[dict], path: Path) -> Optional[Path]:
    """Loss and running batch log Z (minus the truth) per learned sampler, a line per seed."""
    per_sampler = {s: rs for s, rs in _by(_ok(records), "sampler").items()
                   if any(r.get("curves", {}).get("loss", {}).get("value") for r in rs)}
    if not per_sampler:
        return None
    plt = _plt()
    n = len(per_sampler)
    fig, axes = plt.subplots(2, n, figsize=(3.6 * n, 5.5), squeeze=False)
    for j, (sampler, rs) in enumerate(per_sampler.items()):
        for k, r in enumerate(rs):
            loss, blz = r["curves"]["loss"], r["curves"]["batch_log_z"]
            axes[0, j].plot(loss["iteration"], [math.nan if v is None else v for v in loss["value"]],
                            color=f"C{k}", lw=1, label=f"seed {r['seed']}")
            truth = r.get("true_log_z") or 0.0
            axes[1, j].plot(blz["iteration"], [math.nan if v is None else v - truth for v in blz["value"]],
                            color=f"C{k}", lw=1)
            ev = r.get("evaluations", {})
            if ev.get("iteration"):
                axes[1, j].plot(ev["iteration"], [math.nan if v is None else v - truth for v in ev["log_z"]],
                                "o", color=f"C{k}", ms=3)
        axes[0, j].set_title(sampler)
        axes[0, j].set_ylabel("loss")
        axes[1, j].axhline(0.0, color="k", lw=0.8)
        axes[1, j].set_ylabel("batch log Z - true" if rs[0].get("true_log_z") is not None else "batch log Z")
        axes[1, j].set_xlabel("iteration")
        for a in axes[:, j]:
            a.grid(alpha=0.3)
        axes[0, j].legend(fontsize=7)
    fig.suptitle(f"training curves, {target}")
    fig.tight_layout()
    return _save(fig, path)


def error_vs_iterations_plot(target: str, records: Sequence[dict], path: Path) -> Optional[Path]:
    """|log Z error| against training iterations, every (sampler, budget) in one panel: the mean
    over seeds at each evaluation (line), the range over seeds (band), the published figure
    (dotted, where there is one). ``training_plot`` draws each seed's running batch estimate per
    sampler; this one sets the samplers against each other, so a reader sees where a budget stops."""
    from logz.bench.compare import error_curves
    from logz.bench.report import published, row_rank

    rows = error_curves(_ok(records)).get(target, {})
    if not any(len(per_it) >= 2 for per_it in rows.values()):  # no periodic evaluations: no curve
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for k, ((sampler, budget), per_it) in enumerate(sorted(rows.items(), key=lambda kv: (row_rank(kv[0][0]), kv[0][1]))):
        its = sorted(per_it)
        vals = [[max(v, 1e-6) for v in per_it[i]] for i in its]
        seeds = max(len(v) for v in vals)
        ax.plot(its, [sum(v) / len(v) for v in vals], "o-", ms=3, color=f"C{k}",
                label=f"{sampler} ({budget}, {seeds} seed{'s' if seeds > 1 else ''})")
        if seeds > 1:
            ax.fill_between(its, [min(v) for v in vals], [max(v) for v in vals], color=f"C{k}", alpha=0.15, lw=0)
        pub = published(sampler, target)
        if pub is not None:
            ax.axhline(pub["value"], color=f"C{k}", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("|log Z error|")
    ax.set_title(f"{target}: |log Z error| vs iterations (mean over seeds, band: range; dotted: published)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _load_samples(store: ResultStore, r: dict) -> Optional[dict]:
    p = store.samples_path(Cell(r["target"], r["sampler"], int(r["seed"])))
    return torch.load(p, weights_only=True) if p.is_file() else None


def _first_seed(rs: Sequence[dict], store: ResultStore) -> dict[str, dict]:
    out = {}
    for sampler, rows in _by(_ok(rs), "sampler").items():
        for r in sorted(rows, key=lambda r: r["seed"]):
            data = _load_samples(store, r)
            if data is not None:
                out[sampler] = {"seed": r["seed"], **data}
                break
    return out


def _limits(x: torch.Tensor) -> tuple[float, float, float, float]:
    finite = x[torch.isfinite(x).all(1)]
    lo, hi = torch.quantile(finite[:, :2].double(), 0.005, 0), torch.quantile(finite[:, :2].double(), 0.995, 0)
    pad = 0.15 * (hi - lo) + 1e-3
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def samples_plot(target_name: str, records: Sequence[dict], store: ResultStore, path: Path) -> Optional[Path]:
    """Model samples (first two coordinates) over density contours (2-D) or exact samples."""
    from logz import targets

    data = _first_seed(records, store)
    data = {s: d for s, d in data.items() if d["x"].shape[1] >= 2}
    if not data:
        return None
    target = targets.get(target_name)
    exact = next((d["exact"] for d in data.values() if d.get("exact") is not None), None)
    ref = exact if exact is not None else next(iter(data.values()))["x"]
    x0, x1, y0, y1 = _limits(ref)
    plt = _plt()
    n = len(data)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False)
    grid = None
    if target.dim == 2:
        gx, gy = torch.meshgrid(torch.linspace(x0, x1, 150), torch.linspace(y0, y1, 150), indexing="xy")
        with torch.no_grad():
            lp = target.log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).reshape(gx.shape)
        grid = (gx, gy, lp.clamp_min(float(lp.max()) - 30.0))
    for ax, (sampler, d) in zip(axes[0], data.items()):
        if grid is not None:
            ax.contour(grid[0], grid[1], grid[2], levels=12, cmap="Greys", linewidths=0.6)
        elif exact is not None:
            ax.scatter(exact[:MAX_POINTS, 0], exact[:MAX_POINTS, 1], s=2, color="0.6", alpha=0.5, label="exact")
        x = d["x"][:MAX_POINTS]
        ax.scatter(x[:, 0], x[:, 1], s=2, color="C0", alpha=0.6, label="model")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"{sampler} (seed {d['seed']})", fontsize=9)
        ax.set_xlabel("x[0]")
    axes[0, 0].set_ylabel("x[1]")
    what = "density contours" if grid is not None else ("exact samples (grey)" if exact is not None else "")
    fig.suptitle(f"{target_name}: model samples over {what}".rstrip(" over "))
    fig.tight_layout()
    return _save(fig, path)


def energy_plot(target_name: str, records: Sequence[dict], store: ResultStore, path: Path) -> Optional[Path]:
    """Histograms of -log p~ for model samples of each sampler and for exact samples."""
    data = _first_seed(records, store)
    if not data:
        return None
    exact = next((d["energy_exact"] for d in data.values() if d.get("energy_exact") is not None), None)
    ref = exact if exact is not None else torch.cat([d["energy"] for d in data.values()])
    ref = ref[torch.isfinite(ref)].double()
    if ref.numel() < 2:
        return None
    lo, hi = float(torch.quantile(ref, 0.001)), float(torch.quantile(ref, 0.995))
    pad = 0.25 * (hi - lo) + 1e-3
    bins = torch.linspace(lo - pad, hi + pad, 60).tolist()
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    if exact is not None:
        ax.hist(exact.numpy(), bins=bins, density=True, color="0.7", label="exact samples")  # range: exact
    for k, (sampler, d) in enumerate(data.items()):
        e = d["energy"][torch.isfinite(d["energy"])]
        inside = e[(e >= bins[0]) & (e <= bins[-1])]
        share = f", {inside.numel() / max(d['energy'].numel(), 1):.0%} in range"
        if inside.numel() == 0:  # nothing to draw: say so in the legend
            ax.plot([], [], color=f"C{k}", label=f"{sampler} (seed {d['seed']}{share})")
            continue
        ax.hist(inside.numpy(), bins=bins, histtype="step", lw=1.4, color=f"C{k}",
                weights=torch.full((inside.numel(),), 1.0 / (e.numel() * (bins[1] - bins[0]))).numpy(),
                label=f"{sampler} (seed {d['seed']}{share})")
    ax.set_xlabel("energy  -log p~(x)")
    ax.set_ylabel("density")
    ax.set_title(f"{target_name}: energy histograms (fraction of samples in range in the legend)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def mode_plot(target_name: str, records: Sequence[dict], path: Path) -> Optional[Path]:
    """Per-mode occupation of each sampler against the exact weights (from the records' metrics)."""
    rows = [r for r in _ok(records) if r.get("metrics", {}).get("mode_coverage", {}).get("fractions")]
    if not rows:
        return None
    from logz.bench.report import mode_fractions, mode_kind

    plt = _plt()
    by_sampler = mode_fractions(rows)
    expected = rows[0]["metrics"]["mode_coverage"]["expected"]
    K = len(expected)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * K + 2), 3.6))
    width = 0.8 / max(len(by_sampler), 1)
    for k, (sampler, f) in enumerate(by_sampler.items()):
        mean, lo, hi = f.mean(0), f.min(0).values, f.max(0).values
        pos = torch.arange(K) - 0.4 + width * (k + 0.5)
        ax.bar(pos.numpy(), mean.numpy(), width=width, color=f"C{k}", alpha=0.8,
               yerr=torch.stack([mean - lo, hi - mean]).numpy(), capsize=1.5,
               label=f"{sampler} ({len(f)} seed{'s' if len(f) > 1 else ''})")
    p = torch.tensor(expected, dtype=torch.float64)
    se = torch.tensor([r["metrics"]["mode_coverage"]["fraction_stderr"] for r in rows],
                      dtype=torch.float64).pow(2).mean(0).sqrt()  # a typical seed's binomial stderr
    ax.errorbar(torch.arange(K).numpy(), p.numpy(), xerr=0.45, yerr=(2 * se).numpy(), fmt="none",
                ecolor="k", lw=1.2, label="exact (± 2 binomial stderr)")
    many_well = mode_kind(rows[0]) == "wells"
    labels = rows[0]["metrics"]["mode_coverage"].get("labels")  # e.g. the Funnel's x0 bands
    if labels:
        ax.set_xticks(range(K), labels=labels, fontsize=7)
    else:
        ax.set_xticks(range(K))
    ax.set_xlabel("double-well pair" if many_well else "" if labels else "mode")
    ax.set_ylabel("fraction in the right well" if many_well else "fraction of samples")
    ax.set_title(f"{target_name}: mode occupation vs exact weights (bars: mean over seeds, range)", fontsize=9)
    ax.legend(fontsize=7, ncol=len(by_sampler) + 1, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    return _save(fig, path)


def make_plots(records: Sequence[dict], out: PathLike) -> list[Path]:
    """Every plot of the module for the given records, written as PNG into ``out``; returns the paths."""
    out = Path(out)
    store = ResultStore(out)
    paths = [log_z_error_plot(records, out / "log_z_error.png")]
    for target, rs in _by(records, "target").items():
        paths.append(training_plot(target, rs, out / f"training_{target}.png"))
        paths.append(error_vs_iterations_plot(target, rs, out / f"errors_vs_iterations_{target}.png"))
        paths.append(samples_plot(target, rs, store, out / f"samples_{target}.png"))
        paths.append(energy_plot(target, rs, store, out / f"energy_{target}.png"))
        paths.append(mode_plot(target, rs, out / f"modes_{target}.png"))
    return [p for p in paths if p is not None]


__all__ = ["make_plots", "log_z_error_plot", "training_plot", "error_vs_iterations_plot", "samples_plot", "energy_plot", "mode_plot"]
