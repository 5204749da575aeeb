"""Diagnostics figure of the GFlowNet-family samplers (``DGFS.plot``)."""

from __future__ import annotations

import torch

from logz.samplers.training import History


def diagnostics_figure(s, num_samples: int = 1000):
    """Training diagnostics of a trained DGFS-family sampler ``s`` (matplotlib ``Figure``, Agg
    canvas, never shown): loss, log Z curve (batch estimates, learned log Z, evaluations,
    exact value), ESS, and for 2-D targets ``num_samples`` samples over the density contours."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h: History = s.history
    two_d = s.dim == 2
    fig = Figure(figsize=(4.2 * (3 + two_d), 3.6), layout="constrained")
    FigureCanvasAgg(fig)  # Agg canvas: no GUI, no pyplot state
    ax_loss, ax_z, ax_ess, *rest = fig.subplots(1, 3 + two_d)
    its = range(1, len(h.loss) + 1)
    ax_loss.plot(its, h.loss, lw=0.8)
    if h.loss and min(h.loss) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set(title=f"{s.loss} loss", xlabel="iteration")
    ax_z.plot(its, h.log_z, lw=0.6, alpha=0.6, label="batch IS estimate")
    if "learned_log_z" in h.metrics:
        ax_z.plot(its, h.metrics["learned_log_z"], lw=0.8, label="learned log Z")
    if h.estimates:
        ax_z.errorbar(h.eval_iterations, [e.log_z for e in h.estimates],
                      yerr=[e.stderr for e in h.estimates], fmt="o", ms=3, label="evaluation")
        ax_ess.plot(h.eval_iterations, [e.ess for e in h.estimates], "o-", ms=3, label="evaluation")
    exact = getattr(s.target, "log_Z", None)
    if exact is not None:
        ax_z.axhline(exact, color="k", ls="--", lw=0.8, label="exact")
    ax_z.set(title="log Z", xlabel="iteration")
    ax_z.legend(fontsize=7)
    if "ess" in h.metrics:
        ax_ess.plot(its, h.metrics["ess"], lw=0.6, alpha=0.6, label="batch")
    ax_ess.set(title="normalised ESS", xlabel="iteration", ylim=(0, 1.05))
    ax_ess.legend(fontsize=7)
    if two_d:
        ax = rest[0]
        x = s.sample(num_samples).detach().double().cpu()
        lo = torch.minimum(x.quantile(0.005, 0), torch.full((2,), -3.0, dtype=x.dtype)) - 1
        hi = torch.maximum(x.quantile(0.995, 0), torch.full((2,), 3.0, dtype=x.dtype)) + 1
        g0, g1 = torch.linspace(float(lo[0]), float(hi[0]), 150), torch.linspace(float(lo[1]), float(hi[1]), 150)
        X, Y = torch.meshgrid(g0, g1, indexing="xy")
        with torch.no_grad():
            grid = torch.stack([X.flatten(), Y.flatten()], -1).to(s.device, s.dtype)
            lp = s.log_reward(grid).double().cpu().view(X.shape)
        ax.contour(X.numpy(), Y.numpy(), lp.clamp_min(float(lp.max()) - 30).numpy(), levels=20, linewidths=0.6)
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, alpha=0.4, color="C3")
        ax.set(title=f"{num_samples} samples", xlim=(float(lo[0]), float(hi[0])), ylim=(float(lo[1]), float(hi[1])))
    return fig
