# Two commands do all set-up on a fresh machine:
#   make demo   - virtual environment (unless one is active), install, a log Z estimate
#   make test   - the test suite (what CI runs)
SHELL := /bin/bash
VENV ?= .venv
# torch 2.13.0 has a local CPU wheel on the team's machines; override for CUDA builds:
#   make install TORCH_SPEC="torch"
TORCH_SPEC ?= torch==2.13.0
ifdef VIRTUAL_ENV
PY := python
STAMP := $(VIRTUAL_ENV)/.logz-installed
else
PY := $(VENV)/bin/python
STAMP := $(VENV)/.logz-installed
endif
PYTEST_ARGS ?=

.PHONY: demo install test test-slow bench device-prep clean

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m logz run --target funnel --sampler smc --seed 0

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 --nbmake tests notebooks $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pytest benchmarks -o python_files="bench_*.py" -p no:xdist --benchmark-only \
		--benchmark-json=benchmarks/last.json $(PYTEST_ARGS)

# What a lent GPU machine lacks, for benchmarks/device_check.sh (carry .whl and .devdata there):
# wheels of the dependencies its image does not hold, and the data sets (../shared does not travel)
device-prep: $(STAMP)
	rm -rf .whl .devdata && mkdir -p .whl .devdata
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d .whl pyro-ppl pyro-api pot
	cp "$${LOGZ_DATA_DIR:-../shared/data}"/*.csv .devdata/

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
