# custpipe — the two commands: `make demo` and `make test` (they set everything up).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= data
CUSTOMERS ?= 5000
SEED ?= 42
export GX_ANALYTICS_ENABLED := false
export DAGSTER_HOME := $(CURDIR)/dagster_home
export CUSTPIPE_DATA := $(abspath $(DATA))

.PHONY: install demo run dev test lint clean bench bench-febrl browser spark java steward steward-user

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# custpipe's bytecode, compiled now: a run does not write it where PYTHONDONTWRITEBYTECODE is
# set (this machine's environment), and compiling custpipe costs every run ~0.2 s
install: $(STAMP)
	@$(BIN)/python -m compileall -q custpipe >/dev/null

# engine: spark (pyspark, ~0.5 GB; the first install builds its wheel, ~2 min) and a Java
# runtime: `make test` runs the Spark tests, `make demo` does not need them
SPARK_STAMP := $(VENV)/.spark-installed
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	@touch $(SPARK_STAMP)

spark: $(SPARK_STAMP) java  ## pyspark and Java for engine: spark

java:  ## a Java 17+ runtime for Spark (installs Debian's openjdk-17-jre-headless when missing)
	@if $(BIN)/python -c 'from custpipe.spark.session import java_problem as p; raise SystemExit(bool(p()))' 2>/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's Java runtime for Spark ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends openjdk-17-jre-headless >/dev/null; \
	else \
	    echo "no Java 17+ for Spark: install one (sudo apt-get install openjdk-17-jre-headless) or set JAVA_HOME" \
	      >&2; exit 1; \
	fi

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# the demo's partitions start at its data's business date (README "Partitions"); a real
# deployment leaves this unset and configures `partitions_start` in pipeline.yaml
DEMO_DATE = $(shell sed -n 's/.*"business_date": "\([0-9-]*\)".*/\1/p' $(CUSTPIPE_DATA)/sources/ground_truth/rates.json 2>/dev/null)
demo run dev: export CUSTPIPE_PARTITIONS_START ?= $(DEMO_DATE)

demo: install $(DAGSTER_HOME)/dagster.yaml  ## generate demo sources, run the nightly job once, print a summary
	$(BIN)/custpipe demo-data --customers $(CUSTOMERS) --seed $(SEED) --out $(CUSTPIPE_DATA)/sources
	$(BIN)/custpipe run

run: install $(DAGSTER_HOME)/dagster.yaml  ## run the nightly job once for yesterday on the current sources
	$(BIN)/custpipe run

# Debian's Chromium (and a font for the demo's Chinese names) for the browser test; Playwright's
# own browser download cannot work here, so Playwright drives this one (CUSTPIPE_CHROMIUM)
CHROMIUM ?= /usr/bin/chromium
export CUSTPIPE_CHROMIUM := $(CHROMIUM)

browser:  ## Debian's Chromium for the browser test (installs it with apt-get when missing)
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser test ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium fonts-wqy-microhei >/dev/null; \
	  else \
	    echo "no Chromium at $(CHROMIUM): install Debian's chromium (sudo apt-get install chromium)" \
	      "or set CHROMIUM=/path/to/chromium; the browser test skips without it"; \
	  fi; }

steward: install  ## the stewards' workbench on http://127.0.0.1:8080 (PORT=...)
	$(BIN)/custpipe steward serve --host 127.0.0.1 --port $(or $(PORT),8080)

steward-user: install  ## add a workbench user: make steward-user NAME=ann ROLE=steward
	$(BIN)/custpipe steward add-user $(NAME) --role $(or $(ROLE),steward)

dev: install $(DAGSTER_HOME)/dagster.yaml  ## the Dagster UI on http://127.0.0.1:3000
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install $(if $(filter spark,$(ENGINE)),spark)  ## the benchmark: SCALE=100000 for one scale (default 100k and 1M); ENGINE=spark
	$(BIN)/custpipe bench $(if $(SCALE),--scale $(SCALE),--scale 100000 --scale 1000000) --out $(CUSTPIPE_DATA)/bench$(if $(ENGINE),-$(ENGINE) --engine $(ENGINE))

bench-febrl: install  ## custpipe's matching vs Splink's documented workflows on FEBRL 1-4 (~4 min)
	$(BIN)/python -m custpipe.benchmarks.febrl --out $(CUSTPIPE_DATA)/bench/febrl

lint: install
	$(BIN)/ruff check .

# the suite on TEST_WORKERS pytest-xdist workers (0: in this process); each worker builds the
# session fixtures it needs (the shared demo deployment) in its own temporary folder
TEST_WORKERS ?= 2

test: install browser spark  ## lint, then the whole test suite
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

clean:
	rm -rf $(DATA) $(DAGSTER_HOME) .pytest_cache .ruff_cache
