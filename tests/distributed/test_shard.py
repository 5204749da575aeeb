"""logz.distributed on 2 gloo processes: world-size-independent noise, differentiable gather,
error propagation without hangs, consistency checks."""

import pytest
import torch

from logz.distributed import SINGLE, PeerError, Shard, run_local


def _noise(shard: Shard):
    g = torch.Generator().manual_seed(3)
    return shard.randn((4, 3), generator=g), shard.rand((2, 5), generator=g, dim=1)


def test_randn_rows_do_not_depend_on_world_size():
    (a, b), = run_local(_noise, 1)
    parts = run_local(_noise, 2)
    g = torch.Generator().manual_seed(3)
    full_n, full_u = torch.randn(8, 3, generator=g), torch.rand(2, 10, generator=g)
    assert torch.equal(torch.cat([p[0] for p in parts]), full_n)
    assert torch.equal(torch.cat([p[1] for p in parts], dim=1), full_u)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(a, torch.randn(4, 3, generator=g))  # one process: plain randn


def _gather_grad(shard: Shard):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.tensor([0.5, -1.0], dtype=torch.float64))
    x_all = torch.randn(6, 2, dtype=torch.float64)
    x = x_all[shard.rows(6 // shard.world_size)]
    log_w = x @ w  # per-path, local
    g = shard.gather(log_w)
    # a global, non-separable loss, plus a parameter entering the loss directly
    loss = 0.5 * g.var() + (w.sum() - g.mean()) ** 2
    loss.backward()
    shard.average_gradients([w])
    return loss.detach(), w.grad.clone()


def test_gather_gives_the_global_gradient():
    (loss1, grad1), = run_local(_gather_grad, 1)
    res = run_local(_gather_grad, 2)
    for loss, grad in res:
        torch.testing.assert_close(loss, loss1)
        torch.testing.assert_close(grad, grad1)


def _fail_on_rank1(shard: Shard):
    try:
        with shard.guard():
            if shard.rank == 1:
                raise ValueError("target returned NaN on 3 paths")
            shard.gather(torch.ones(2))
    except (ValueError, PeerError) as err:
        return type(err).__name__, str(err)
    return "no error", ""


def test_a_failure_on_one_rank_reaches_every_rank():
    (k0, m0), (k1, m1) = run_local(_fail_on_rank1, 2, timeout_s=60)
    assert k1 == "ValueError" and "NaN" in m1
    assert k0 == "PeerError" and "rank 1" in m0 and "NaN" in m0


def _check(shard: Shard):
    try:
        shard.check_same("seed", 7 + shard.rank)
    except ValueError as err:
        return str(err)
    return ""


def test_mismatched_values_raise_on_every_rank():
    msgs = run_local(_check, 2, timeout_s=60)
    assert all("seed differs across ranks" in m and "rank 1: 8" in m for m in msgs)


def test_single_shard_is_plain_torch():
    x = torch.randn(3, requires_grad=True)
    assert SINGLE.gather(x) is x
    assert SINGLE.local_size(7) == 7
    with pytest.raises(ValueError, match="not divisible by the world size 2"):
        Shard(0, 2).local_size(7)
    with pytest.raises(ValueError, match="rank"):
        Shard(2, 2)
