"""The call, leg and transfer machines against the rules written out here, not read from the code.

Each grid is the rule as the product states it: for every state (row) what every event (column)
does — the new state, ``=`` (allowed and changes nothing: a retried or late webhook) or ``-``
(refused with IllegalTransition, nothing changes). The machines are compared with the grids cell
by cell, so deleting, adding or redirecting any transition in gateway/domain fails a test here.
"""

from __future__ import annotations

import pytest

from gateway.domain import calls as C
from gateway.domain import legs as L
from gateway.domain import transfers as T
from gateway.domain.calls import CALL
from gateway.domain.legs import LEG
from gateway.domain.machine import IllegalTransition, Outcome, StateMachine
from gateway.domain.transfers import TRANSFER

CALL_RULES = """
               agent_joined  agents_left  hold     hold_failed  rebridge  no_agent   hangup  enqueue
    bridging   connected     =            on_hold  -            =         voicemail  ended   queued
    connected  =             bridging     on_hold  =            -         -          ended   -
    on_hold    -             -            =        connected    bridging  voicemail  ended   queued
    queued     -             -            -        -            bridging  voicemail  ended   =
    voicemail  -             -            -        -            -         =          ended   -
    ended      -             -            -        -            -         -          =       -
"""

LEG_RULES = """
               accept    join    decline   no_answer  busy  fail    cancel     leave
    ringing    accepted  joined  declined  no_answer  busy  failed  cancelled  -
    accepted   =         joined  -         -          -     failed  cancelled  left
    joined     -         =       -         -          -     -       left       left
    declined   -         -       =         -          -     -       -          -
    no_answer  -         -       -         =          -     -       -          -
    busy       -         -       -         -          =     -       -          -
    failed     -         -       -         -          -     =       -          -
    cancelled  -         -       -         -          -     -       -          -
    left       -         -       -         -          -     -       -          =
"""

TRANSFER_RULES = """
                     consult_ready  target_dialed   target_accepted  target_declined  target_no_answer  connect      source_left  target_left  cancel     caller_hangup  fail    team_busy  queue
    initiated        consulting     target_ringing  -                -                -                 -            -            -            cancelled  abandoned      failed  team_busy  -
    team_busy        -              -               -                -                -                 -            -            -            cancelled  abandoned      failed  =          queued
    consulting       -              target_ringing  -                -                -                 -            -            -            cancelled  abandoned      failed  -          -
    target_ringing   =              =               target_accepted  declined         no_answer         -            -            -            cancelled  abandoned      failed  -          -
    target_accepted  =              -               =                -                -                 conferenced  -            -            cancelled  abandoned      failed  -          -
    conferenced      -              -               -                -                -                 =            completed    completed    -          completed      failed  -          -
    completed        -              -               -                -                -                 -            =            =            -          -              -       -          -
    queued           -              -               -                -                -                 -            -            -            -          -              -       -          =
    cancelled        -              -               -                -                -                 -            -            -            =          -              -       -          -
    declined         -              -               -                =                -                 -            -            -            -          -              -       -          -
    no_answer        -              -               -                -                =                 -            -            -            -          -              -       -          -
    abandoned        -              -               -                -                -                 -            -            -            -          -              -       -          -
    failed           -              -               -                -                -                 -            -            -            -          -              =       -          -
"""

RULES = {
    "call": (CALL, CALL_RULES, {"ended"}),
    "leg": (LEG, LEG_RULES, {"declined", "no_answer", "busy", "failed", "cancelled", "left"}),
    "transfer": (
        TRANSFER,
        TRANSFER_RULES,
        {"completed", "queued", "cancelled", "declined", "no_answer", "abandoned", "failed"},
    ),
}


def grid(text: str) -> dict[tuple[str, str], str]:
    header, *rows = [line.split() for line in text.strip().splitlines()]
    cells = {}
    for state, *row in rows:
        assert len(row) == len(header), f"row {state} of the grid has {len(row)} cells for {len(header)} events"
        cells.update({(state, event): cell for event, cell in zip(header, row, strict=True)})
    return cells


CELLS = [
    (name, state, event, cell) for name, (_, text, _) in RULES.items() for (state, event), cell in grid(text).items()
]


@pytest.mark.parametrize(("name", "state", "event", "cell"), CELLS, ids=[f"{n}:{s}+{e}" for n, s, e, _ in CELLS])
def test_each_state_and_event_does_what_the_rules_say(name, state, event, cell):
    machine = RULES[name][0]
    if cell == "-":
        with pytest.raises(IllegalTransition) as refused:
            machine.apply(state, event)
        assert (refused.value.machine, refused.value.state, refused.value.event) == (name, state, event)
        assert machine.can(state, event) is False
    else:
        expected = Outcome(state, False) if cell == "=" else Outcome(cell, True)
        assert machine.apply(state, event) == expected
        assert machine.can(state, event) is True


