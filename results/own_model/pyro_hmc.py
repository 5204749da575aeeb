import time, torch, sys
sys.path.insert(0, "benchmarks")  # run from the repository root: python results/own_model/pyro_hmc.py
from bench_pyro import problem, regression
from logz import targets as T, samplers
torch.set_num_threads(1)
X, y, exact = problem()
t = T.from_pyro(regression, X, y)
for kernel in ["hmc"]:
    for seed in range(2):
        c = time.process_time(); w = time.perf_counter()
        e = samplers.get("smc", t, seed=seed, kernel=kernel).estimate_log_z(2000)
        print(kernel, seed, f"{e.log_z:.4f} ± {e.stderr:.4f} z {(e.log_z-exact)/e.stderr:+.2f} cpu {time.process_time()-c:.1f}s wall {time.perf_counter()-w:.1f}s", flush=True)
