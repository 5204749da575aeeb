"""Small helpers shared by the path-space samplers (PIS, DDS, DGFS): argument checks,
dtype names, log-mean-exp, and the generator / gather plumbing of their estimators."""

from __future__ import annotations

import math
from typing import Any, Union

import torch
from torch import Tensor

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _as_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = _DTYPES.get(dtype.replace("torch.", ""), dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _check(name: str, ok: bool, value: Any, what: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and int(v) == v


def _batch_major(gathered: Tensor, sizes: list, world: int) -> Tensor:
    """Rows gathered rank by rank ([rank 0: its batches..., rank 1: ...]) regrouped batch by
    batch ([batch 0: rank 0, rank 1, ...; batch 1: ...]): the order of the one-process run,
    whose k-th evaluation batch is the k-th draw of the generator."""
    local = sum(sizes)
    per_rank = gathered.split(local)
    parts = []
    offset = 0
    for n in sizes:
        parts.extend(p[offset:offset + n] for p in per_rank)
        offset += n
    return torch.cat(parts)


def _log_mean_exp(x: Tensor) -> Tensor:
    return torch.logsumexp(x, 0) - math.log(x.shape[0])


def _has_exact_samples(target) -> bool:
    return bool(getattr(target, "has_exact_samples", False)) and callable(getattr(target, "sample", None))


def _cpu_generator(gen: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``gen`` (targets draw their samples on the CPU)."""
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen, device=gen.device))
    return torch.Generator().manual_seed(seed)
