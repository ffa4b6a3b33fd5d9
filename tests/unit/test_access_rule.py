"""The access rule for call data (gateway/domain/access.py), case by case."""

from __future__ import annotations

import pytest

from gateway.domain.access import Action, Actor, CallFacts, may, may_be_in_room, resend_destination

LIVE_WITH_A = CallFacts(owner="a", live=True, on_call=frozenset({"a"}))
IN_TRANSFER = CallFacts(owner="a", live=True, on_call=frozenset({"a", "b"}), transfer_source="a", transfer_target="b")
ENDED = CallFacts(owner="a", live=False)
ALL = set(Action)


@pytest.mark.parametrize(
    ("actor", "facts", "allowed"),
    [
        (Actor("a"), LIVE_WITH_A, ALL),
        (Actor("x"), LIVE_WITH_A, set()),  # declined, missed, or never offered
        (Actor("b"), IN_TRANSFER, {Action.VIEW, Action.READ, Action.ANNOTATE, Action.SUMMARISE, Action.RESEND}),
        (Actor("a"), IN_TRANSFER, ALL),
        (Actor("a"), ENDED, {Action.VIEW, Action.READ, Action.ANNOTATE}),  # wrap-up after the call
        (Actor("b"), CallFacts(owner="b", live=True, on_call=frozenset({"b"})), ALL),  # after the hand-over: B's
        (Actor("a"), CallFacts(owner="b", live=True, on_call=frozenset({"b"})), set()),  # ...and no longer A's
        # A handed it on: sees how it ended (record, timeline), not what was said since.
        (
            Actor("a"),
            CallFacts(owner="b", live=True, on_call=frozenset({"b"}), took_part=frozenset("ab")),
            {Action.VIEW},
        ),
        (Actor("s", "supervisor"), LIVE_WITH_A, ALL),
        (Actor("s", "admin"), ENDED, ALL),
    ],
)
def test_who_may_do_what(actor, facts, allowed):
    assert {action for action in Action if may(actor, action, facts)} == allowed


def test_an_unknown_role_counts_as_an_agent():
    assert Actor.of({"id": "x", "role": "root"}) == Actor("x", "agent")
    assert Actor.of({"id": "s", "role": "supervisor"}).oversees


def test_only_a_live_leg_in_that_room_entitles_a_participant():
    legs = [("alice", "call_1"), ("bob", "xfer_2")]

    assert may_be_in_room("alice", "call_1", legs)
    assert not may_be_in_room("alice", "xfer_2", legs)
    assert not may_be_in_room("carol", "call_1", legs)


def test_a_summary_goes_to_the_target_number_or_a_directory_agent_only():
    assert resend_destination(to="+15550001111", agent_phone=None, agent_known=False, target_number="+15550001111")
    assert resend_destination(to="+15559990001", agent_phone=None, agent_known=False, target_number=None) is None
    assert resend_destination(to=None, agent_phone="+15550002222", agent_known=True, target_number=None) == (
        "+15550002222"
    )
    assert resend_destination(to=None, agent_phone=None, agent_known=True, target_number=None) is None
