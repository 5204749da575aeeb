"""Accuracy of PIS and DDS: |log Z error| of the FINAL model, mean ± std over seeds.

Default grid = the reference budget: 9-mode GMM, Funnel-10, Many-Well-32; batch 256,
100 steps, 2x64 networks, 5000 iterations, 2000 evaluation samples, seeds 0 1 2.
(The full grid takes hours on a 2-core CPU; pass smaller --iterations / --batch-size /
--num-steps to check the script, and report such numbers as what they are.)

    python benchmarks/accuracy_pis_dds.py                      # the full grid
    python benchmarks/accuracy_pis_dds.py --iterations 60 --batch-size 128 --num-steps 50

Writes ``<out>.json`` (one record per run) and ``<out>.md`` (the table, with the
published figures of the DGFS paper for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from logz import samplers, targets

PUBLISHED = {  # |log Z error| as quoted in REFERENCE.md (funnel / manywell marked unverified there)
    ("pis", "gmm9"): 0.036, ("pis", "funnel"): 0.31, ("pis", "manywell"): 1.4,
    ("dds", "gmm9"): 0.028, ("dds", "funnel"): 0.42, ("dds", "manywell"): 1.2,
}


def run_one(sampler_name: str, target_name: str, seed: int, args) -> dict:
    target = targets.get(target_name)
    config = dict(seed=seed, batch_size=args.batch_size, num_steps=args.num_steps,
                  hidden=args.hidden, layers=args.layers, loss=args.loss, lr=args.lr)
    sampler = samplers.get(sampler_name, target, **config)
    start = time.perf_counter()
    sampler.fit(args.iterations, progress=args.progress)
    train_s = time.perf_counter() - start
    est = sampler.estimate_log_z(args.eval_samples)
    return {"sampler": sampler_name, "target": target_name, "seed": seed, **config,
            "iterations": args.iterations, "eval_samples": args.eval_samples,
            "log_z": est.log_z, "stderr": est.stderr, "elbo": est.elbo, "eubo": est.eubo,
            "ess": est.ess, "exact_log_z": target.log_Z, "error": est.log_z - target.log_Z,
            "abs_error": abs(est.log_z - target.log_Z), "train_seconds": train_s,
            "it_per_s": args.iterations / train_s if train_s > 0 else None,
            "threads": torch.get_num_threads(), "loadavg_1min": os.getloadavg()[0]}


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(records: list[dict], args) -> str:
    lines = [f"PIS / DDS |log Z error| of the final model, mean ± std over seeds {args.seeds}; "
             f"batch {args.batch_size}, {args.num_steps} steps, {args.layers}x{args.hidden}, "
             f"{args.iterations} iterations, loss {args.loss}, lr {args.lr}, "
             f"{args.eval_samples} evaluation samples, {torch.get_num_threads()} thread(s).", "",
             "| sampler | target | abs error | signed error | ELBO gap | ESS | train s/run | published |",
             "|---|---|---|---|---|---|---|---|"]
    for s in args.samplers:
        for t in args.targets:
            rows = [r for r in records if r["sampler"] == s and r["target"] == t]
            if not rows:
                continue
            lines.append(
                f"| {s} | {t} | {_mean_std([r['abs_error'] for r in rows])} "
                f"| {_mean_std([r['error'] for r in rows])} "
                f"| {_mean_std([r['exact_log_z'] - r['elbo'] for r in rows])} "
                f"| {_mean_std([r['ess'] for r in rows])} "
                f"| {statistics.mean(r['train_seconds'] for r in rows):.0f} "
                f"| {PUBLISHED.get((s, t), '')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samplers", nargs="+", default=["pis", "dds"])
    p.add_argument("--targets", nargs="+", default=["gmm9", "funnel", "manywell"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-steps", type=int, default=100)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--loss", default="kl", choices=["kl", "vargrad"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-samples", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/accuracy_pis_dds")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    for s in args.samplers:
        for t in args.targets:
            for seed in args.seeds:
                rec = run_one(s, t, seed, args)
                records.append(rec)
                print(f"{s:4s} {t:9s} seed {seed}: log Z {rec['log_z']:+.4f} ± {rec['stderr']:.4f} "
                      f"(exact {rec['exact_log_z']:.4f}, error {rec['error']:+.4f}), ELBO "
                      f"{rec['elbo']:.4f}, ESS {rec['ess']:.3f}, {rec['train_seconds']:.0f} s", flush=True)
                with open(args.out + ".json", "w") as f:
                    json.dump(records, f, indent=1)
    md = table(records, args)
    with open(args.out + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
