"""A restart loses nothing: calls and transfers in progress come back from the store."""

from __future__ import annotations

from tests.e2e.test_transfer import CALLER, connect_call, start_warm, transfer_state, wait_joined


def test_call_in_progress_survives_a_restart(world):
    alice = world.add_agent("alice")
    call, call_id = connect_call(world, alice)
    room = world.db_call(call.sid)["room"]
    world.restart()
    assert world.db_call(call.sid)["state"] == "connected"
    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="ended by the new process")
    world.wait(lambda: room not in world.livekit.rooms(), what="room closed by the new process")


def test_ring_timeout_set_before_a_restart_fires_after_it(world):
    world.add_agent("dave")
    erin = world.add_agent("erin")
    call = world.call(CALLER)
    world.wait(lambda: world.livekit.rooms() and any(o for o in world.services.views.offers("dave")))
    world.restart()  # dave's ring timeout is a stored deadline: the new process acts on it
    offer = erin.wait_offer(timeout=10)
    assert ("ring_timeout", "done") in world.timers()  # dave's offer was still ringing: it fired
    erin.accept_and_join(offer["call_id"])
    call.wait_current("bridged", timeout=8)


def test_transfer_mid_way_survives_a_restart(make_world):
    # Real time: the held caller's music loop must not fall into the restart's brief gap
    # (Twilio would then play its application error, as it would for any unreachable gateway).
    world = make_world(time_scale=1.0)
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
    bob.wait_offer("transfer")
    call.wait_current("play", timeout=8)  # the process dies while the caller hears hold music
    world.restart()
    accepted = bob.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    wait_joined(world, call_id, "bob", transfer["consult_room"])
    assert alice.post(f"/api/transfers/{transfer['id']}/complete").status_code == 200
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", what="completed")
    world.wait(
        lambda: world.participants(transfer["consult_room"]) == sorted(["bob", f"sip_{CALLER}"]),
        what="caller with B only",
    )
