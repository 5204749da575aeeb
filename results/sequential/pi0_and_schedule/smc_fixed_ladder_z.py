"""SMC on Funnel-10 with a fixed linear ladder of N temperatures (next_delta patched): z over seeds."""
import sys, time, json, statistics as st, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
import logz.samplers.smc as smc_mod
N, S, kw = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
smc_mod.next_delta = lambda log_w, ell, beta, cess, pooled=True: torch.clamp(torch.full_like(beta, 1.0 / N), max=1 - beta)
t = targets.get("funnel"); zs = []
for seed in range(S):
    s = samplers.get("smc", t, seed=seed, **kw)
    e = s.estimate_log_z(2000); z = e.log_z / e.stderr; zs.append(z)
    print(f"smc fixed N {N} {kw} seed {seed}: {e.log_z:+.3f} +- {e.stderr:.3f} z {z:+.2f} T {len(s.last_result.betas)}", flush=True)
print(f"SUMMARY smc fixed N {N} {kw}: mean z {st.mean(zs):+.2f} +- {st.stdev(zs)/len(zs)**.5:.2f} within 2 SE {sum(abs(z)<=2 for z in zs)/len(zs):.0%}")
