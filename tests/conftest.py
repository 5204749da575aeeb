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
