#!/bin/bash
# Many seeds of one reference-budget grid on a lent GPU, several cells side by side (each cell
# is launch-bound at batch 256: one process per cell keeps the GPU busier than one after another).
#   bash benchmarks/device_grid.sh TARGET "SAMPLERS" FIRST_SEED NUM_SEEDS [PARALLEL] [BUDGET]
# e.g. bash benchmarks/device_grid.sh manywell "pis dds dgfs dgfs_lv" 0 24 8
# Cells run in order seed-major (every sampler's seed k before any seed k+1), so a run cut short
# by LIMIT (seconds, default 540) still leaves the samplers with equal seed counts, give or take
# one. Finished cells and the report come back as $OUT/grid.tgz (cells/, results.jsonl,
# report.md; not the samples): unpack into a results folder of its own, never into a CPU one.
# Carry .whl (make device-prep) for the wheels the GPU image lacks.
set -o pipefail
target=$1; samplers=$2; first=${3:-0}; n=${4:-6}; par=${5:-8}; budget=${6:-reference}
[ -n "$target" ] && [ -n "$samplers" ] || { sed -n 2,12p "$0"; exit 2; }
. "$(dirname "$0")/device_env.sh"
metrics="sliced_w2 mmd energy_w2 mode_coverage"
device=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
runs=$OUT/grid; mkdir -p "$runs"
jobs=()
for ((k = first; k < first + n; k++)); do for s in $samplers; do jobs+=("$s:$k"); done; done
deadline=$(( $(date +%s) + ${LIMIT:-540} ))
for job in "${jobs[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do sleep 1; done
  [ "$(date +%s)" -lt "$deadline" ] || break
  s=${job%%:*}; k=${job##*:}
  left=$(( deadline - $(date +%s) ))
  timeout "$left" $PY -m logz bench --targets "$target" --samplers "$s" --seeds 1 --first-seed "$k" \
    --budget "$budget" --metrics $metrics --out "$runs" --device "$device" \
    --threads 1 --no-plots --quiet > "$OUT/$target-$s-$k.log" 2>&1 &
done
wait
$PY -m logz bench --targets "$target" --samplers $samplers --seeds "$n" --first-seed "$first" \
  --budget "$budget" --metrics $metrics --out "$runs" --report-only --no-plots > "$OUT/report.log" 2>&1
tar czf "$OUT/grid.tgz" -C "$runs" cells results.jsonl report.md 2>/dev/null
ls "$runs/cells" | wc -l | xargs echo "device_grid: finished cells:"
