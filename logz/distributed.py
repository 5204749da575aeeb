"""Data parallelism over processes with torch.distributed: one ``Shard`` per process.

logz does not write a distributed engine; it needs four things from torch.distributed, and
``Shard`` gathers them behind one small object that every sampler holds (a single process
holds ``SINGLE``, on which every method is the identity or plain torch, so the one code path
serves both):

1. **World-size-independent randomness.** Every rank draws the noise of the WHOLE batch from
   one generator seeded identically on every rank, and keeps its own rows
   (``Shard.randn``): path i sees the same increments whatever the number of processes, so a
   run on 4 ranks equals a run on 1 with the same global batch and seed (up to float
   rounding). Drawing the global noise costs every rank B_global x dim normal draws per
   step, small next to the network's work on its B_local rows.
2. **Global losses from local paths.** ``Shard.gather`` all-gathers per-path tensors along
   the batch dimension, so every rank computes the SAME global loss (VarGrad's batch mean,
   TB, SubTB are not sums of per-rank terms). Its backward needs no communication: the
   upstream gradient is identical on every rank, so a rank's share is its own slice, scaled
   by the world size so that averaging gradients over ranks (``average_gradients``, one
   flat all-reduce, what DistributedDataParallel does) gives exactly the global gradient,
   also for parameters that enter the loss directly (TB's learned log Z).
3. **Errors on every rank, never a hang.** A rank that fails before a collective (a target
   returning NaN on its paths, a missing checkpoint file) would leave the others waiting.
   Code that may fail on one rank runs under ``Shard.guard()``; every ``gather`` starts
   with a tiny status all-reduce (``agree``), so the failure reaches every rank as a
   ``PeerError`` naming the failed rank and its message.
4. **Consistency checks.** ``check_same`` compares a value (a configuration fingerprint,
   a seed) across ranks and raises on every rank if they differ.

Launch with ``torchrun --nproc_per_node N -m logz run ...``: ``init_from_env`` reads the
torchrun environment (backend NCCL on CUDA, gloo on CPU) and samplers built afterwards pick
up ``current_shard()``.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import Tensor


class PeerError(RuntimeError):
    """Another rank failed; raised on the ranks that did not (the message names the rank)."""


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel group.

    Attributes:
        rank: this process's index in [0, world_size).
        world_size: number of processes sharing every batch.
        group: the torch.distributed process group (None: the default group).
    """

    rank: int = 0
    world_size: int = 1
    group: Any = None

    def __post_init__(self):
        if not (isinstance(self.world_size, int) and self.world_size >= 1
                and isinstance(self.rank, int) and 0 <= self.rank < self.world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={self.rank!r}, "
                             f"world_size={self.world_size!r}")

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, writes checkpoints and reports."""
        return self.rank == 0

    # --- sizes and randomness -----------------------------------------------------------
    def local_size(self, n: int, what: str = "batch_size") -> int:
        """This rank's share of ``n`` rows; ValueError unless the world size divides ``n``."""
        if n % self.world_size:
            raise ValueError(f"{what} = {n} is not divisible by the world size {self.world_size}: "
                             f"every rank must simulate the same number of paths (choose a multiple "
                             f"of {self.world_size})")
        return n // self.world_size

    def rows(self, n_local: int) -> slice:
        """This rank's rows of a global tensor whose batch dimension has n_local * world_size rows."""
        return slice(self.rank * n_local, (self.rank + 1) * n_local)

    def randn(self, shape: Iterable[int], *, generator: Optional[torch.Generator] = None,
              dtype: Optional[torch.dtype] = None, device=None, dim: int = 0) -> Tensor:
        """Standard normals of the LOCAL ``shape``, taken from the global draw.

        Draws ``shape`` with ``shape[dim] * world_size`` rows and keeps this rank's rows, so
        each row's values do not depend on the world size (``generator`` must be seeded the
        same on every rank). One process: exactly ``torch.randn(shape)``.
        """
        return self._draw(torch.randn, shape, generator, dtype, device, dim)

    def noise(self, generator: Optional[torch.Generator] = None):
        """A ``logz.sde.Noise`` source for ``integrate(noise=...)``: each call draws this rank's
        rows of the whole batch's standard normals (``randn``), so a path's increments do not
        depend on the number of processes."""
        def draw(shape, dtype, device) -> Tensor:
            return self.randn(shape, generator=generator, dtype=dtype, device=device)
        return draw

    def rand(self, shape: Iterable[int], *, generator: Optional[torch.Generator] = None,
             dtype: Optional[torch.dtype] = None, device=None, dim: int = 0) -> Tensor:
        """Uniforms on [0, 1), like ``randn``."""
        return self._draw(torch.rand, shape, generator, dtype, device, dim)

    def _draw(self, fn, shape, generator, dtype, device, dim) -> Tensor:
        shape = list(shape)
        if not self.active:
            return fn(shape, generator=generator, dtype=dtype, device=device)
        n_local = shape[dim]
        shape[dim] = n_local * self.world_size
        return fn(shape, generator=generator, dtype=dtype, device=device).narrow(
            dim, self.rank * n_local, n_local)

    # --- collectives --------------------------------------------------------------------
    def gather(self, x: Tensor, dim: int = 0) -> Tensor:
        """All ranks' ``x`` concatenated along ``dim`` (rank order), differentiable.

        Every rank gets the same tensor. The backward pass returns this rank's slice of the
        (identical on every rank) upstream gradient times the world size, so that
        ``average_gradients`` yields the gradient of the global loss (module docstring).
        One process: ``x`` itself.
        """
        if not self.active:
            return x
        self.agree()
        return _Gather.apply(x, dim, self)

    def sum(self, x: Tensor) -> Tensor:
        """Sum of ``x`` over ranks (a new tensor, no gradient)."""
        if not self.active:
            return x
        out = x.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=self.group)
        return out

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average ``.grad`` over ranks in one flat all-reduce (missing grads count as 0)."""
        if not self.active:
            return
        params = list(params)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        flat /= self.world_size
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def agree(self, error: Optional[BaseException] = None) -> None:
        """Collective status check: every rank calls it; if any rank passes an ``error``,
        every rank raises (that rank its own error, the others a ``PeerError`` naming it)."""
        if not self.active:
            if error is not None:
                raise error
            return
        flags = torch.zeros(self.world_size, dtype=torch.int32, device=self._device())
        flags[self.rank] = int(error is not None)
        dist.all_reduce(flags, op=dist.ReduceOp.SUM, group=self.group)
        failed = flags.nonzero().flatten().tolist()
        if not failed:
            return
        messages: list = [None] * self.world_size
        mine = None if error is None else f"{type(error).__name__}: {error}"
        dist.all_gather_object(messages, mine, group=self.group)
        if error is not None:
            raise error
        first = failed[0]
        raise PeerError(f"rank {first} of {self.world_size} failed"
                        + (f" (and ranks {failed[1:]})" if len(failed) > 1 else "")
                        + f": {messages[first]}")

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run code that may fail on some ranks only: a failure is announced to the others
        (through ``agree``, which their next ``gather`` or ``agree`` performs) and re-raised."""
        if not self.active:
            yield
            return
        try:
            yield
        except PeerError:
            raise
        except Exception as err:
            if getattr(err, "_logz_announced", False):
                raise
            err._logz_announced = True  # type: ignore[attr-defined]
            self.agree(err)
            raise

    def check_same(self, what: str, value: Any) -> None:
        """Raise on every rank unless ``value`` (anything with a stable ``repr``) is equal on
        all ranks; the message shows each rank's value."""
        if not self.active:
            return
        digest = hashlib.sha256(repr(value).encode()).hexdigest()
        digests: list = [None] * self.world_size
        dist.all_gather_object(digests, digest, group=self.group)
        if len(set(digests)) == 1:
            return
        values: list = [None] * self.world_size
        dist.all_gather_object(values, repr(value)[:300], group=self.group)
        detail = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
        raise ValueError(f"{what} differs across ranks (every rank must be launched with the same "
                         f"configuration and seed): {detail}")

    def barrier(self) -> None:
        if self.active:
            dist.barrier(group=self.group)

    def _device(self) -> torch.device:
        backend = dist.get_backend(self.group)
        if backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def derive_seed(self, seed: int) -> int:
        """A per-rank seed from one seed (for randomness that is rank-local by design, e.g.
        replay-buffer draws); ``seed`` itself on a single process."""
        if not self.active:
            return int(seed)
        h = hashlib.sha256(f"logz-rank-seed/{int(seed)}/{self.rank}".encode()).digest()
        return int.from_bytes(h[:7], "little")


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dim: int, shard: Shard) -> Tensor:
        ctx.dim, ctx.shard, ctx.n = dim, shard, x.shape[dim]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(shard.world_size)]
        dist.all_gather(parts, x, group=shard.group)
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad: Tensor):
        s: Shard = ctx.shard
        return grad.narrow(ctx.dim, s.rank * ctx.n, ctx.n) * s.world_size, None, None


