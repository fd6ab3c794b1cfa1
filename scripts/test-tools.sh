#!/usr/bin/env bash
# Tools the test suite needs besides Python packages, from Debian's packages:
#   chromium        renders /docs, /redoc and the report's map.html with the network off
#   docker-compose  validates docker-compose.yml (`docker-compose config`; no engine needed)
# Installs what is missing (root: apt-get; otherwise says what to run); safe to repeat.
set -euo pipefail

missing=()
have_chromium=no
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null; then have_chromium=yes; fi
done
[[ $have_chromium == yes ]] || missing+=(chromium)
if ! command -v docker-compose >/dev/null && ! { command -v docker >/dev/null && docker compose version >/dev/null 2>&1; }; then
    missing+=(docker-compose)
fi
((${#missing[@]})) || exit 0
if [[ $EUID -ne 0 ]]; then
    echo "test-tools: ${missing[*]} missing and only root can install them (apt-get install ${missing[*]});" \
        "the tests that need them will be skipped" >&2
    exit 0
fi
echo "test-tools: installing ${missing[*]} (apt-get)" >&2
log="$(mktemp)"
if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    echo "test-tools: error: could not install ${missing[*]}, see $log" >&2
    exit 1
fi
rm -f "$log"
