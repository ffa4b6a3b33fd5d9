"""Every transition of the call, leg and transfer machines; every other event is refused."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.calls import CALL
from gateway.domain.legs import LEG
from gateway.domain.machine import IllegalTransition
from gateway.domain.transfers import TRANSFER

MACHINES = [CALL, LEG, TRANSFER]


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_every_listed_transition_applies(machine):
    for (state, event), target in machine.transitions.items():
        outcome = machine.apply(state, event)
        assert outcome.state == target
        assert outcome.changed == (state != target)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_unlisted_events_are_illegal_or_harmless_duplicates(machine):
    for state, event in itertools.product(machine.states, machine.events):
        if (state, event) in machine.transitions:
            continue
        if machine.is_duplicate(state, event):
            assert machine.apply(state, event).changed is False
        else:
            with pytest.raises(IllegalTransition):
                machine.apply(state, event)


@pytest.mark.parametrize("machine", MACHINES, ids=lambda m: m.name)
def test_terminal_states_stay_terminal(machine):
    for state in machine.terminal:
        for event in machine.events:
            try:
                outcome = machine.apply(state, event)
            except IllegalTransition:
                continue
            assert outcome.state == state and not outcome.changed


def test_duplicate_webhook_changes_nothing():
    assert CALL.apply("ended", "hangup").changed is False
    assert LEG.apply("joined", "join").changed is False


def test_transfer_happy_path_in_order():
    state = "initiated"
    for event in ("consult_ready", "target_dialed", "target_accepted", "connect", "source_left"):
        state = TRANSFER.apply(state, event).state
    assert state == "completed"


def test_cannot_connect_before_target_accepts():
    with pytest.raises(IllegalTransition):
        TRANSFER.apply("target_ringing", "connect")


# The event each console action offers the transfer machine (TransferService and the leg outcomes).
ACTION_EVENTS = {
    "complete": "connect",
    "cancel": "cancel",
    "leave": "source_left",
    "accept": "target_accepted",
    "decline": "target_declined",
}


@pytest.mark.parametrize("state", sorted(TRANSFER.states))
def test_allowed_actions_are_exactly_the_moves_the_transfer_can_make(state):
    from gateway.domain.transfers import allowed_actions

    for joined in (False, True):
        actions = allowed_actions(state, target_joined=joined)
        for action, event in ACTION_EVENTS.items():
            moves = (state, event) in TRANSFER.transitions and TRANSFER.transitions[(state, event)] != state
            expected = moves and (action != "complete" or joined)
            assert (action in actions) == expected, (state, joined, action, actions)
    if TRANSFER.is_terminal(state):
        assert allowed_actions(state, True) == []
