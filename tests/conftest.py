import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread per test: the tensors in tests are small, CI has 2 cores and
    `make test` runs two pytest-xdist workers, so more threads only oversubscribe (measured
    up to 20x slower on the shared machine). Restored after each test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


_HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def host_syncs():
    """``host_syncs(run) -> int``: how many times ``run()`` reads a tensor's value back to the
    host (``.item()``, ``.tolist()``, ``.cpu()``, ``.numpy()``, ``bool/float/int/index(t)``).
    On a GPU each of these waits for the device; on the CPU they are the same Python entry
    points, so counting them checks a GPU property without a GPU. ``run`` is called once
    uncounted first (lazy set-up is not the loop's)."""
    def count(run) -> int:
        run()
        calls = [0]
        originals = {name: getattr(torch.Tensor, name) for name in _HOST_READS}

        def spy_for(original):
            def spy(self, *args, **kwargs):
                calls[0] += 1
                return original(self, *args, **kwargs)
            return spy

        try:
            for name, original in originals.items():
                setattr(torch.Tensor, name, spy_for(original))
            run()
        finally:
            for name, original in originals.items():
                setattr(torch.Tensor, name, original)
        return calls[0]

    return count
