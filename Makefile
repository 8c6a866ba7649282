# eeflow: the two entry points of the README. Both bootstrap the virtual environment themselves.
#   make demo   set up + run the polar pipeline end to end on a generated scene (local Airflow, SQLite)
#   make test   set up + run the whole default test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU wheel of torch lies in /opt/wheels on the project's machines; elsewhere pip finds it on PyPI.
PIP_FLAGS ?= --find-links /opt/wheels

.PHONY: setup browser demo test test-slow lint bench bench-quick bench-run compose-config clean mutation paper-tables

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/eeflow demo

# Debian's Chromium for the browser tests (tests/e2e/test_browser.py, driven by Playwright).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: sudo apt-get install chromium (the browser tests need it)"; fi; }

test: setup browser
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

# Benchmarks (bench/*.py): each prints `P<n>: ratio=..., goal=..., met=yes/no` against the best
# plain baseline measured in the same run and writes bench/results/<name>.json (--quick runs:
# <name>.quick.json). A missed goal is not an error, a crashed benchmark is (listed at the end).
#   make bench-quick   a small version of every benchmark in sequence (< 5 min on 2 idle cores)
#   make bench         the full benchmarks (hours)
BENCH_SKIP := bench/common.py bench/mutation.py bench/compare_outputs.py
BENCHES := $(sort $(filter-out $(BENCH_SKIP),$(wildcard bench/*.py)))
BENCH_ARGS ?=

bench-quick: setup
	@$(MAKE) --no-print-directory bench-run BENCH_ARGS=--quick

bench: setup
	@$(MAKE) --no-print-directory bench-run

bench-run:
	@start=$$(date +%s); failed=""; \
	for b in $(BENCHES); do \
	  echo "== $$b $(BENCH_ARGS)"; \
	  $(BIN)/python $$b $(BENCH_ARGS) || failed="$$failed $$b"; \
	done; \
	echo "== benchmarks took $$(( $$(date +%s) - start )) s; load average: $$(cut -d' ' -f1-3 /proc/loadavg)"; \
	if [ -n "$$failed" ]; then echo "== crashed:$$failed"; exit 1; fi

# The paper's Table III (ice: 4 networks x binary / five-class x 3 seeds, full width, day-B and
# other-region accuracy) and Table IV (crops: 15 tiles, T33UVP test) at the scripted full setting.
# Meant for a GPU machine (training uses one when present: accelerator auto); hours on a CPU.
# Writes bench/results/polar_models_full.json, bench/results/model_quality/full/*.png and
# bench/out/food_security_models_full/table_iv.md (+ .json).
paper-tables: setup
	$(BIN)/python bench/polar_models.py --full
	$(BIN)/python bench/food_security_models.py --full

# Mutation testing of the core science modules (mutmut, one module at a time in a temporary copy);
# slow, not part of `make test`. MUTATION_ARGS="--module tasks/storage.py" picks modules.
# Writes bench/results/mutation.json and bench/results/mutation_survivors.md.
mutation: setup
	$(BIN)/python bench/mutation.py $(MUTATION_ARGS)

lint: setup
	$(BIN)/ruff check tasks operators dags tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/hadolint containers/*.Dockerfile

compose-config:
	docker-compose -f docker-compose.yaml config --quiet

clean:
	rm -rf work .pytest_cache
