#!/bin/bash
# The GPU checks of the scale issue as ONE command for a lent GPU machine (CI has none):
#   1. the test suite there (tests/test_devices.py and the CUDA target tests run their CUDA
#      halves; everything else as on CI),
#   2. bench_scale.py on cpu and cuda: iterations/s of PIS and DGFS at batch 256/1024/4096,
#      N = 100, against the bare drift network's forward+backward.
# Prepare here first (`make device-prep`: the wheels that machine lacks and the data sets,
# in git-ignored .whl/ and .devdata/), then run there with carry [".whl", ".devdata"]:
#   bash benchmarks/device_check.sh
# Logs and the benchmark's markdown table land in $OUT (pytest.log, bench.log, bench_scale.md);
# append the table to benchmarks/README.md here. Limits (seconds) keep it inside one
# 10-minute call: TEST_LIMIT (default 240), BENCH_LIMIT (270). TESTS overrides the test paths.
set -o pipefail
. "$(dirname "$0")/device_env.sh"
DEVICES=$($PY -c "import torch; print('cpu cuda' if torch.cuda.is_available() else 'cpu')")
$PY -c "import torch, logz; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices:', '$DEVICES',
      torch.cuda.get_device_name() if torch.cuda.is_available() else '')" 2>&1 | tee "$OUT/env.log"
[ "$DEVICES" = "cpu" ] && echo "device_check: no CUDA device here: the CUDA halves will skip and the benchmark runs on the CPU only"
N=$($PY -c "import os; print(max(1, min(8, (os.cpu_count() or 2) // 2)))")
timeout "${TEST_LIMIT:-240}" $PY -m pytest -q -m "not slow" -n "$N" -p no:cacheprovider ${TESTS:-tests} 2>&1 | tee "$OUT/pytest.log"
rc_test=$?
timeout "${BENCH_LIMIT:-270}" $PY benchmarks/bench_scale.py --devices $DEVICES --markdown "$OUT/bench_scale.md" 2>&1 | tee "$OUT/bench.log"
rc_bench=$?
echo "device_check: pytest rc=$rc_test, bench_scale rc=$rc_bench (124 = hit its limit)"
[ $rc_test -eq 0 ] && [ $rc_bench -eq 0 ]
