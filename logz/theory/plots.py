"""Plots of a ``CheckResult``: W2 vs K with the bound, each error term, W2 vs d.

Each function draws on a given matplotlib Axes (the notebook passes pyplot axes, so the
figures render inline) or, without one, on a new ``matplotlib.figure.Figure`` that needs
no GUI backend (safe in tests and on headless machines). ``save_check_plots`` writes PNGs.
"""

from __future__ import annotations

import os
from typing import Optional

from logz.theory.check import CheckResult


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    return fig, fig.add_subplot()


def _group(result: CheckResult, dim: Optional[int], M: Optional[float]):
    dims = sorted({r.dim for r in result.rows})
    Ms = sorted({r.M for r in result.rows})
    dim = dims[-1] if dim is None else dim
    M = Ms[-1] if M is None else M
    rows = [r for r in result.rows if r.dim == dim and r.M == M]
    if not rows:
        raise ValueError(f"no rows with dim={dim}, M={M}")
    return rows, dim, M


def plot_w2_vs_steps(result: CheckResult, ax=None, dim: Optional[int] = None, M: Optional[float] = None):
    """Measured W2 (total and discretization part) and the bound against K, log-log."""
    fig, ax = _axes(ax)
    rows, dim, M = _group(result, dim, M)
    K = [r.K for r in rows]
    ax.loglog(K, [r.w2 for r in rows], "o-", label="measured W2(output, p0)")
    ax.loglog(K, [r.w2_disc for r in rows], "s--", label="measured discretization error")
    if rows[0].bound is not None:
        ax.loglog(K, [r.bound for r in rows], "k-", lw=2, label="bound")
        ax.loglog(K, [r.bound_paper for r in rows], "k:", label="bound, global L1 (paper form)")
    order = result.order
    ref = [rows[0].w2_disc * (K[0] / k) ** order for k in K]
    ax.loglog(K, ref, color="gray", lw=0.8, label=f"slope -{order}")
    ax.set_xlabel("steps K")
    ax.set_ylabel("W2")
    ax.set_title(f"{result.schedule}, {result.method}, d={dim}, M={M:g}")
    ax.legend(fontsize=8)
    return fig


def plot_error_terms(result: CheckResult, ax=None, dim: Optional[int] = None, M: Optional[float] = None):
    """The bound's three terms and the measured counterparts against K."""
    fig, ax = _axes(ax)
    rows, dim, M = _group(result, dim, M)
    K = [r.K for r in rows]
    for name, color in (("init", "C0"), ("disc", "C1"), ("score", "C2")):
        meas = [getattr(r, f"w2_{name}") for r in rows]
        if any(v > 0 for v in meas):
            ax.loglog(K, meas, "o--", color=color, label=f"measured {name}")
        if rows[0].bound is not None:
            bnd = [getattr(r, f"bound_{name}") for r in rows]
            if any(v > 0 for v in bnd):
                ax.loglog(K, bnd, "-", color=color, lw=2, label=f"bound {name}")
    ax.set_xlabel("steps K")
    ax.set_ylabel("W2 contribution")
    ax.set_title(f"error terms: {result.schedule}, d={dim}, M={M:g}")
    ax.legend(fontsize=8)
    return fig


def plot_w2_vs_dim(result: CheckResult, ax=None, K: Optional[int] = None, M: Optional[float] = None):
    """Measured W2 and the bound against d at one K (slope 1/2 is the sqrt(d) law)."""
    fig, ax = _axes(ax)
    K = max(r.K for r in result.rows) if K is None else K
    M = sorted({r.M for r in result.rows})[-1] if M is None else M
    rows = sorted((r for r in result.rows if r.K == K and r.M == M), key=lambda r: r.dim)
    d = [r.dim for r in rows]
    ax.loglog(d, [r.w2 for r in rows], "o-", label="measured W2")
    ax.loglog(d, [r.w2_disc for r in rows], "s--", label="measured discretization error")
    if rows and rows[0].bound is not None:
        ax.loglog(d, [r.bound for r in rows], "k-", lw=2, label="bound")
    if rows:
        ax.loglog(d, [rows[0].w2_disc * (x / d[0]) ** 0.5 for x in d], color="gray", lw=0.8,
                  label="slope 1/2")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("W2")
    ax.set_title(f"dimension dependence: {result.schedule}, K={K}, M={M:g}")
    ax.legend(fontsize=8)
    return fig


def save_check_plots(result: CheckResult, out_dir) -> list[str]:
    """Write w2_vs_steps.png, error_terms.png (and w2_vs_dim.png with several d) to out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    figs = {"w2_vs_steps.png": plot_w2_vs_steps(result), "error_terms.png": plot_error_terms(result)}
    if len({r.dim for r in result.rows}) > 1:
        figs["w2_vs_dim.png"] = plot_w2_vs_dim(result)
    paths = []
    for name, fig in figs.items():
        path = os.path.join(str(out_dir), name)
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths
