#!/usr/bin/env bash
# Sets up and runs the checks and the whole test suite. TEST_DATABASE_URL=postgresql://… runs it on Postgres;
# COVERAGE=1 measures branch coverage and prints its report after the tests.
# The browser tests drive Debian's Chromium (installed here when missing and apt-get is usable).
#
# TEST_SPLIT=1 runs the whole suite as two pytest processes side by side, each on a database of its own
# on Postgres (TEST_DATABASE_SIBLING, see tests/conftest.py): the fault suite with the other folders that
# wait on little but the CPU, and the folders whose tests wait on timers, sockets and child processes.
# Off by default: on two cores the browser and timer tests then missed their waits while the fault
# suite ran beside them. Given paths or selections (anything but -q, -v, -x, -ra, --durations=N), one
# process runs what was asked.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/check.sh

pytest_run() {
  if [ "${COVERAGE:-0}" = 1 ]; then
    .venv/bin/python -m coverage run --parallel-mode -m pytest "$@"
  else
    .venv/bin/python -m pytest "$@"
  fi
}

whole=${TEST_SPLIT:-0}
for arg in "$@"; do
  case $arg in
    -q | -qq | -v | -vv | -x | -ra | -rA | --durations=*) ;;
    *) whole=0 ;;
  esac
done

rm -f .coverage .coverage.*  # each process writes its own data file; earlier runs' must not be combined
status=0
if [ "$whole" = 1 ]; then
  alongside=(tests/faults tests/unit tests/sandbox tests/summary tests/security)
  ignored=()
  for folder in "${alongside[@]}"; do ignored+=("--ignore=$folder"); done
  alongside_log=$(mktemp)
  TEST_DATABASE_SIBLING=alongside pytest_run "$@" "${alongside[@]}" >"$alongside_log" 2>&1 &
  alongside_pid=$!
  pytest_run "$@" "${ignored[@]}" tests || status=$?
  alongside_status=0
  wait "$alongside_pid" || alongside_status=$?
  echo
  echo "------------------- run alongside: ${alongside[*]} -------------------"
  cat "$alongside_log"
  rm -f "$alongside_log"
  [ "$status" = 0 ] && status=$alongside_status
else
  pytest_run "$@" || status=$?
fi
if [ "${COVERAGE:-0}" = 1 ] && [ "$status" = 0 ]; then
  .venv/bin/python -m coverage combine --quiet
  .venv/bin/python -m coverage report --sort=cover
fi
exit "$status"
