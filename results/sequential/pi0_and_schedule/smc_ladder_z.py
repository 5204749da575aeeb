"""Untrained SCLD (step 1e-6 unless given) on TARGET with the beta ladder SMC's adaptive run picked (cess given)."""
import sys, time, json, statistics as st, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
from logz.samplers.annealed_langevin import ladder_logits
tname, S, cess, kw = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
t = targets.get(tname); truth = t.log_Z or 0.0
zs = []
for seed in range(S):
    smc = samplers.get("smc", t, seed=1000 + seed, cess=cess, reference_mix=0.0)
    smc.estimate_log_z(2000)
    beta = torch.cat([torch.zeros(1, dtype=torch.float64), torch.stack(smc.last_result.betas)[:, 0]])
    N = beta.numel() - 1
    s = samplers.get("scld", t, seed=seed, num_steps=N, **kw)
    with torch.no_grad():
        s.annealing.a.copy_(ladder_logits(beta))
    t0 = time.time(); e = s.estimate_log_z(2000)
    z = (e.log_z - truth) / e.stderr; zs.append(z)
    print(f"smc-ladder N {N} {kw} seed {seed}: {e.log_z - truth:+.3f} +- {e.stderr:.3f} z {z:+.2f} {time.time()-t0:.0f}s", flush=True)
print(f"SUMMARY smc-ladder cess {cess} {kw}: n {len(zs)} mean z {st.mean(zs):+.2f} +- {st.stdev(zs)/len(zs)**.5:.2f}, "
      f"within 2 SE {sum(abs(z) <= 2 for z in zs)/len(zs):.0%}, within 3 SE {sum(abs(z) <= 3 for z in zs)/len(zs):.0%}")
