"""The SDE core takes its noise from the caller (``integrate(noise=...)``) and knows nothing
of process groups: ``import logz.sde`` does not import ``logz.distributed``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from logz.distributed import Shard
from logz.sde import BrownianReference, gaussian_noise, integrate, uniform_grid


def test_import_logz_sde_does_not_import_logz_distributed():
    code = "import sys, logz.sde; print('logz.distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_default_noise_is_the_generators_draw(dtype):
    ref, times = BrownianReference(1.0), uniform_grid(1.0, 5, dtype=dtype)
    x0 = torch.zeros(4, 3, dtype=dtype)
    a = integrate(ref, x0, times, generator=torch.Generator().manual_seed(3))
    b = integrate(ref, x0, times, noise=gaussian_noise(torch.Generator().manual_seed(3)))
    c = integrate(ref, x0, times, noise=Shard().noise(torch.Generator().manual_seed(3)))
    torch.testing.assert_close(a.states, b.states, rtol=0, atol=0)
    torch.testing.assert_close(a.states, c.states, rtol=0, atol=0)


def test_a_custom_noise_source_drives_the_increments(dtype):
    """Zero noise: the uncontrolled Brownian path stays at x_0; the source is called once per
    step with the batch's shape."""
    calls = []

    def zeros(shape, dt, device):
        calls.append(tuple(shape))
        return torch.zeros(shape, dtype=dt, device=device)

    tr = integrate(BrownianReference(1.0), torch.ones(4, 3, dtype=dtype), uniform_grid(1.0, 5, dtype=dtype),
                   noise=zeros)
    assert calls == [(4, 3)] * 5
    torch.testing.assert_close(tr.final, torch.ones(4, 3, dtype=dtype))


def test_generator_and_noise_together_is_an_error():
    with pytest.raises(ValueError, match="either generator= or noise="):
        integrate(BrownianReference(1.0), torch.zeros(2, 1), uniform_grid(1.0, 2),
                  generator=torch.Generator(), noise=gaussian_noise())
