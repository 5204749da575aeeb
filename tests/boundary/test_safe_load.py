"""Loading never runs code: a rank's result file carrying a pickled call is refused by
``run_local`` and the call does not happen."""

from __future__ import annotations

import os
import pickle

import pytest

from logz.distributed import run_local


class _Payload:
    """Unpickling this object would call os.mkdir(path): code run by a load."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _crafted(shard, path: str):
    return {"looks": "harmless", "payload": _Payload(path)}


def test_run_local_refuses_a_result_that_would_run_code(tmp_path):
    marker = tmp_path / "created_by_the_payload"
    with pytest.raises(pickle.UnpicklingError):
        run_local(_crafted, 1, str(marker), timeout_s=60)
    assert not marker.exists()

