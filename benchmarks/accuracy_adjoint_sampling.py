"""Adjoint Sampling on DW-4: sample quality against a long MALA reference, FINAL model.

Trains ``AdjointSampling`` on DW-4 (4 particles in 2-D, the center-of-mass restraint of
``logz.targets.particles``) for each seed, then compares its samples with a MALA reference
(per-chain adapted steps, ``mala_reference``) by the metrics the papers report for particle
systems, with the center of mass removed:

- energy-histogram W2 (1-D, exact), with a bootstrap standard error;
- sample W2 (exact optimal transport, POT) between equal-size sets. It is not taken modulo
  rotations / permutations, so two independent reference sets of the same size already
  differ: the report prints that floor (reference vs reference) beside it;
- the same after importance resampling of the samples by their path weights (what the log Z
  estimate corrects for; with a normalized ESS of a few percent the resampled set holds
  fewer distinct points);
- interatomic-distance and energy histograms (PNG), the log Z estimate and its ESS.

    python benchmarks/accuracy_adjoint_sampling.py                     # 3 seeds, defaults
    python benchmarks/accuracy_adjoint_sampling.py --iterations 2000 --seeds 0
    python benchmarks/accuracy_adjoint_sampling.py --network mlp --out runs/as_dw4_mlp   # plain MLP

Published (Havens et al. 2025, equivariant network; REFERENCE.md): DW-4 sample W2 0.62,
energy W2 0.55; PIS 0.68 / 0.65. Writes ``<out>/results.json`` and ``<out>/dw4_*.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from logz.bench.metrics import energy_histogram_w2
from logz.samplers.adjoint_sampling import AdjointSampling
from logz.samplers.estimators import estimate_from_log_weights
from logz.targets.particles import dw4, mala_reference, plot_particle_metrics, sample_w2

PUBLISHED = {"adjoint_sampling": {"sample_w2": 0.62, "energy_w2": 0.55}, "pis": {"sample_w2": 0.68, "energy_w2": 0.65}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=16000)
    p.add_argument("--sigma-max", type=float, default=2.0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=None, help="default: the sampler's (MLP 2, EGNN 3)")
    p.add_argument("--network", choices=["mlp", "egnn"], default=None,
                   help="FourierMLP or the E(n)-equivariant EGNN (default: the sampler's, EGNN on DW-4)")
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--reference-steps", type=int, default=4000)
    p.add_argument("--symmetrize", action=argparse.BooleanOptionalAction, default=None,
                   help="augment by the target's rotations / permutations (default: the sampler's)")
    p.add_argument("--grad-feature", action=argparse.BooleanOptionalAction, default=None,
                   help="give the network grad g(x) as a feature (default: the sampler's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/adjoint_sampling_dw4")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    target = dw4()
    n = args.samples
    t0 = time.perf_counter()
    # two independent reference sets: one to compare with, one for the finite-sample floor
    ref, acc = mala_reference(target, 2 * n, steps=args.reference_steps, step_size=5e-3,
                              generator=torch.Generator().manual_seed(12345))
    ref_a, ref_b = ref[:n], ref[n:]
    e_ref = target.potential(ref_a)
    floor = {"sample_w2": sample_w2(ref_a[:1000], ref_b[:1000]),
             "energy_w2": energy_histogram_w2(ref_a, ref_b, target.potential).value}
    print(f"MALA reference: {2 * n} chains x {args.reference_steps} steps, acceptance {acc:.2f}, "
          f"{time.perf_counter() - t0:.0f} s; reference-vs-reference floor: sample W2 "
          f"{floor['sample_w2']:.3f}, energy W2 {floor['energy_w2']:.3f}")
    rows = []
    for seed in args.seeds:
        s = AdjointSampling(target, sigma_max=args.sigma_max, hidden=args.hidden, layers=args.layers, seed=seed,
                           network=args.network,
                           symmetrize=args.symmetrize, grad_feature=args.grad_feature)
        t1 = time.perf_counter()
        s.fit(args.iterations, progress=True)
        train_s = time.perf_counter() - t1
        x_raw, log_w = s.log_weights(n)
        x = target.remove_com(x_raw.double())
        e = target.potential(x)
        est = estimate_from_log_weights(log_w)
        # importance resampling (SIR) by the path weights: what the log Z estimate corrects for
        idx = torch.multinomial(torch.softmax(log_w.double(), 0), n, replacement=True,
                                generator=torch.Generator().manual_seed(seed))
        x_rw = x[idx]
        ew2 = energy_histogram_w2(x, ref_a, target.potential, seed=seed)  # value and bootstrap stderr
        row = {"seed": seed, "network": s.network, "iterations": args.iterations, "train_seconds": train_s,
               "it_per_s": args.iterations / train_s,
               "energy_w2": ew2.value, "energy_w2_stderr": ew2.stderr,
               "sample_w2": sample_w2(x[:1000], ref_a[:1000]),
               "energy_w2_reweighted": energy_histogram_w2(x_rw, ref_a, target.potential, seed=seed).value,
               "sample_w2_reweighted": sample_w2(x_rw[:1000], ref_a[:1000]),
               "energy_median": float(e.median()), "reference_energy_median": float(e_ref.median()),
               "log_z": est.log_z, "log_z_stderr": est.stderr, "ess": est.ess,
               "log_z_subspace": est.log_z - target.com_log_z}
        rows.append(row)
        print(f"seed {seed}: energy W2 {row['energy_w2']:.3f} ± {row['energy_w2_stderr']:.3f}, sample W2 "
              f"{row['sample_w2']:.3f} (floor {floor['sample_w2']:.3f}); importance-resampled: energy W2 "
              f"{row['energy_w2_reweighted']:.3f}, sample W2 {row['sample_w2_reweighted']:.3f}; median energy {row['energy_median']:.2f} "
              f"(reference {row['reference_energy_median']:.2f}), log Z {est.log_z:.3f} ± {est.stderr:.3f} "
              f"(ESS {est.ess:.3f}), {row['it_per_s']:.0f} it/s")
        plot_particle_metrics(target, {"MALA reference": ref_a, f"adjoint sampling (seed {seed})": x,
                                       "importance-resampled": x_rw},
                              os.path.join(args.out, f"dw4_seed{seed}.png"))
    mean = {k: sum(r[k] for r in rows) / len(rows)
            for k in ("energy_w2", "sample_w2", "energy_w2_reweighted", "sample_w2_reweighted")}
    std = {k: (sum((r[k] - mean[k]) ** 2 for r in rows) / max(len(rows) - 1, 1)) ** 0.5 for k in mean}
    print(f"mean ± std over {len(rows)} seeds: energy W2 {mean['energy_w2']:.3f} ± {std['energy_w2']:.3f}, "
          f"sample W2 {mean['sample_w2']:.3f} ± {std['sample_w2']:.3f}; importance-resampled: energy W2 "
          f"{mean['energy_w2_reweighted']:.3f} ± {std['energy_w2_reweighted']:.3f}, sample W2 "
          f"{mean['sample_w2_reweighted']:.3f} ± {std['sample_w2_reweighted']:.3f}; published (equivariant nets): "
          f"{PUBLISHED['adjoint_sampling']}")
    config = {k: v for k, v in vars(args).items() if k != "out"}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"config": config, "reference_acceptance": acc, "floor": floor, "rows": rows,
                   "mean": mean, "std": std, "published": PUBLISHED,
                   "torch": torch.__version__}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
