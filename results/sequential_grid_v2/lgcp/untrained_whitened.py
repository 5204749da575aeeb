"""Untrained SCLD (u = 0, defaults, 2000 particles) on LGCP in the whitened parameterisation
(x = mu0 + L z, prior N(0, I) on z; the same Z): one JSON line per seed. argv: seeds (1)."""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
from logz.bench.reference import default_reference_file, load_reference_log_z
t = targets.get("lgcp", whitened=True)
truth = load_reference_log_z(default_reference_file(), "lgcp")["log_z"]
for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
    s = samplers.get("scld", t, seed=seed)
    t0 = time.time(); e = s.estimate_log_z(2000)
    print(json.dumps({"target": "lgcp (whitened)", "seed": seed, "log_z": e.log_z, "stderr": e.stderr,
                      "error": e.log_z - truth, "reliable": e.reliable, "reason": e.reason,
                      "seconds": round(time.time() - t0)}), flush=True)
