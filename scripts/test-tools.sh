#!/usr/bin/env bash
# Tools the test suite needs besides Python packages: headless Chromium (Debian `chromium`)
# for the tests that render /docs, /redoc and the report's map.html with the network off.
# Installs it when missing (root: apt-get; otherwise says what to run); safe to repeat.
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null; then exit 0; fi
done
if [[ $EUID -ne 0 ]]; then
    echo "test-tools: chromium is missing and only root can install it (apt-get install chromium);" \
        "the browser tests will be skipped" >&2
    exit 0
fi
echo "test-tools: installing chromium (apt-get)" >&2
log="$(mktemp)"
if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } >"$log" 2>&1; then
    echo "test-tools: error: could not install chromium, see $log" >&2
    exit 1
fi
rm -f "$log"
