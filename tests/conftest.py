import os

import pytest
import torch

# Two pytest-xdist workers share 2 cores: one intra-op thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


def pytest_collection_modifyitems(config, items):
    """Mark notebooks slow only if they are not run via --nbmake explicitly."""
