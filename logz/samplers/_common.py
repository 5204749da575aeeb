"""Small helpers shared by the path-space samplers (PIS, DDS, DGFS): argument checks,
dtype names, log-mean-exp, and the generator plumbing of their estimators."""

from __future__ import annotations

import math
from typing import Any, Optional, Union

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


def _log_mean_exp(x: Tensor) -> Tensor:
    return torch.logsumexp(x, 0) - math.log(x.shape[0])


def _has_exact_samples(target) -> bool:
    return bool(getattr(target, "has_exact_samples", False)) and callable(getattr(target, "sample", None))


def _cpu_generator(gen: torch.Generator) -> torch.Generator:
    """A CPU generator seeded from ``gen`` (targets draw their samples on the CPU)."""
    seed = int(torch.randint(0, 2 ** 62, (1,), generator=gen, device=gen.device))
    return torch.Generator().manual_seed(seed)


def progress_disabled(progress: Optional[bool], is_main: bool = True) -> Optional[bool]:
    """tqdm's ``disable`` for a ``progress`` option: None (the default of the estimates) shows the
    bar when stderr is a terminal, so an interactive run over a few seconds shows its progress
    and logs stay clean; True / False force it. Only the main process draws."""
    if not is_main or progress is False:
        return True
    return None if progress is None else False
