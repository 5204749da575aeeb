"""No host synchronisation inside the time loop of the integrator, checked on the CPU.

On a GPU every ``.item()``, ``float(t)``, ``bool(t)`` (an ``if`` on a tensor), ``.tolist()`` or
``.cpu()`` waits for the device: one inside the time loop stalls the GPU once per step. The
``host_syncs`` fixture counts those calls; a simulation whose count does not change with the
number of steps reads nothing back inside its loop (the per-simulation reads of the grid's
constants happen once, before it).
"""

import pytest
import torch

from logz.sde import BrownianReference, VPReference, integrate, path_log_densities


@pytest.mark.parametrize("sde, scheme", [(BrownianReference(1.0), "euler"), (VPReference(), "exact")],
                         ids=["brownian-euler", "vp-exact"])
@pytest.mark.parametrize("keep_steps", [True, False], ids=["steps", "sums"])
def test_integrate_reads_nothing_back_per_step(host_syncs, sde, scheme, keep_steps):
    net = torch.nn.Linear(3, 2).double()
    control = lambda x, t: net(torch.cat([x, t.expand(x.shape[0], 1)], -1))  # noqa: E731

    def reads(n_steps):
        times = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
        x0 = torch.zeros(8, 2, dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        return host_syncs(lambda: integrate(sde, x0, times, control, scheme=scheme, generator=gen,
                                            keep_steps=keep_steps))

    assert reads(4) == reads(16)


def test_path_log_densities_reads_nothing_back_per_step(host_syncs):
    sde = BrownianReference(1.0)

    def reads(n_steps):
        times = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
        states = torch.randn(n_steps + 1, 8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        states[0] = 0.0
        return host_syncs(lambda: path_log_densities(sde, states, times, lambda x, t: x))

    assert reads(4) == reads(16)


def test_the_counter_sees_a_read_per_step(host_syncs):
    """The check above is not vacuous: a loop that branches on a tensor once per step is counted."""
    def loop(n_steps):
        x = torch.zeros(4)
        for _ in range(n_steps):
            if (x > 100).any():
                break
            x = x + 0.1
    assert host_syncs(lambda: loop(16)) - host_syncs(lambda: loop(4)) == 12


@pytest.mark.parametrize("method", ["euler", "heun", "rk4"])
def test_odeint_reads_nothing_back_per_step(host_syncs, method):
    from logz.sde import odeint

    def reads(n_steps):
        times = torch.linspace(0.0, 1.0, n_steps + 1, dtype=torch.float64)
        x0 = torch.ones(8, 2, dtype=torch.float64)
        return host_syncs(lambda: odeint(lambda x, t: -t * x, x0, times, method, keep_path=True))

    assert reads(4) == reads(16)
