"""Untrained SCLD on TARGET (argv: target, seeds, JSON list of configs ("dtype": "float64" allowed), first seed = 0): z = (log Z^ - log Z) / SE over seeds, per configuration (2000 particles, defaults otherwise)."""
import sys, time, json, statistics as st, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
tname, S = sys.argv[1], int(sys.argv[2])
first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
configs = json.loads(sys.argv[3])
DT = {"float64": torch.float64, "float32": torch.float32}
t = targets.get(tname); truth = t.log_Z or 0.0
zs = {json.dumps(c): [] for c in configs}
for seed in range(first, first + S):
    for kw in configs:
        s = samplers.get("scld", t, seed=seed, **{k: DT.get(v, v) if k == "dtype" else v for k, v in kw.items()})
        t0 = time.time(); e = s.estimate_log_z(2000)
        z = (e.log_z - truth) / e.stderr; zs[json.dumps(kw)].append(z)
        print(f"{json.dumps(kw)} seed {seed}: {e.log_z - truth:+.3f} +- {e.stderr:.3f} z {z:+.2f} rel {e.reliable} {time.time()-t0:.0f}s", flush=True)
for k, v in zs.items():
    print(f"SUMMARY {k}: n {len(v)} mean z {st.mean(v):+.2f} +- {st.stdev(v)/len(v)**0.5:.2f}, sd {st.stdev(v):.2f}, "
          f"within 2 SE {sum(abs(x) <= 2 for x in v)/len(v):.0%}, within 3 SE {sum(abs(x) <= 3 for x in v)/len(v):.0%}")
