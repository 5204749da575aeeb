"""Untrained SCLD (the sequential estimate at its initial control) on TARGET for a list of option sets, seeds 0 and 1.

    OMP_NUM_THREADS=1 PYTHONPATH=. python results/sequential/untrained_probe.py funnel '[{"step_size": 0.001}]'
"""
import sys, warnings, time, json; warnings.filterwarnings('ignore')
from logz import samplers, targets
t = targets.get(sys.argv[1])
for kw in json.loads(sys.argv[2]):
  for seed in (0, 1):
    s = samplers.get('scld', t, seed=seed, **kw)
    t0 = time.time(); e = s.estimate_log_z(2000); r = s.run(2000)
    print(sys.argv[1], kw, seed, round(e.log_z - (t.log_Z or 0), 3), round(e.stderr, 3), e.reliable, 'resampled', int(r.resampled.sum()), 'eval %.0fs' % (time.time() - t0), flush=True)
