"""Fixtures of the fault, crash and fuzz suite, and the counts it prints at the end.

On Postgres the suite runs in a sibling database of TEST_DATABASE_URL (``<name>_faults``,
created on first use): the Postgres-outage tests terminate every backend of their
database, and that must never hit another suite's connections on a shared server.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gateway.adapters.store import Store
from tests.faults._counts import COUNTS
from tests.faults._db import postgres_url

ROOT = Path(__file__).resolve().parents[2]
COUNTS_FILE = ROOT / "bench" / "fault-counts.json"

_outcomes = {"passed": 0, "failed": 0, "errors": 0, "xfailed": 0, "xpassed": 0, "skipped": 0}
_failed_ids: list[str] = []
_first_report_at: list[float] = []
_modules_seen: set[str] = set()


@pytest.fixture
def database_url(tmp_path) -> str:
    url = postgres_url()
    if url:
        store = Store(url)
        store.drop_all()
        store.engine.dispose()
        return url
    return f"sqlite:///{tmp_path / 'gateway.db'}"


# ----------------------------------------------------------------- the counts
def pytest_runtest_logreport(report):
    if "tests/faults/" not in report.nodeid.replace("\\", "/"):
        return
    if not _first_report_at:
        _first_report_at.append(time.monotonic())
    _modules_seen.add(report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1])
    if hasattr(report, "wasxfail"):
        if report.when == "call" or report.skipped:
            _outcomes["xpassed" if report.passed else "xfailed"] += 1
        return
    if report.failed:
        _outcomes["failed" if report.when == "call" else "errors"] += 1
        _failed_ids.append(report.nodeid)
    elif report.skipped:
        _outcomes["skipped"] += 1
    elif report.when == "call":
        _outcomes["passed"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not any(_outcomes.values()):
        return
    elapsed = time.monotonic() - _first_report_at[0] if _first_report_at else 0.0
    database = "postgres" if os.environ.get("TEST_DATABASE_URL", "").startswith("postg") else "sqlite"
    result = {
        **COUNTS,
        "failures": _outcomes["failed"] + _outcomes["errors"],
        "xfailed": _outcomes["xfailed"],
        "tests": dict(_outcomes),
        "failed_tests": _failed_ids,
        "database": database,
        "seconds": round(elapsed, 1),
    }
    terminalreporter.section("fault suite counts")
    for key in (
        "faults_injected",
        "crashes_survived",
        "bad_inputs_tried",
        "fuzz_requests",
        "state_machine_sequences",
        "failures",
        "xfailed",
    ):
        terminalreporter.write_line(f"{key:>24}: {result[key]}")
    terminalreporter.write_line(f"{'database':>24}: {database}, {result['seconds']} s")
    if os.environ.get("FAULT_COUNTS_WRITE") != "1":
        # A test run never modifies tracked files: the published counts are rewritten only on request.
        terminalreporter.write_line(
            f"{'not written':>24}: set FAULT_COUNTS_WRITE=1 to update {COUNTS_FILE.relative_to(ROOT)}"
        )
        return
    modules = {p.name for p in Path(__file__).parent.glob("test_*.py")}
    if not modules <= _modules_seen:
        terminalreporter.write_line(
            f"{'not written':>24}: a partial run ({len(_modules_seen)} of {len(modules)} "
            f"modules); {COUNTS_FILE.relative_to(ROOT)} keeps whole-suite counts"
        )
        return
    try:
        existing = json.loads(COUNTS_FILE.read_text()) if COUNTS_FILE.exists() else {}
        if not isinstance(existing, dict) or "sqlite" not in existing and "postgres" not in existing:
            existing = {}
        existing[database] = result
        COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        COUNTS_FILE.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")
        terminalreporter.write_line(f"{'written to':>24}: {COUNTS_FILE.relative_to(ROOT)} [{database}]")
    except OSError as exc:
        terminalreporter.write_line(f"could not write {COUNTS_FILE}: {exc}")
