# Heimdall: the two commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast services-up services-down clean

# Everything `make test` exercises: the embedded core plus the server (Celery/Redis), s3,
# postgres and ui (full MLflow) extras and the test tools. A laptop that only runs the
# demo needs `pip install -e .` alone (README, "Install").
EXTRAS := server,s3,postgres,ui,test

# Re-install only when the project's dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/heimdall demo

# Unit and slow tests, with the real services the service tests need and headless
# Chromium and docker-compose (scripts/test-tools.sh installs them when missing).
test: install
	bash scripts/run-tests.sh

# Fast, offline unit tests only.
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not services" -q

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

clean:
	rm -rf $(VENV) .heimdall .pytest_cache .coverage
