"""Untrained SCLD estimates (u = 0, 2000 particles) on TARGET for several configurations, seeds 0..S-1.

    OMP_NUM_THREADS=1 python results/sequential/step_and_loss/untrained_seeds.py funnel 3 '[{}, {"step_size": 1e-4}]'
"""
import sys, time, json, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
tname, S = sys.argv[1], int(sys.argv[2])
t = targets.get(tname); truth = t.log_Z or 0.0
for kw in json.loads(sys.argv[3]):
    for seed in range(S):
        s = samplers.get("scld", t, seed=seed, **kw)
        t0 = time.time(); e = s.estimate_log_z(2000)
        print(f"{json.dumps(kw)} seed {seed}: {e.log_z - truth:+.3f} +- {e.stderr:.3f} z {(e.log_z-truth)/e.stderr:+.1f} ess {e.ess:.3f} rel {e.reliable} {time.time()-t0:.0f}s", flush=True)
