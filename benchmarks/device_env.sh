# Sourced by device_check.sh and device_grid.sh: the Python environment on a lent GPU machine.
# Installs the carried wheels (.whl/, from `make device-prep`) into /tmp/site, puts them and the
# checkout on PYTHONPATH, points LOGZ_DATA_DIR at a carried .devdata/, and sets PY and OUT.
OUT=${OUT:-/tmp/device_run}; mkdir -p "$OUT"
PY=${PY:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "device_env: installing the carried wheels failed"; exit 2; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[ -d .devdata ] && export LOGZ_DATA_DIR=$PWD/.devdata
