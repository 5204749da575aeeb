"""Untrained SCLD with SMC's adaptive ladder interpolated to num_steps (argv: target, seeds, JSON kw)."""
import sys, time, json, statistics as st, torch, warnings, numpy as np
warnings.filterwarnings("ignore")
from logz import samplers, targets
from logz.samplers.annealed_langevin import ladder_logits
REF = {"ionosphere": -111.620, "sonar": -108.361}
tname, S, kw = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
t = targets.get(tname); truth = t.log_Z if t.log_Z is not None else REF[tname]
N = kw.pop("num_steps", 128)
errs, ses = [], []
for seed in range(S):
    smc = samplers.get("smc", t, seed=1000 + seed)
    t0 = time.time(); es = smc.estimate_log_z(2000); ts = time.time() - t0
    beta = torch.cat([torch.zeros(1, dtype=torch.float64), torch.stack(smc.last_result.betas)[:, 0].double()])
    M = beta.numel() - 1
    b = torch.tensor(np.interp(np.linspace(0, M, N + 1), np.arange(M + 1), beta.numpy()))
    s = samplers.get("scld", t, seed=seed, num_steps=N, **kw)
    with torch.no_grad():
        s.annealing.a.copy_(ladder_logits(b))
    t0 = time.time(); e = s.estimate_log_z(2000)
    errs.append(e.log_z - truth); ses.append(e.stderr)
    print(f"seed {seed}: smc ({M} temps) {es.log_z - truth:+.3f} +- {es.stderr:.3f} {ts:.0f}s | scld-ladder {e.log_z - truth:+.3f} +- {e.stderr:.3f} rel {e.reliable} {time.time()-t0:.0f}s", flush=True)
print(f"SUMMARY {kw}: mean|err| {st.mean(abs(x) for x in errs):.3f} mean SE {st.mean(ses):.3f} mean err {st.mean(errs):+.3f}")
