#!/usr/bin/env bash
# Run the whole test suite with coverage of src/ (fails below 85%).
# Services (PostgreSQL, Redis, S3, Celery) join here as the features that need them land.
set -euo pipefail
cd "$(dirname "$0")/.."
export HEIMDALL_HOME="${HEIMDALL_HOME:-$(mktemp -d)/heimdall}"
.venv/bin/python -m pytest --cov=heimdall --cov-report=term --cov-fail-under=85 -q "$@"
