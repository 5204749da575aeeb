"""SCLD training on TARGET with an evaluation (2000 particles) every EVERY iterations.

    OMP_NUM_THREADS=1 PYTHONPATH=. python results/sequential/training_probe.py funnel 300 100 '{"step_size": 0.001}'
"""
import sys, time, json, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
tname, iters, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kw = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
seed = kw.pop("seed", 0)
t = targets.get(tname)
truth = t.log_Z
s = samplers.get("scld", t, seed=seed, **kw)
print(tname, kw, "kernel", s.mcmc_kernel, "mpb", s.moves_per_beta, "segments", len(s.ends) - 1, flush=True)
done, train = 0, 0.0
while True:
    t0 = time.time(); e = s.estimate_log_z(2000); ev = time.time() - t0
    print(f"it {done:5d} train {train:6.0f}s | seq {e.log_z - (truth or 0):+.3f} +- {e.stderr:.3f} ess {e.ess:.3f} eval {ev:.0f}s", flush=True)
    if done >= iters: break
    t0 = time.time(); s.fit(every, progress=False); train += time.time() - t0; done += every