@pytest.mark.parametrize("name", RULES)
def test_the_rules_name_every_state_event_and_ending(name):
    machine, text, terminal = RULES[name]
    cells = grid(text)
    assert machine.states == {s for s, _ in cells}
    assert machine.events == {e for _, e in cells}
    assert machine.terminal == terminal
    assert {s for s in machine.states if machine.is_terminal(s)} == terminal


def test_the_domain_constants_name_the_same_states():
    assert (C.BRIDGING, C.CONNECTED, C.ON_HOLD, C.QUEUED, C.VOICEMAIL, C.ENDED) == (
        "bridging",
        "connected",
        "on_hold",
        "queued",
        "voicemail",
        "ended",
    )
    assert {"bridging", "connected", "on_hold", "queued", "voicemail"} == C.LIVE_STATES
    assert set(L.TERMINAL) == RULES["leg"][2]
    assert set(T.TERMINAL) == RULES["transfer"][2]
    assert T.ACTIVE == ("initiated", "team_busy", "consulting", "target_ringing", "target_accepted", "conferenced")
    # What A's console says when the caller comes back instead of going on to B.
    assert T.RETURN_REASONS == {
        "declined": "declined",
        "no_answer": "did not answer",
        "cancelled": "cancelled",
        "failed": "failed",
    }
    # Twilio's CallStatus of an agent's phone call that ended before anyone answered -> leg event.
    assert L.TWILIO_END_EVENTS == {"busy": "busy", "no-answer": "no_answer", "failed": "fail", "canceled": "cancel"}


def run(machine: StateMachine, start: str, *events: str) -> str:
    state = start
    for event in events:
        state = machine.apply(state, event).state
    return state


# ------------------------------------------------------------------ every ending, as a story
@pytest.mark.parametrize(
    ("story", "events", "ending"),
    [
        ("answered, talked, hung up", ("agent_joined", "hangup"), "ended"),
        ("hung up while ringing", ("hangup",), "ended"),
        ("nobody answered: apology, then hung up", ("no_agent", "hangup"), "ended"),
        ("held for a transfer, hung up on hold", ("agent_joined", "hold", "hangup"), "ended"),
        (
            "held, B never came: back to routing, then voicemail",
            ("agent_joined", "hold", "rebridge", "no_agent"),
            "voicemail",
        ),
        ("hold redirect failed: still with A", ("agent_joined", "hold", "hold_failed"), "connected"),
        ("A left, caller back to ringback", ("agent_joined", "agents_left"), "bridging"),
    ],
)
def test_every_way_a_call_goes(story, events, ending):
    assert run(CALL, "bridging", *events) == ending, story


@pytest.mark.parametrize(
    ("story", "events", "ending"),
    [
        ("accepted in the browser, joined, left", ("accept", "join", "leave"), "left"),
        ("joined the room before the accept callback came", ("join", "leave"), "left"),
        ("pressed 2 on the phone", ("decline",), "declined"),
        ("rang out", ("no_answer",), "no_answer"),
        ("phone busy", ("busy",), "busy"),
        ("the phone call failed", ("fail",), "failed"),
        ("accepted, then the bridge failed", ("accept", "fail"), "failed"),
        ("another agent took the call", ("cancel",), "cancelled"),
        ("accepted, then withdrawn", ("accept", "cancel"), "cancelled"),
        ("in the room when the call was torn down", ("join", "cancel"), "left"),
    ],
)
def test_every_way_an_agent_leg_ends(story, events, ending):
    assert run(LEG, "ringing", *events) == ending, story


@pytest.mark.parametrize(
    ("story", "events", "ending"),
    [
        (
            "warm transfer, A leaves",
            ("consult_ready", "target_dialed", "target_accepted", "connect", "source_left"),
            "completed",
        ),
        (
            "B reached before the consult room",
            ("target_dialed", "consult_ready", "target_accepted", "consult_ready", "connect", "source_left"),
            "completed",
        ),
        (
            "caller hangs up after reaching B",
            ("target_dialed", "target_accepted", "connect", "caller_hangup"),
            "completed",
        ),
        ("B hangs up after the three-way", ("target_dialed", "target_accepted", "connect", "target_left"), "completed"),
        ("B presses 2", ("consult_ready", "target_dialed", "target_declined"), "declined"),
        ("B does not answer", ("consult_ready", "target_dialed", "target_no_answer"), "no_answer"),
        ("A cancels while B rings", ("consult_ready", "target_dialed", "cancel"), "cancelled"),
        ("A cancels after B accepted", ("target_dialed", "target_accepted", "cancel"), "cancelled"),
        ("caller hangs up on hold", ("consult_ready", "target_dialed", "caller_hangup"), "abandoned"),
        ("caller hangs up before anything happened", ("caller_hangup",), "abandoned"),
        ("a provider fails while consulting", ("consult_ready", "fail"), "failed"),
        ("the bridge fails after the three-way", ("target_dialed", "target_accepted", "connect", "fail"), "failed"),
    ],
)
def test_every_way_a_transfer_ends(story, events, ending):
    assert run(TRANSFER, "initiated", *events) == ending, story


