"""Shared steps of the security suite: a connected call, a warm transfer, signed webhooks."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from tests.conftest import World

CALLER = "+15557654321"


def connect_call(world: World, agent):
    """A call answered in the browser by ``agent``: (simulated call, call id)."""
    call = world.call(CALLER)
    offer = agent.wait_offer()
    agent.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected")
    return call, offer["call_id"]


def warm_transfer(world: World, source, target, call_id: str) -> tuple[dict, str]:
    """A starts a warm transfer to B; A follows into the consult room and B accepts and joins.
    Returns (transfer, A's consult-room token)."""
    reply = source.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": target.id})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    join = world.wait(
        lambda: (lambda r: r if r.status_code == 200 else None)(
            source.post("/api/rooms/join", {"room": transfer["consult_room"]})
        ),
        what="consult room ready for A",
    )
    source_token = join.json()["token"]
    source.join(source_token)
    target.wait_offer("transfer")
    accepted = target.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    target.join(accepted.json()["token"])
    world.wait(lambda: world.services.views.transfer(transfer["id"])["state"] == "target_accepted", what="B accepted")
    # B's join reaches the gateway by LiveKit's webhook, after the join itself: A may connect the
    # caller once the transfer says so (what the console waits for too).
    world.wait(
        lambda: "complete" in world.services.views.transfer(transfer["id"])["allowed_actions"],
        what="B in the consult room",
    )
    return transfer, source_token


def signed_post(session, world: World, path: str, form: dict, **kwargs):
    url = world.url + path
    signature = RequestValidator(world.settings.twilio_auth_token).compute_signature(url, form)
    return session.post(url, data=form, headers={"X-Twilio-Signature": signature}, **kwargs)
