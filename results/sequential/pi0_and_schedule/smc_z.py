"""SMC on TARGET with config KW: z over seeds (2000 particles)."""
import sys, time, json, statistics as st, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
tname, S, kw = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
t = targets.get(tname); truth = t.log_Z or 0.0
zs = []
for seed in range(S):
    s = samplers.get("smc", t, seed=seed, **kw)
    t0 = time.time(); e = s.estimate_log_z(2000)
    z = (e.log_z - truth) / e.stderr; zs.append(z)
    print(f"smc {kw} seed {seed}: {e.log_z - truth:+.3f} +- {e.stderr:.3f} z {z:+.2f} T {len(s.last_result.betas)} {time.time()-t0:.0f}s", flush=True)
print(f"SUMMARY smc {kw}: n {len(zs)} mean z {st.mean(zs):+.2f} +- {st.stdev(zs)/len(zs)**.5:.2f}, "
      f"within 2 SE {sum(abs(z) <= 2 for z in zs)/len(zs):.0%}, within 3 SE {sum(abs(z) <= 3 for z in zs)/len(zs):.0%}")
