"""python exp.py TARGET OUTJSONL SEEDS N key=val ... : SMC runs with several error bars per run."""
import sys, json, math, time, torch
sys.path.insert(0, ".")
from logz.bench.calibrate import calibration_target
from logz.samplers.smc import SMC, eve_relative_variance
from logz.samplers.estimators import combine_independent_log_z
from logz.cli import _parse_config
tname, out, seeds, N = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = _parse_config(sys.argv[5:])
tcfg = {k[2:]: v for k, v in cfg.items() if k.startswith("t_")}
cfg = {k: v for k, v in cfg.items() if not k.startswith("t_")}
t = calibration_target(tname, **tcfg)
done = set()
try:
    done = {json.loads(l)["seed"] for l in open(out)}
except OSError: pass
with open(out, "a") as f:
    for seed in range(seeds):
        if seed in done: continue
        t0 = time.time()
        smc = SMC(t, seed=seed, **cfg)
        r = smc.run(N)
        R = r.log_z.numel()
        lz, se = combine_independent_log_z(r.log_z); se_sp = se * math.sqrt(R / (R - 1))
        rv = eve_relative_variance(r.log_weights, r.eve, r.num_resamples)
        rel = torch.exp(r.log_z - lz)
        se_eve = math.sqrt(float((rel ** 2 * rv).sum()) / R ** 2)
        rec = dict(seed=seed, err=lz - t.log_Z, se_spread=se_sp, se_eve=se_eve, log_z_r=r.log_z.tolist(),
                   rv=rv.tolist(), nres=r.num_resamples.tolist(), temps=len(r.betas), wall=time.time() - t0)
        f.write(json.dumps(rec) + "\n"); f.flush()
