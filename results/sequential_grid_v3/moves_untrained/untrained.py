"""Untrained SCLD on TARGET: error, SE, time per config (argv: target, seeds, JSON configs, first seed)."""
import sys, time, json, statistics as st, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
REF = {"ionosphere": -111.620, "sonar": -108.361}
tname, S = sys.argv[1], int(sys.argv[2]); first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
configs = json.loads(sys.argv[3]); DT = {"float64": torch.float64}
t = targets.get(tname); truth = t.log_Z if t.log_Z is not None else REF[tname]
for kw in configs:
    errs, ses = [], []
    for seed in range(first, first + S):
        s = samplers.get("scld", t, seed=seed, **{k: DT.get(v, v) if k == "dtype" else v for k, v in kw.items()})
        t0 = time.time(); e = s.estimate_log_z(2000)
        errs.append(e.log_z - truth); ses.append(e.stderr)
        print(f"{json.dumps(kw)} seed {seed}: {e.log_z - truth:+.3f} +- {e.stderr:.3f} rel {e.reliable} {time.time()-t0:.0f}s", flush=True)
    print(f"SUMMARY {json.dumps(kw)}: mean|err| {st.mean(abs(x) for x in errs):.3f} mean SE {st.mean(ses):.3f} mean err {st.mean(errs):+.3f}", flush=True)
