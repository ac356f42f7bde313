# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, train the toy suite, ingest, build the marts, plot
#   make test   create .venv, install with test extras, run the whole test suite
#   make lint   the linters (sqlfluff on the dbt models)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/tdw demo

# two workers, one thread each (the session fixtures are built once and shared by both;
# the Ray tests share one worker, so one Ray cluster runs at a time)
test: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadgroup --durations=15

# sqlfluff on the dbt models (configured in .sqlfluff: DuckDB dialect, jinja templater)
lint: install
	$(BIN)/sqlfluff lint dbt_project/models

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b (load average before: $$(cut -d" " -f1-3 /proc/loadavg))"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf data .venv
