"""Mean error of logz's estimators (2000 particles unless argv says otherwise) on a logistic-regression target over many
seeds, against an independent truth (argv). One JSON line per (config, seed).

argv: target, truth, sampler, JSON list of configs, first seed, seeds[, samples (2000)].
"""
import json, sys, time, warnings

from logz import samplers, targets

warnings.filterwarnings("ignore")
name, truth, sampler = sys.argv[1], float(sys.argv[2]), sys.argv[3]
configs, first, count = json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
num_samples = int(sys.argv[7]) if len(sys.argv) > 7 else 2000
target = targets.get(name)
for seed in range(first, first + count):
    for config in configs:
        s = samplers.get(sampler, target, seed=seed, **config)
        t0 = time.perf_counter()
        est = s.estimate_log_z(num_samples)
        print(json.dumps({"target": name, "sampler": sampler, "config": config, "seed": seed,
                          "num_samples": num_samples, "log_z": est.log_z, "stderr": est.stderr, "error": est.log_z - truth,
                          "z": (est.log_z - truth) / est.stderr, "reliable": est.reliable,
                          "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
