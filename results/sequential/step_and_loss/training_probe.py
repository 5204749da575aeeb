"""SCLD training with an estimate (2000 particles) every EVERY iterations, the size of the
control's step relative to the noise, |eps u| / sqrt(2 eps), along uncorrected paths, the
mean loss and the largest gradient norm (before clipping) of the window.

    OMP_NUM_THREADS=1 python results/sequential/step_and_loss/training_probe.py funnel 300 100 '{"step_size": 1e-4}'
"""
import sys, time, json, math, torch, warnings
warnings.filterwarnings("ignore")
from logz import samplers, targets
tname, iters, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
kw = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
seed = kw.pop("seed", 0)
t = targets.get(tname)
truth = t.log_Z or 0.0
s = samplers.get("scld", t, seed=seed, **kw)
print(tname, kw, "seed", seed, flush=True)

def control_stats():
    with torch.no_grad():
        x0, _ = s.initial(512, torch.Generator().manual_seed(5))
        tr, _ = s._simulate(x0, s.times, torch.Generator().manual_seed(6), False, log_densities=False)
        st = tr.states
        M1, B, d = st.shape
        u = s.policy()(st[:-1].reshape(-1, d), s.times[:-1].repeat_interleave(B)).view(M1 - 1, B, d)
        eps = s.annealing.step_sizes().view(-1, 1, 1)
        ratio = (eps * u).abs() / torch.sqrt(2 * eps)
        return ratio.mean().item(), ratio.amax().item(), torch.quantile(ratio.flatten()[:100000], 0.99).item()

done, train = 0, 0.0
while True:
    t0 = time.time(); e = s.estimate_log_z(2000); ev = time.time() - t0
    m, mx, q = control_stats()
    h = s.trainer.history; loss = sum(h.loss[-every:]) / every if done else float("nan"); gn = max(h.grad_norm[-every:]) if done else float("nan")
    print(f"it {done:5d} train {train:5.0f}s | {e.log_z - truth:+.3f} +- {e.stderr:.3f} ess {e.ess:.3f} rel {e.reliable} "
          f"| |eps u|/noise mean {m:.3f} p99 {q:.2f} max {mx:.1f} | loss {loss:.3g} gn max {gn:.3g} eval {ev:.0f}s", flush=True)
    if done >= iters: break
    t0 = time.time(); s.fit(every, progress=False); train += time.time() - t0; done += every
