"""Counters the fault suite reports at the end (see conftest.pytest_terminal_summary)."""

from __future__ import annotations

import threading

COUNTS = {
    "faults_injected": 0,
    "crashes_survived": 0,
    "bad_inputs_tried": 0,
    "fuzz_requests": 0,
    "state_machine_sequences": 0,
}
_lock = threading.Lock()


def bump(name: str, n: int = 1) -> None:
    with _lock:
        COUNTS[name] = COUNTS.get(name, 0) + n