SINGLE = Shard()
"""The one-process shard: every collective is the identity."""


def current_shard() -> Shard:
    """The default process group as a ``Shard`` if torch.distributed is initialised, else ``SINGLE``."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return SINGLE


def resolve(shard: Optional[Shard]) -> Shard:
    """``shard`` if given, else ``current_shard()``."""
    if shard is None:
        return current_shard()
    if not isinstance(shard, Shard):
        raise ValueError(f"shard must be a logz.distributed.Shard or None, got {type(shard).__name__}")
    return shard


def init_from_env(backend: Optional[str] = None, timeout_s: float = 600.0) -> Shard:
    """Initialise torch.distributed from the torchrun environment (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT) and return the ``Shard``; ``SINGLE`` when WORLD_SIZE is unset
    or 1. ``backend``: default NCCL if CUDA is available, else gloo. On CUDA each rank uses
    the device LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return current_shard()


def default_device(shard: Shard) -> torch.device:
    """This rank's CUDA device (LOCAL_RANK) when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if shard.active else 0)
    return torch.device("cpu")


def run_local(fn, world_size: int, *args: Any, backend: str = "gloo", timeout_s: float = 300.0) -> list:
    """Run ``fn(shard, *args)`` on ``world_size`` local processes (a fresh gloo group) and
    return each rank's return value, in rank order: for tests, notebooks and trying
    distributed code on one machine. ``fn`` must be a module-level (picklable) function;
    its return values travel through ``torch.save`` and are loaded with ``weights_only=True``
    (tensors, numbers, strings, dicts, lists, tuples: loading never runs code).
    An exception on any rank is re-raised here with that rank's traceback."""
    import tempfile

    import torch.multiprocessing as mp

    if not (isinstance(world_size, int) and world_size >= 1):
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    with tempfile.TemporaryDirectory(prefix="logz-dist-") as tmp:
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_run_rank, args=(fn, r, world_size, tmp, backend, timeout_s, args))
                 for r in range(world_size)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout_s + 60)
        results = []
        for r, p in enumerate(procs):
            if p.is_alive():
                p.kill()
                raise RuntimeError(f"rank {r} did not finish within {timeout_s + 60:.0f} s")
            out = os.path.join(tmp, f"rank{r}.pt")
            if not os.path.exists(out):
                raise RuntimeError(f"rank {r} exited with code {p.exitcode} and no result")
            res = torch.load(out, weights_only=True)  # loading never runs code
            if res["error"] is not None:
                raise RuntimeError(f"rank {r} failed:\n{res['error']}")
            results.append(res["value"])
        return results


def _run_rank(fn, rank: int, world_size: int, tmp: str, backend: str, timeout_s: float, args) -> None:
    import traceback

    torch.set_num_threads(1)
    value, error = None, None
    try:
        dist.init_process_group(backend, init_method=f"file://{os.path.join(tmp, 'store')}",
                                rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
        try:
            value = fn(Shard(rank, world_size), *args)
        finally:
            dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - reported to the parent with its traceback
        error = traceback.format_exc()
    torch.save({"value": value, "error": error}, os.path.join(tmp, f"rank{rank}.pt"))
