#!/usr/bin/env bash
# Sets up and runs the gateway. With nothing configured it starts in sandbox mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m gateway "$@"
