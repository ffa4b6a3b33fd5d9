"""Numbers and teams end to end: a number with one team goes straight there; a number with several
asks the caller (a key or the team's name) and the choice decides who is offered the call."""

from __future__ import annotations

from gateway.sandbox.runtime import PHONE_NUMBER


def said(call) -> str:
    return " | ".join(e[1] for e in call.events if e[0] == "say")


def billing_and_support(world):
    world.services.teams.add("billing", "Billing")
    world.services.teams.add("support", "Support")
    bea = world.add_agent("bea", status="offline")
    sue = world.add_agent("sue", status="offline")
    world.services.teams.set_agent_teams("bea", ["billing"])
    world.services.teams.set_agent_teams("sue", ["support"])
    for agent_id in ("bea", "sue"):
        world.services.agents.set_status(agent_id, "available")
    world.services.teams.set_number(PHONE_NUMBER, ["billing", "support"])
    return bea, sue


def test_a_key_at_the_menu_picks_the_team(world):
    bea, sue = billing_and_support(world)
    call = world.call()
    call.wait_for(lambda c: "press 2" in said(c), timeout=10)
    assert "For Billing, press 1 or say Billing. For Support, press 2 or say Support." in said(call)
    call.press("2")
    offer = sue.wait_offer(timeout=10)
    assert offer["call_id"] == world.db_call(call.sid)["id"]
    assert bea.offers() == []
    detail = world.services.views.timeline(offer["call_id"])
    chosen = next(e for e in detail if e["kind"] == "menu_chosen")
    assert chosen["detail"] == {"team": "support", "by": "key"}


def test_saying_the_team_name_picks_it(world):
    bea, sue = billing_and_support(world)
    call = world.call()
    call.wait_for(lambda c: c.current and c.current.startswith(("say", "gather")) and "Billing" in said(c), timeout=10)
    call.speak("billing please")
    offer = bea.wait_offer(timeout=10)
    assert offer["call_id"] == world.db_call(call.sid)["id"]
    assert sue.offers() == []
    assert ("gather_speech", "billing please") in call.events


def test_no_answer_at_the_menu_asks_again_then_goes_to_the_first_team(world):
    bea, sue = billing_and_support(world)
    call = world.call()
    offer = bea.wait_offer(timeout=30)
    assert offer["call_id"] == world.db_call(call.sid)["id"]
    assert "Sorry, I didn't catch that." in said(call)
    kinds = world.timeline(offer["call_id"])
    assert kinds.count("menu_offered") == 1 and "menu_chosen" in kinds


def test_a_number_with_one_team_has_no_menu(world):
    world.services.teams.add("billing", "Billing")
    bea = world.add_agent("bea", status="offline")
    world.services.teams.set_agent_teams("bea", ["billing"])
    world.services.agents.set_status("bea", "available")
    world.services.teams.set_number(PHONE_NUMBER, ["billing"])
    call = world.call()
    offer = bea.wait_offer(timeout=10)
    assert offer["call_id"] == world.db_call(call.sid)["id"]
    assert "press 1" not in said(call)
    assert "menu_offered" not in world.timeline(offer["call_id"])
