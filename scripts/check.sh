#!/usr/bin/env bash
# The quick checks, in seconds, before the tests: lint, format and types (configuration in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m ruff check gateway twiml tests bench
"$PY" -m ruff format --check gateway twiml tests bench
"$PY" -m mypy   # gateway/ and twiml/, as [tool.mypy] in pyproject.toml says