# ------------------------------------------------------------------ the machine itself, on a toy table
DOOR = {
    ("new", "fit"): "closed",
    ("closed", "open"): "open",
    ("open", "close"): "closed",
    ("closed", "lock"): "locked",
    ("open", "wave"): "open",
}


def door() -> StateMachine:
    return StateMachine("door", DOOR, terminal=["locked", "broken"])


def test_a_machine_knows_its_states_events_and_endings():
    machine = door()
    assert machine.name == "door"
    assert machine.transitions == DOOR and machine.transitions is not DOOR
    # A state with no way in (new) and a terminal state with no way in (broken) still count.
    assert machine.states == {"new", "closed", "open", "locked", "broken"}
    assert machine.events == {"fit", "open", "close", "lock", "wave"}
    assert machine.terminal == {"locked", "broken"}
    assert machine.is_terminal("locked") and machine.is_terminal("broken")
    assert not machine.is_terminal("open")


def test_a_listed_transition_moves_and_a_listed_loop_does_not_change():
    machine = door()
    assert machine.apply("closed", "open") == Outcome("open", True)
    assert machine.apply("open", "wave") == Outcome("open", False)


def test_an_event_seen_again_after_it_took_effect_changes_nothing():
    machine = door()
    assert machine.apply("open", "open") == Outcome("open", False)  # "open" only ever leads to open
    assert machine.apply("locked", "lock") == Outcome("locked", False)
    assert machine.can("closed", "close")


def test_an_event_that_leads_elsewhere_or_an_unknown_state_is_refused():
    machine = StateMachine("door", {**DOOR, ("stuck", "close"): "stuck"}, terminal=["locked"])
    # "close" leads to closed or to stuck: seeing it while open-and-locked proves nothing, so it is refused.
    with pytest.raises(IllegalTransition) as refused:
        machine.apply("locked", "close")
    assert str(refused.value) == "door: event 'close' is not allowed in state 'locked'"
    assert (refused.value.machine, refused.value.state, refused.value.event) == ("door", "locked", "close")
    with pytest.raises(IllegalTransition) as unknown:
        machine.apply("ajar", "open")
    assert (unknown.value.machine, unknown.value.state, unknown.value.event) == ("door", "ajar", "open")
    assert machine.can("ajar", "open") is False
    assert machine.can("locked", "open") is False


# ------------------------------------------------------------------ what each agent may ask for
# (state, B in the consult room?) -> the console's buttons, in the order the API lists them.
ACTIONS = {
    "initiated": (["cancel"], ["cancel"]),
    "team_busy": (["queue", "cancel"], ["queue", "cancel"]),  # nobody free in the team: A chooses
    "consulting": (["cancel"], ["cancel"]),
    "target_ringing": (["cancel", "accept", "decline"], ["cancel", "accept", "decline"]),
    "target_accepted": (["cancel"], ["complete", "cancel"]),  # connect only once B is in the room
    "conferenced": (["leave"], ["leave"]),
    "completed": ([], []),
    "queued": ([], []),
    "cancelled": ([], []),
    "declined": ([], []),
    "no_answer": ([], []),
    "abandoned": ([], []),
    "failed": ([], []),
}


@pytest.mark.parametrize("state", ACTIONS)
def test_allowed_actions_in_each_transfer_state(state):
    not_joined, joined = ACTIONS[state]
    assert T.allowed_actions(state) == not_joined
    assert T.allowed_actions(state, target_joined=False) == not_joined
    assert T.allowed_actions(state, target_joined=True) == joined


def test_every_transfer_state_has_its_actions_listed():
    assert set(ACTIONS) == TRANSFER.states
    assert T.SOURCE_ACTIONS == ("complete", "queue", "cancel", "leave") and T.TARGET_ACTIONS == ("accept", "decline")


# ------------------------------------------------------------------ how long a person on a phone needs
def test_speech_time_is_counted_in_words_at_polly_pace():
    assert L.speech_s() == 0
    assert L.speech_s("Transfer from Alice.") == pytest.approx(3 * 0.35)
    assert L.speech_s("Reason: a   broken router.", "Press 1 to accept, or 2 to decline.") == pytest.approx(12 * 0.35)


def test_the_whisper_budget_is_the_words_then_the_gather_wait_then_slack():
    assert L.whisper_budget_s() == pytest.approx(6 + 8)
    assert L.whisper_budget_s("Transfer from Alice.", "Press 1 to accept, or 2 to decline.") == pytest.approx(
        11 * 0.35 + 6 + 8
    )
