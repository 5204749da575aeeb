"""Scale benchmark: PIS and DGFS training iterations/s at batch 256 / 1024 / 4096, N = 100,
hidden 64, on every available device, against the bare drift network.

For each (sampler, device, batch) one process measures, interleaved (``_timing``):

- ``train``: one full training iteration (simulation, loss, backward, Adam step);
- ``bare drift``: the drift network alone, forward on the batch at each of the N steps
  (one graph, as the training step builds it) and one backward: the floor that no
  integration loop can beat; ``overhead = bare / train`` time ratio (issue: < 2x);
- for DGFS also ``bare nets``: the drift as above plus the log-flow network's forward and
  backward on all N x B states (DGFS evaluates both networks every iteration).

Rows on CUDA also give the speed-up over the CPU row of the same sampler and batch.
Run as a script to print (and with ``--markdown FILE`` append) the table:

    python benchmarks/bench_scale.py --devices cpu cuda --batches 256 1024 4096

``make bench`` runs the pytest-benchmark entry below (CPU, batch 256).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys

import torch

from logz import samplers
from logz.targets.funnel import Funnel
from _timing import interleaved_rates  # noqa: E402  (benchmarks/ is on sys.path)

STEPS, HIDDEN = 100, 64


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(name: str, batch: int, device: str):
    target = Funnel()
    return samplers.get(name, target, batch_size=batch, num_steps=STEPS, hidden=HIDDEN, layers=2,
                        seed=0, device=device, eval_every=None)


def _bare_drift(s, batch: int):
    """N forward calls of the drift network on [batch, dim] (one graph), one backward."""
    net = s.control.net
    x = torch.randn(batch, s.dim, device=s.device, dtype=s.dtype)
    times = s.times[:-1]

    def run():
        feats = net.time_features(times)
        total = 0.0
        for k in range(len(times)):
            total = total + net.forward_with_features(x, feats[k:k + 1]).sum()
        total.backward()
        net.zero_grad(set_to_none=True)
    return run


def _bare_nets(s, batch: int):
    """``_bare_drift`` plus the DGFS flow network on all N x batch states, forward + backward."""
    drift = _bare_drift(s, batch)
    x = torch.randn(len(s.times) - 1, batch, s.dim, device=s.device, dtype=s.dtype)

    def run():
        drift()
        feats = s.flow.time_features(s.times[:-1])[:, None, :]
        s.flow.forward_with_features(x, feats).sum().backward()
        s.flow.zero_grad(set_to_none=True)
    return run


def measure(name: str, batch: int, device: str, rounds: int = 5) -> dict:
    """it/s of training, the bare network(s), and their ratios, for one configuration."""
    s = _build(name, batch, device)
    dev = s.device

    def timed(fn):
        def call():
            fn()
            _sync(dev)
        return call

    fns = {"train": timed(lambda: s.fit(1, progress=False)), "bare drift": timed(_bare_drift(s, batch))}
    if name == "dgfs":
        fns["bare nets"] = timed(_bare_nets(s, batch))
    rates = interleaved_rates(fns, rounds)["wall_it_per_s"]
    row = {"sampler": name, "device": str(dev), "batch": batch, **{f"{k} it/s": v for k, v in rates.items()},
           "overhead vs bare drift": rates["bare drift"] / rates["train"]}
    if name == "dgfs":
        row["overhead vs bare nets"] = rates["bare nets"] / rates["train"]
    return row


def table(rows: list[dict]) -> str:
    cpu = {(r["sampler"], r["batch"]): r["train it/s"] for r in rows if r["device"] == "cpu"}
    head = ("| sampler | device | batch | train it/s | bare drift it/s | train / bare drift time | "
            "bare drift+flow it/s | train / bare nets time | speed-up over CPU |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        base = cpu.get((r["sampler"], r["batch"]))
        up = f"{r['train it/s'] / base:.1f}x" if base and r["device"] != "cpu" else ""
        nets = (f"{r['bare nets it/s']:.2f} | {r['overhead vs bare nets']:.2f}x"
                if "bare nets it/s" in r else " | ")
        lines.append(f"| {r['sampler']} | {r['device']} | {r['batch']} | {r['train it/s']:.2f} | "
                     f"{r['bare drift it/s']:.2f} | {r['overhead vs bare drift']:.2f}x | {nets} | {up} |")
    return "\n".join(lines)


def test_scale_cpu_batch256(benchmark):
    """pytest-benchmark entry: PIS and DGFS at batch 256 on the CPU, with the overhead ratios."""
    torch.set_num_threads(1)
    rows = benchmark.pedantic(lambda: [measure(n, 256, "cpu", rounds=3) for n in ("pis", "dgfs")],
                              rounds=1, iterations=1)
    benchmark.extra_info["rows"] = rows
    print("\n" + table(rows))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    p.add_argument("--batches", nargs="+", type=int, default=[256, 1024, 4096])
    p.add_argument("--samplers", nargs="+", default=["pis", "dgfs"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--markdown", default=None, help="append the table, date and device to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for device in args.devices:
        for name in args.samplers:
            for batch in args.batches:
                rows.append(measure(name, batch, device, args.rounds))
                print(rows[-1], file=sys.stderr, flush=True)
    text = table(rows)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    header = (f"\n### Scale: {datetime.date.today()}, {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} CPU threads, {gpu}, torch {torch.__version__}\n\n")
    print(header + text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(header + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
