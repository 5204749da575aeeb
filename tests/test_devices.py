"""Every learned sampler, SMC/AIS and the integrator on each available device (CPU always,
CUDA when present: CI checks the CPU half of each test, the GPU machine both). Same code on
both, so the CPU run checks the test itself."""

import pytest
import torch

import logz
from logz import samplers
from logz.sde import BrownianReference, integrate, path_log_densities

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                               reason="needs a CUDA device"))]
LEARNED = ["pis", "dds", "dgfs", "dgfs_lv", "tb"]
SMALL = dict(hidden=8, layers=1, num_steps=8, batch_size=32, seed=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", LEARNED)
def test_learned_sampler_trains_estimates_and_checkpoints_on_device(tmp_path, device, name, dtype):
    target = logz.targets.get("gmm9")
    s = samplers.get(name, target, device=device, dtype=dtype, **SMALL)
    s.fit(2, progress=False)
    assert len(s.history.loss) == 2 and all(torch.isfinite(torch.tensor(s.history.loss)))
    x, log_w = s.log_weights(64)
    assert x.device.type == device and log_w.device.type == device
    assert x.dtype == dtype and log_w.shape == (64,) and bool(torch.isfinite(log_w).all())
    est = s.estimate_log_z(64)
    assert est.log_z == est.log_z and est.stderr >= 0  # a number, not NaN
    # a checkpoint written on this device loads into a CPU sampler of the same configuration
    s.save(tmp_path / "ckpt.pt")
    cpu = samplers.get(name, target, device="cpu", dtype=dtype, **SMALL)
    cpu.load(tmp_path / "ckpt.pt")
    for k, m in s.trainer.modules.items():
        for (pn, p), (_, q) in zip(m.state_dict().items(), cpu.trainer.modules[k].state_dict().items()):
            assert q.device.type == "cpu"
            torch.testing.assert_close(q, p.cpu(), rtol=0, atol=0, msg=f"{k}.{pn}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["smc", "ais"])
def test_smc_and_ais_on_device(device, name):
    target = logz.targets.get("gaussian")
    est = samplers.get(name, target, device=device, seed=0).estimate_log_z(256)
    assert abs(est.log_z - target.log_Z) < 5 * est.stderr + 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_kernel_log_densities_agree_across_devices(device, dtype):
    """The per-step log P_F / log P_B of one stored path are the same numbers on every device
    (float rounding apart): placement changes nothing but speed."""
    gen = torch.Generator().manual_seed(0)
    times = torch.linspace(0.0, 1.0, 9, dtype=dtype)
    traj = integrate(BrownianReference(1.0), torch.zeros(16, 3, dtype=dtype), times, generator=gen)
    control = lambda x, t: torch.sin(x) * t.reshape(-1, 1)  # noqa: E731
    ref = path_log_densities(BrownianReference(1.0), traj.states, times, control)
    got = path_log_densities(BrownianReference(1.0), traj.states.to(device), times.to(device), control)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b in zip(got, ref):
        assert a.device.type == device
        torch.testing.assert_close(a.cpu(), b, **tol)
