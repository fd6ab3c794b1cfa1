#!/usr/bin/env bash
# Run the whole test suite with coverage of src/ (fails below 85%), with the real services
# the service tests need (PostgreSQL, Redis, an S3 server) started on 127.0.0.1 and stopped
# afterwards, whatever the outcome, and the Debian tools of scripts/test-tools.sh (headless
# Chromium, docker-compose).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-tools.sh
bash scripts/services.sh up
trap 'bash scripts/services.sh down' EXIT
# shellcheck disable=SC1091
source .services/env
export HEIMDALL_HOME="${HEIMDALL_HOME:-$(mktemp -d)/heimdall}"
.venv/bin/python -m pytest --cov=heimdall --cov-report=term --cov-fail-under=85 -q "$@"
