"""One intra-op thread for the theory room's many tiny tensor ops.

The Gaussian laboratory does thousands of d x d products with d <= ~100. On a loaded
2-core machine torch's intra-op pool makes each one cost milliseconds (measured: 13 ms
vs 10 us for a 20 x 20 float64 matmul at load 5), so the heavy entry points run with
one thread and restore the caller's setting afterwards.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch


@contextmanager
def single_thread():
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def single_threaded(fn):
    """Decorator form of ``single_thread``."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_thread():
            return fn(*args, **kwargs)
    return wrapper
