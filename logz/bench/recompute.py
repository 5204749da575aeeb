"""Recompute the sample metrics of finished benchmark cells from their saved samples.

A metric added (or mended) after a grid was run, e.g. the Funnel's x0-band occupation, need
not cost a re-training: every cell saved its evaluation samples (and the exact samples it was
compared with) in ``<out>/samples/<cell>.pt``, so the metric is computed again from those,
with the cell's own seed, and the cell's record is updated in place (``metrics_recomputed``
says which, when, and that the samples were the saved float32 copies). Command line::

    logz bench --out results/reference --recompute-metrics mode_coverage --targets funnel
"""

from __future__ import annotations

import datetime as _dt
from typing import Optional, Sequence

import torch

from logz.bench.runner import Cell, PathLike, ResultStore, _check_names, _compute_metrics, metric_names


def recompute_metrics(out: PathLike, metrics: Sequence[str], *, targets: Optional[Sequence[str]] = None,
                      samplers: Optional[Sequence[str]] = None) -> list[dict]:
    """Recompute ``metrics`` for every finished cell in ``out`` that saved its samples.

    Args:
        out: a ``logz bench`` output directory.
        metrics: metric names; each must be one the cell's run asked for (``metrics_requested``),
            so that resuming the same ``logz bench`` command still finds matching records.
        targets, samplers: restrict to these names (None: all).
    Returns:
        The updated records (cells without saved samples are left alone and not returned).
    """
    from logz import targets as T

    metrics = _check_names("metric", metrics, metric_names())
    store = ResultStore(out)
    updated = []
    for record in store.records():
        if record.get("status") != "ok" or (targets and record["target"] not in targets) \
                or (samplers and record["sampler"] not in samplers):
            continue
        cell = Cell(record["target"], record["sampler"], int(record["seed"]))
        path = store.samples_path(cell)
        if not path.is_file():
            continue
        missing = [m for m in metrics if m not in record.get("metrics_requested", [])]
        if missing:
            raise ValueError(f"{cell.id} was run without metric(s) {missing} (it asked for "
                             f"{record.get('metrics_requested')}); run those cells again instead")
        saved = torch.load(path, map_location="cpu", weights_only=True)
        x = saved["x"].double()
        exact = None if saved.get("exact") is None else saved["exact"].double()
        record["metrics"].update(_compute_metrics(metrics, x, exact, T.get(cell.target), cell.seed))
        record.setdefault("metrics_recomputed", []).append({
            "metrics": list(metrics), "from": "saved float32 samples",
            "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        store.save(record)
        updated.append(record)
    return updated


__all__ = ["recompute_metrics"]
