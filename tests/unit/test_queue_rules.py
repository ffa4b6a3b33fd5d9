"""The queue rules (gateway/domain/queues.py): order, offers, estimates, what callers hear —
examples first, then a property test (hypothesis) over random arrivals, offers, misses and hang-ups."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from gateway.domain import queues as Q
from gateway.domain.machine import IllegalTransition

T0 = datetime(2026, 12, 7, 9, 0, 0)


def entry(n: int, team: str = "billing", state: str = Q.WAITING, priority: int = 0) -> Q.Entry:
    return Q.Entry(id=f"q{n:03d}", team_id=team, state=state, enqueued_at=T0 + timedelta(seconds=n), priority=priority)


def test_first_come_first_served_within_a_team():
    line = [entry(3), entry(1), entry(2)]
    assert Q.next_for(line, ["billing"]).id == "q001"
    assert [Q.position(e, line) for e in line] == [3, 1, 2]


def test_higher_priority_goes_ahead_of_earlier_plain_callers():
    line = [entry(1), entry(2), entry(9, priority=Q.PRIORITY_TRANSFER)]
    assert Q.next_for(line, ["billing"]).id == "q009"
    assert Q.position(line[0], line) == 2


def test_an_agent_in_several_teams_takes_the_oldest_of_them_and_nothing_else():
    line = [entry(5, "billing"), entry(2, "support"), entry(1, "sales")]
    assert Q.next_for(line, ["billing", "support"]).id == "q002"
    assert Q.next_for(line, ["nobody"]) is None


def test_an_entry_being_offered_is_not_offered_again_but_still_counts_ahead():
    line = [entry(1, state=Q.OFFERED), entry(2)]
    assert Q.next_for(line, ["billing"]).id == "q002"
    assert Q.position(line[1], line) == 2


def test_a_missed_offer_returns_the_caller_to_the_head():
    assert Q.ENTRY.apply(Q.OFFERED, "offer_failed").state == Q.WAITING
    line = [entry(1), entry(2), entry(3)]
    line[0] = Q.Entry(**{**line[0].__dict__, "state": Q.OFFERED})  # offered to an agent who misses it
    assert Q.next_for(line, ["billing"]).id == "q002"  # meanwhile, the next agent takes the next caller
    line[0] = Q.Entry(**{**line[0].__dict__, "state": Q.WAITING})
    assert Q.next_for(line, ["billing"]).id == "q001"


def test_offers_are_exactly_once_and_ended_entries_stay_ended():
    assert not Q.ENTRY.apply(Q.OFFERED, "offer").changed  # a duplicate offer changes nothing
    for state, event in itertools.product(Q.TERMINAL, Q.ENTRY.events):
        try:
            outcome = Q.ENTRY.apply(state, event)
        except IllegalTransition:
            continue
        assert (outcome.state, outcome.changed) == (state, False), (state, event)  # a harmless duplicate


@pytest.mark.parametrize(
    ("position", "staffed", "history", "expected"),
    [
        (1, 2, [], None),  # no history: say nothing rather than a wrong number
        (1, 2, [120.0, 180.0], None),  # too little history
        (3, 0, [120.0] * 5, None),  # nobody staffed
        (4, 2, [120.0, 180.0, 150.0], 300.0),
        (1, 3, [60.0, 60.0, 60.0], 20.0),
    ],
)
def test_estimated_wait(position, staffed, history, expected):
    assert Q.estimate_wait_s(position, staffed, history) == expected


@pytest.mark.parametrize(
    ("position", "estimate", "spoken"),
    [
        (1, None, "You are next in line."),
        (4, None, "You are number 4 in line."),
        (2, 20.0, "You are number 2 in line. Your wait should be less than a minute."),
        (5, 61.0, "You are number 5 in line. The estimated wait is about 2 minutes."),
        (3, 60.0, "You are number 3 in line. The estimated wait is about 1 minute."),
    ],
)
def test_what_a_waiting_caller_hears(position, estimate, spoken):
    assert Q.queue_announcement(position, estimate) == spoken


def test_greeting_names_the_team_but_not_the_default_one():
    assert Q.greeting("Billing").startswith("Thank you for calling Billing. All of our agents")
    assert Q.greeting("Default").startswith("Thank you for calling. All of our agents")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Billing", "Billing"), "lowercase"),
        (("billing", " "), "name"),
        (("billing", "Billing", "ftp://x/music.mp3"), "http"),
        (("billing", "Billing", None, 3), "seconds"),
        (("billing", "Billing", None, True), "seconds"),
    ],
)
def test_invalid_teams_are_refused_with_a_reason(args, message):
    with pytest.raises(Q.InvalidTeam, match=message):
        Q.validate_team(*args)


def test_team_lists():
    assert Q.validate_team_list(["billing", "support", "billing"]) == ["billing", "support"]
    for bad in ([], "billing", ["Billing"], [3]):
        with pytest.raises(Q.InvalidTeam):
            Q.validate_team_list(bad)


# ----------------------------------------------------------------------------- property test
TEAMS = ("billing", "support")


class QueueRules(RuleBasedStateMachine):
    """Callers arrive (some at transfer priority), agents of one or both teams free up and are
    offered the next caller, offers are answered, missed or abandoned. Whatever the order of events:
    nobody is offered twice at once; nobody is answered while a caller of their team who stood
    ahead of them when they were offered still waits (unless that one's own offer failed after
    this one was offered); a missed
    caller is the very next one offered in their team; positions are always 1..n."""

    def __init__(self):
        super().__init__()
        self.entries: dict[str, Q.Entry] = {}
        self.step = itertools.count(1)
        self.arrived_at: dict[str, int] = {}
        self.offered_at: dict[str, int] = {}
        self.returned_at: dict[str, int] = {}
        self.must_be_next: dict[str, str] = {}  # team -> entry id that a miss put back at the head

    def set_state(self, entry_id: str, event: str) -> None:
        e = self.entries[entry_id]
        outcome = Q.ENTRY.apply(e.state, event)
        assert outcome.changed
        self.entries[entry_id] = Q.Entry(e.id, e.team_id, outcome.state, e.enqueued_at, e.priority)

    def offered(self) -> list[Q.Entry]:
        return sorted((e for e in self.entries.values() if e.state == Q.OFFERED), key=lambda x: x.id)

    @rule(team=st.sampled_from(TEAMS), transfer=st.booleans())
    def arrive(self, team, transfer):
        n = next(self.step)
        priority = Q.PRIORITY_TRANSFER if transfer else Q.PRIORITY_CALLER
        self.entries[f"q{n:04d}"] = Q.Entry(f"q{n:04d}", team, Q.WAITING, T0 + timedelta(seconds=n), priority)
        self.arrived_at[f"q{n:04d}"] = n

    @rule(teams=st.sampled_from([("billing",), ("support",), TEAMS]))
    def agent_frees(self, teams):
        chosen = Q.next_for(self.entries.values(), teams)
        if chosen is None:
            assert not any(e.state == Q.WAITING and e.team_id in teams for e in self.entries.values())
            return
        head = self.must_be_next.pop(chosen.team_id, None)
        if head is not None:
            assert chosen.id == head or chosen.priority > self.entries[head].priority
        self.set_state(chosen.id, "offer")  # asserts it was waiting: never offered twice at once
        self.offered_at[chosen.id] = next(self.step)

    @precondition(lambda self: self.offered())
    @rule(data=st.data(), outcome=st.sampled_from(["answered", "offer_failed", "hangup"]))
    def offer_ends(self, data, outcome):
        e = data.draw(st.sampled_from(self.offered()))
        self.set_state(e.id, outcome)
        if outcome == "answered":
            skipped = [
                w.id
                for w in self.entries.values()
                if w.team_id == e.team_id
                and w.state == Q.WAITING
                and Q.place_key(w) < Q.place_key(e)
                and self.arrived_at[w.id] < self.offered_at[e.id]  # (a later arrival could not have been chosen)
                and self.returned_at.get(w.id, 0) < self.offered_at[e.id]
            ]
            assert not skipped, f"{e.id} answered while {skipped} waited ahead of it"
        elif outcome == "offer_failed":
            self.returned_at[e.id] = next(self.step)
            head = Q.next_for(self.entries.values(), [e.team_id])
            assert head.id == e.id or Q.place_key(head) < Q.place_key(e)
            self.must_be_next[e.team_id] = head.id

    @precondition(lambda self: any(e.state == Q.WAITING for e in self.entries.values()))
    @rule(data=st.data())
    def caller_hangs_up(self, data):
        waiting = sorted((e for e in self.entries.values() if e.state == Q.WAITING), key=lambda x: x.id)
        e = data.draw(st.sampled_from(waiting))
        self.set_state(e.id, "hangup")
        if self.must_be_next.get(e.team_id) == e.id:
            del self.must_be_next[e.team_id]

    @invariant()
    def positions_are_one_to_n_per_team(self):
        for team in TEAMS:
            live = [e for e in self.entries.values() if e.team_id == team and e.state in Q.LIVE]
            assert sorted(Q.position(e, self.entries.values()) for e in live) == list(range(1, len(live) + 1))


def test_queue_rules_hold_under_random_events():
    run_state_machine_as_test(
        QueueRules,
        settings=settings(
            max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )


MENU = [Q.TeamView(id="billing", name="Billing"), Q.TeamView(id="tech", name="Tech Support")]


@pytest.mark.parametrize(
    ("digits", "speech", "team"),
    [
        ("1", "", "billing"),
        ("2", "", "tech"),
        ("3", "", None),
        ("", "billing please", "billing"),
        ("", "I need tech support", "tech"),
        ("", "TECH", "tech"),
        ("", "two", "tech"),
        ("", "option 1", "billing"),
        ("", "something else", None),
        ("", "", None),
        ("*", "", None),
    ],
)
def test_the_menu_picks_a_team_by_key_or_by_its_name(digits, speech, team):
    assert Q.menu_choice(MENU, digits, speech) == team


def test_the_menu_prompt_names_each_key():
    assert Q.menu_prompt(MENU) == (
        "Thank you for calling. For Billing, press 1 or say Billing. For Tech Support, press 2 or say Tech Support."
    )
    assert Q.menu_hints(MENU) == "Billing, Tech Support, billing, tech"
