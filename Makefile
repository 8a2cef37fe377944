# checkout-age: `make demo` sets everything up and runs the main job; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .venv-tools/bin/uv
FACES_DIR ?= $(abspath ../shared/faces)
KERAS_HOME ?= $(abspath ../shared/keras)
export FACES_DIR KERAS_HOME

.PHONY: postgresql-server setup setup-test demo test lint airflow mlflow production-shape bench clean

$(UV):
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install -q uv==$(UV_VERSION)

# Jobs venv: TensorFlow, Keras, PySpark, MLflow and the checkout-age CLI. No Airflow here: its
# Spark provider (pyspark-client) and pyspark overwrite each other's files in one venv.
.venv/.installed: $(UV) requirements/jobs.txt pyproject.toml
	$(UV) venv -q --allow-existing --python $(PYTHON) .venv
	VIRTUAL_ENV=.venv $(UV) pip install -q -r requirements/jobs.txt
	VIRTUAL_ENV=.venv $(UV) pip install -q --no-deps -e .
	touch $@

# Airflow venv: scheduler and operators only; tasks call the jobs venv's commands.
.venv-airflow/.installed: $(UV) requirements/airflow.txt
	$(UV) venv -q --allow-existing --python $(PYTHON) .venv-airflow
	VIRTUAL_ENV=.venv-airflow $(UV) pip install -q -r requirements/airflow.txt
	touch $@

# The driver JVM's class-data archive of Spark's classes (jobs/daily/jvm_archive.py): every
# Spark job then starts with about 5 core-s less. Remade with the venv; delete it after a Java upgrade.
.venv/spark-cds.jsa: .venv/.installed
	.venv/bin/python -m jobs.daily.jvm_archive

# Every module of a venv compiled to bytecode once. Each process (CLI, Spark driver and Python
# workers, Airflow commands and tasks) then loads compiled modules instead of compiling pandas,
# pyarrow or Airflow from source every time, as it does wherever nothing may write the cache
# (PYTHONDONTWRITEBYTECODE, as on these machines and in most container images; a read-only
# venv): 1.6 s less CPU for a Spark worker's imports, 2.3 s for an Airflow command
# (docs/serving.md). compileall, not uv's --compile-bytecode, which covers only what one install adds.
SITE_PACKAGES = $$($(1)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
define compile_venv
	$(1)/bin/python -m compileall -q -j 0 $(call SITE_PACKAGES,$(1)) >$(1)/.bytecode.log 2>&1 \
	    || echo "note: some modules of $(1) did not compile (not imported here): $(1)/.bytecode.log"
	touch $(1)/.bytecode
endef

.venv/.bytecode: .venv/.installed
	$(call compile_venv,.venv)

.venv-airflow/.bytecode: .venv-airflow/.installed
	$(call compile_venv,.venv-airflow)

setup: .venv/.installed .venv/.bytecode .venv/spark-cds.jsa .venv-airflow/.installed .venv-airflow/.bytecode

# Headless Chromium for the HTML report's browser test (Debian's package; apt needs root or sudo).
/usr/bin/chromium:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

# PostgreSQL and Redis for the production-shape test (Debian's packages). The test starts its own
# throw-away server of each on a free loopback port; the packages' own services are not used.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PG_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
/usr/bin/redis-server:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null
postgresql-server:
	$(if $(PG_INITDB),,$(SUDO) apt-get update -qq)
	$(if $(PG_INITDB),,DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null)

setup-test: setup /usr/bin/chromium /usr/bin/redis-server postgresql-server

demo: setup
	bash scripts/demo.sh

# Airflow UI (standalone) with the project's DAGs until Ctrl-C; URL and login are printed.
# It listens on 127.0.0.1 only; `make airflow AIRFLOW_HOST=0.0.0.0` opens it to the network.
AIRFLOW_HOST ?= 127.0.0.1
airflow: setup
	AIRFLOW_HOST=$(AIRFLOW_HOST) bash scripts/airflow.sh

# MLflow UI (runs, model versions, the production alias) on the embedded store until Ctrl-C.
# It listens on 127.0.0.1 only; `make mlflow MLFLOW_HOST=0.0.0.0` opens it to the network.
MLFLOW_HOST ?= 127.0.0.1
MLFLOW_PORT ?= 5000
mlflow: setup
	MLFLOW_HOST=$(MLFLOW_HOST) MLFLOW_PORT=$(MLFLOW_PORT) bash scripts/mlflow.sh
# The production shape of docs/running-at-scale.md on this machine, printing each step: throw-away
# PostgreSQL and Redis, the Celery executor with two workers, API server, scheduler, DAG processor
# and triggerer as separate processes, a Spark standalone cluster, faults. Wall time: bench/bench_production_shape.py.
production-shape: setup /usr/bin/redis-server postgresql-server
	.venv-airflow/bin/pytest tests/dags/test_production_shape.py -v -p no:cacheprovider \
		-o log_cli=true --log-cli-level=WARNING --log-cli-format='%(asctime)s %(message)s'

lint: setup
	.venv/bin/ruff check .

test: setup-test lint
	.venv/bin/pytest tests --ignore=tests/dags
	.venv-airflow/bin/pytest tests/dags

bench: setup
	.venv/bin/python bench/bench_model.py

clean:
	rm -rf var .venv .venv-airflow .venv-tools
