#!/usr/bin/env bash
# Installs everything the gateway needs (idempotent): Python packages into .venv and the
# console's front-end bundle (npm ci + build; the page loads nothing from a CDN).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
if command -v npm >/dev/null 2>&1; then
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
  npm run --silent build
else
  echo "npm not found: the agent console's bundle is not built (the API and webhooks still work)" >&2
fi
