# Two commands: `make demo` and `make test`. Both create .venv and install with constraints.txt.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --disable-pip-version-check --quiet --constraint constraints.txt

.PHONY: install os-packages test test-distributed lint format demo bench compat constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[test]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The browser test needs Debian's chromium: installed here when root with apt-get, else the command to run.
os-packages:
	.ci/os-packages

test: os-packages lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Airflow's Celery stack on this machine (tests/distributed/): Debian's postgresql and redis-server (installed as
# root by .ci/os-packages), the [distributed] extra, and moto's S3 server in a venv of its own (its botocore needs
# python-dateutil < 3). About 3 minutes here; .ci/run calls it after `make test`.
S3_VENV := $(VENV)/s3-server
test-distributed: $(STAMP)
	.ci/os-packages distributed
	$(BIN)/python -m pip install $(PIP_FLAGS) -e ".[test,distributed]"
	test -x $(S3_VENV)/bin/python || $(PYTHON) -m venv $(S3_VENV)
	$(S3_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r tests/distributed/s3-server.txt
	ENTRA_DISTRIBUTED_TEST=1 ENTRA_S3_SERVER_PYTHON=$(S3_VENV)/bin/python \
		$(BIN)/python -m pytest tests/distributed -p no:cacheprovider $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m airflow_provider_entra.emulator.demo

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# The built wheel in a fresh venv of each supported Airflow line (README: Supported Airflow and Python versions).
compat: $(STAMP)
	$(BIN)/python .ci/compat.py $(COMPAT_ARGS)

# Regenerate constraints.txt from the current, working .venv (never includes the project itself).
# Keeps the header comment (development only) of the current file.
constraints:
	{ grep '^#' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e '; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .demo artifacts
