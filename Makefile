# Two entry points: `make serve` (set up and run the dashboard) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup system-deps serve test lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Redis, PostgreSQL, Chromium (browser test) and Fashion-MNIST, from Debian's packages.
system-deps:
	bash scripts/system-deps.sh

serve: setup
	$(VENV)/bin/resnet-lab serve

# The package boundaries are part of the tests: trainer <- core <- {app, worker}.
test: system-deps setup
	$(VENV)/bin/lint-imports
	bash scripts/test.sh

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/trainer_speed.py --device cpu --width 64 && $(PY) bench/api_speed.py && $(PY) bench/load.py && $(PY) bench/streams.py
