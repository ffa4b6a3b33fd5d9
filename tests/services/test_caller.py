"""The caller's lifecycle over a unit of work, from the voice webhook on: what the caller hears
(the reply the web layer renders as TwiML), who is rung, and every way the call ends for them.
The same tests on the in-memory twin and on the database (conftest.py)."""

from __future__ import annotations

from gateway.domain import agents as agent_rules
from gateway.domain import calls as C
from gateway.domain import queues as Q
from gateway.services import job_types as J
from gateway.services.ports import Dest
from gateway.services.replies import Apology, Bridge, Hold, Menu
from tests.services.conftest import MAX_WAIT_S

AVAILABLE, BUSY, OFFLINE = agent_rules.AVAILABLE, agent_rules.BUSY, agent_rules.OFFLINE
SID, CALLER, SALES_LINE, MAIN_LINE = "CA" + "1" * 32, "+15557654321", "+15550001001", "+15550001000"


def dial_in(desk, to=SALES_LINE, sid=SID):
    """Twilio's voice webhook for a caller dialling ``to``: (what they hear, the call's id)."""
    reply = desk.caller.inbound(call_sid=sid, from_number=CALLER, to_number=to)
    return reply, desk.units.read(lambda uow: uow.calls.by_sid(sid).id)


def numbers(desk, **lines):
    def work(uow):
        for number, teams in lines.items():
            for position, team_id in enumerate(teams, start=1):
                uow.teams.add_number(number, team_id, position)

    desk.run(work)


def test_a_caller_dialling_a_teams_number_hears_ringback_while_its_longest_idle_member_is_rung(desk):
    desk.agent("alice", teams=["sales"], idle_min=10)
    desk.agent("bob", teams=["support"], idle_min=60)
    numbers(desk, **{SALES_LINE: ["sales"]})

    reply, call = dial_in(desk)

    assert isinstance(reply, Bridge) and reply.room == desk.units.read(lambda uow: uow.calls.get(call).room)
    assert desk.ringing(call) == [("alice", "browser")]
    assert desk.kinds(call) == ["call_received", "agent_ringing"]
    assert desk.timeline(call)[0][2]["caller"].endswith("4321")


def test_a_retried_voice_webhook_is_answered_the_same_and_changes_nothing(desk):
    desk.agent("alice", teams=["sales"], idle_min=10)
    desk.agent("bob", teams=["sales"], idle_min=5)
    numbers(desk, **{SALES_LINE: ["sales"]})
    first, call = dial_in(desk)

    again, same = dial_in(desk)  # Twilio did not get our answer in time and asks again

    assert same == call and again.room == first.room
    assert desk.ringing(call) == [("alice", "browser")]  # bob is not rung for the same caller
    assert desk.status("bob") == AVAILABLE


def test_a_number_of_two_teams_asks_the_caller_which_and_routes_the_choice(desk):
    desk.agent("alice", teams=["sales"], idle_min=10)
    desk.agent("bob", teams=["support"], idle_min=5)
    numbers(desk, **{MAIN_LINE: ["sales", "support"]})

    reply, call = dial_in(desk, to=MAIN_LINE)

    assert isinstance(reply, Menu) and "2" in reply.prompt
    assert desk.ringing(call) == []
    chosen = desk.caller.menu_choice(call, digits="2", speech="", attempt=1)
    assert isinstance(chosen, Bridge)
    assert desk.ringing(call) == [("bob", "browser")]
    assert desk.timeline(call)[-2][:2] == ("menu_chosen", None)
    assert desk.timeline(call)[-2][2] == {"team": "support", "by": "key"}


def test_nobody_signed_in_and_the_caller_hears_the_apology_at_once(desk):
    desk.agent("alice", teams=["sales"], status=OFFLINE)
    numbers(desk, **{SALES_LINE: ["sales"]})

    reply, call = dial_in(desk)

    assert isinstance(reply, Apology)
    assert desk.call_state(call) == (C.VOICEMAIL, "nobody staffed")
    assert desk.kinds(call) == ["call_received", "no_agent"]


def test_with_everyone_busy_the_caller_hears_the_line_and_after_the_longest_wait_voicemail(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    numbers(desk, **{SALES_LINE: ["sales"]})

    reply, call = dial_in(desk)

    assert isinstance(reply, Hold) and reply.message.endswith("You are next in line.")
    assert desk.line("sales", call) == {call: (Q.WAITING, 1)}
    assert (J.QueueTimeout(call), MAX_WAIT_S) in desk.jobs(J.QueueTimeout.kind)

    desk.caller.queue_timeout(call)  # the longest wait is over

    assert desk.call_state(call) == (C.VOICEMAIL, "queue timeout")
    assert desk.line("sales", call) == {}
    assert desk.jobs(J.RedirectCaller.kind) == [(J.RedirectCaller(call, Dest.APOLOGY), 0)]


def test_the_caller_hangs_up_while_an_agent_is_rung_and_the_agent_is_free_again(desk):
    desk.agent("alice", teams=["sales"], idle_min=10, phone="+15550002222")
    numbers(desk, **{SALES_LINE: ["sales"]})
    _, call = dial_in(desk)
    browser, phone = desk.live_leg_ids(call)

    desk.caller.caller_status(SID, "completed")

    assert desk.call_state(call) == (C.ENDED, "caller completed")
    assert desk.ringing(call) == []
    assert desk.status("alice") == AVAILABLE
    assert (J.HangupLeg(phone), 0) in desk.jobs(J.HangupLeg.kind)  # her phone stops ringing


def test_the_bridge_to_the_room_is_lost_and_the_caller_is_rung_to_the_next_agent_on_hold(desk):
    desk.agent("alice", teams=["sales"], status=BUSY)
    desk.agent("bob", teams=["sales"], idle_min=5)
    call, _ = desk.connected_call("alice", team="sales")
    room = desk.units.read(lambda uow: uow.calls.get(call).room)

    reply = desk.caller.dial_ended(call, room, dial_status="completed", call_status="in-progress", sip_code=None)

    assert isinstance(reply, Hold)
    assert desk.call_state(call) == (C.ON_HOLD, None)
    assert desk.ringing(call) == [("bob", "browser")]
    assert desk.status("alice") == AVAILABLE
    assert desk.kinds(call)[:1] == ["bridge_lost"]
