#!/usr/bin/env bash
# Sets up and runs the checks and the whole test suite. TEST_DATABASE_URL=postgresql://… runs it on Postgres;
# COVERAGE=1 measures branch coverage and prints its report after the tests.
# The browser tests drive Debian's Chromium (installed here when missing and apt-get is usable).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/check.sh
if [ "${COVERAGE:-0}" = 1 ]; then
  .venv/bin/python -m coverage run -m pytest "$@"
  exec .venv/bin/python -m coverage report --sort=cover
fi
exec .venv/bin/python -m pytest "$@"
