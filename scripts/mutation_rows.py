"""pytest plugin of scripts/mutation.py: runs the tests with one transition-table row deleted.

MUTATION_DROP_ROW=machine:state:event names the row. The machine is rebuilt in place without it,
exactly as if the row were missing from the source (its states and events are recomputed), so every
module that imported the machine sees the mutant.
"""

from __future__ import annotations

import os

MACHINES = {
    "call": "gateway.domain.calls:CALL",
    "leg": "gateway.domain.legs:LEG",
    "transfer": "gateway.domain.transfers:TRANSFER",
}


def pytest_configure(config):
    machine_name, state, event = os.environ["MUTATION_DROP_ROW"].split(":")
    module, attr = MACHINES[machine_name].split(":")
    machine = getattr(__import__(module, fromlist=[attr]), attr)
    rows = {k: v for k, v in machine.transitions.items() if k != (state, event)}
    assert len(rows) == len(machine.transitions) - 1, f"no row {(state, event)} in {machine_name}"
    machine.__init__(machine.name, rows, machine.terminal)
