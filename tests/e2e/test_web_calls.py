"""Callers from the web, end to end over HTTP: the page's API, the LiveKit double, the same queues,
routing and warm transfer as a phone call. Asserted on what the caller's page is told and who is
in which room."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from gateway.domain import web_calls as W
from tests.conftest import World
from tests.e2e.test_transfer import consult_room_for, transfer_state, wait_joined

SECRET = "shop-shared-secret"


@pytest.fixture
def world(make_world):
    """The shared World, with offers ringing as long as a person's would: these tests answer them
    one step at a time, and a loaded machine must not turn that into a missed offer."""
    return make_world(ring_timeout_s=15.0)


class WebCaller:
    """What the caller page does: create the call, join with the token, follow the status."""

    def __init__(self, world: World, origin: str | None = None, **body):
        self.world = world
        headers = {"Origin": origin} if origin else {}
        self.reply = requests.post(world.url + "/api/web-calls", json=body, headers=headers, timeout=10)
        self.data = self.reply.json()
        self.call_id = self.data.get("call_id")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.data.get('access')}"
        self.room: str | None = None
        self.identity: str | None = None

    def join(self, token: str) -> requests.Response:
        reply = requests.post(self.world.livekit.url + "/_sim/rtc/join", json={"token": token}, timeout=5)
        if reply.status_code == 200:
            old = (self.room, self.identity)
            self.room, self.identity = reply.json()["room"], reply.json()["identity"]
            if old[0] and old[0] != self.room:  # the page joins the new room first, then leaves the old one
                requests.post(
                    self.world.livekit.url + "/_sim/rtc/leave", json={"room": old[0], "identity": old[1]}, timeout=5
                )
        return reply

    def rejoin(self, secret: str | None = None) -> requests.Response:
        """What the page does after a reload or a dropped connection: the secret it kept buys a
        token for the call's room now (and the next secret, kept in its place)."""
        used = secret or self.data["rejoin_secret"]
        reply = requests.post(
            f"{self.world.url}/api/web-calls/{self.call_id}/rejoin", json={"secret": used}, timeout=10
        )
        if reply.status_code == 200:
            self.data = self.data | {"rejoin_secret": reply.json()["rejoin_secret"]}
            self.http.headers["Authorization"] = f"Bearer {reply.json()['access']}"
        return reply

    def leave(self) -> None:
        requests.post(
            self.world.livekit.url + "/_sim/rtc/leave", json={"room": self.room, "identity": self.identity}, timeout=5
        )

    def status(self) -> dict:
        reply = self.http.get(f"{self.world.url}/api/web-calls/{self.call_id}", timeout=5)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def follow(self) -> dict:
        """One poll: join when the status says so (as the page does)."""
        status = self.status()
        if status["join"]:
            token = self.http.post(f"{self.world.url}/api/web-calls/{self.call_id}/join", timeout=5)
            assert token.status_code == 200, token.text
            assert self.join(token.json()["token"]).status_code == 200
            status = self.status()
        return status

    def wait_state(self, state: str, timeout: float = 10) -> dict:
        return self.world.wait(
            lambda: (s := self.follow())["state"] == state and s,
            timeout,
            f"page state {state}",
            explain=lambda: f"{self.status()}; timeline {self.world.timeline(self.call_id)}",
        )


def test_web_caller_answered_then_warm_transferred_with_hold_and_completed(world):
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    caller = WebCaller(world, origin=world.url)
    assert caller.reply.status_code == 201, caller.reply.text
    assert caller.data["media"] == "sandbox" and caller.data["context"] == "none"
    assert caller.join(caller.data["token"]).status_code == 200
    assert caller.wait_state("ringing")["message"]

    offer = alice.wait_offer()
    assert offer["call_id"] == caller.call_id and offer["channel"] == "web"
    alice.accept_and_join(caller.call_id)
    caller.wait_state("connected")
    call_room = caller.room
    assert world.participants(call_room) == sorted(["alice", caller.identity])
    # A phone-less call: nothing was asked of Twilio for it.
    assert world.services.views.call(caller.call_id)["channel"] == "web"

    notes = "Web caller Maria Lopez, order 5521 arrived damaged, wants a replacement."
    reply = alice.post(
        "/api/transfer/initiate", {"call_id": caller.call_id, "target_agent_id": "bob", "mode": "warm", "notes": notes}
    )
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    held = caller.wait_state("on_hold")
    assert held["message"] == W.HOLD_ANNOUNCEMENT and held["hold_music_url"]
    consult_room_for(world, alice, transfer)
    # Nobody else stays in the caller's room while they are on hold; the consult room is private.
    world.wait(lambda: world.participants(call_room) == [caller.identity], what="caller alone on hold")
    accepted = bob.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    wait_joined(world, caller.call_id, "bob", transfer["consult_room"])
    assert caller.status()["state"] == "on_hold"
    assert caller.identity not in world.participants(transfer["consult_room"])

    summary = world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    assert "5521" in str(summary) or "Maria" in str(summary)  # notes alone make the summary

    done = alice.post(f"/api/transfers/{transfer['id']}/complete")
    assert done.status_code == 200, done.text
    caller.wait_state("connected")
    room = transfer["consult_room"]
    assert caller.room == room
    world.wait(lambda: world.participants(room) == sorted(["alice", "bob", caller.identity]), what="three-way")
    assert alice.post(f"/api/transfers/{transfer['id']}/leave").status_code == 200
    world.wait(lambda: world.participants(room) == sorted(["bob", caller.identity]), what="A dropped")
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", what="completed")
    world.wait(lambda: call_room not in world.livekit.rooms(), what="the old room deleted")

    assert caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/hangup").status_code == 200
    world.wait(lambda: caller.status()["state"] == "ended", what="ended")
    world.wait(lambda: room not in world.livekit.rooms(), what="the room deleted")


def test_web_caller_waits_in_the_queue_with_a_position_then_is_answered(world):
    alice = world.add_agent("alice", status="offline")
    world.add_agent("zed", status="busy")  # signed in, not free: callers wait in line
    first, second = WebCaller(world), WebCaller(world)
    for caller in (first, second):
        assert caller.reply.status_code == 201, caller.reply.text
        assert caller.join(caller.data["token"]).status_code == 200
    assert first.wait_state("queued")["position"] == 1
    status = second.wait_state("queued")
    assert status["position"] == 2 and "2" in status["message"] and status["hold_music_url"]
    world.services.agents.set_status("alice", "available")
    offer = alice.wait_offer()
    assert offer["call_id"] == first.call_id
    alice.accept_and_join(first.call_id)
    first.wait_state("connected")
    assert second.wait_state("queued")["position"] == 1


def test_token_grants_one_room_microphone_only_no_data_short_lived(world):
    world.add_agent("alice")
    caller = WebCaller(world)
    claims = jwt.decode(caller.data["token"], options={"verify_signature": False})
    video = claims["video"]
    assert video["room"] == caller.data["room"] and video["roomJoin"] is True
    assert video["canPublish"] is True and video["canPublishSources"] == ["microphone"]
    assert video["canSubscribe"] is True and video["canPublishData"] is False
    assert not any(video.get(k) for k in ("roomAdmin", "roomCreate", "roomList", "roomRecord", "ingressAdmin"))
    assert claims["exp"] - claims["nbf"] <= 60 and claims["exp"] - time.time() <= 60
    assert claims["sub"] == caller.data["identity"]


def test_a_caller_token_is_single_use(world):
    world.add_agent("alice")
    caller = WebCaller(world)
    assert caller.join(caller.data["token"]).status_code == 200
    caller.wait_state("ringing")
    # The same token used again (a copy): LiveKit lets it in, the gateway takes it out at once.
    requests.post(world.livekit.url + "/_sim/rtc/join", json={"token": caller.data["token"]}, timeout=5)
    world.wait(lambda: caller.identity not in world.participants(caller.room), what="the second join removed")
    assert "participant_removed" in world.timeline(caller.call_id)
    # And no second token for the same room is given.
    again = caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/join")
    assert again.status_code == 409 and "error" in again.json()


def test_unanswered_web_call_that_never_joins_is_given_up_and_its_room_deleted(make_world):
    world = make_world()
    world.add_agent("alice")
    caller = WebCaller(world)
    assert caller.reply.status_code == 201
    world.wait(lambda: caller.data["room"] in world.livekit.rooms(), what="room made")
    # The deadline: the page never joined. (Run the timer now rather than wait 75 s.)
    world.services.web_callers.join_deadline(caller.call_id, 0)
    world.wait(lambda: caller.status()["state"] == "ended", what="given up")
    assert "browser could not connect" in caller.status()["message"]
    world.wait(lambda: caller.data["room"] not in world.livekit.rooms(), what="room deleted")


def test_web_caller_closing_the_page_ends_the_call_once_the_rejoin_grace_is_over(make_world):
    world = make_world(ring_timeout_s=15.0, web_call_rejoin_s=2.0)
    alice = world.add_agent("alice")
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    alice.wait_offer()
    alice.accept_and_join(caller.call_id)
    caller.wait_state("connected")
    room = caller.room
    caller.leave()
    world.wait(lambda: "web_caller_away" in world.timeline(caller.call_id), what="the caller away")
    # Their agent stays with the call for the grace period: the page may come back.
    assert world.services.views.call(caller.call_id)["state"] == "connected"
    assert "alice" in world.participants(room)
    status = world.wait(lambda: (s := caller.status())["state"] == "ended" and s, timeout=10, what="ended")
    assert "did not come back in time" in status["message"]
    assert world.services.views.call(caller.call_id)["end_reason"] == W.LEFT
    world.wait(lambda: room not in world.livekit.rooms(), what="the room deleted, the agent out")
    gone = caller.rejoin()
    assert gone.status_code == 410 and "ended" in gone.json()["error"]


def test_with_no_rejoin_grace_the_page_leaving_ends_the_call_at_once(make_world):
    world = make_world(ring_timeout_s=15.0, web_call_rejoin_s=0.0)
    alice = world.add_agent("alice")
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    alice.accept_and_join(alice.wait_offer()["call_id"])
    caller.wait_state("connected")
    caller.leave()
    world.wait(lambda: caller.status()["state"] == "ended", what="caller gone")
    assert world.services.views.call(caller.call_id)["end_reason"] == "web caller hung up"
    assert "web_caller_away" not in world.timeline(caller.call_id)


def test_a_queued_web_caller_who_reloads_rejoins_and_is_answered_in_their_original_order(world):
    alice = world.add_agent("alice", status="offline")
    world.add_agent("zed", status="busy")  # signed in, not free: callers wait in line
    first, second = WebCaller(world), WebCaller(world)
    for caller in (first, second):
        assert caller.reply.status_code == 201, caller.reply.text
        assert caller.join(caller.data["token"]).status_code == 200
    assert first.wait_state("queued")["position"] == 1
    assert second.wait_state("queued")["position"] == 2
    old_identity, used = first.identity, first.data["rejoin_secret"]

    first.leave()  # the page reloads
    world.wait(lambda: "web_caller_away" in world.timeline(first.call_id), what="the caller away")
    back = first.rejoin()
    assert back.status_code == 200, back.text
    data = back.json()
    assert data["room"] == first.room and data["identity"] != old_identity and data["rejoin_secret"] != used
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["video"]["room"] == first.room and claims["exp"] - time.time() <= 60
    assert first.join(data["token"]).status_code == 200
    assert first.wait_state("queued")["position"] == 1  # their place kept
    assert second.status()["position"] == 2

    # The secret used is refused from then on, and changes nothing.
    timeline = world.timeline(first.call_id)
    stale = first.rejoin(used)
    assert stale.status_code == 403 and "no longer" in stale.json()["error"]
    assert world.timeline(first.call_id) == timeline
    assert first.identity in world.participants(first.room)

    world.services.agents.set_status("alice", "available")
    offer = alice.wait_offer()
    assert offer["call_id"] == first.call_id  # ahead of the later caller
    alice.accept_and_join(first.call_id)
    first.wait_state("connected")
    assert world.participants(first.room) == sorted(["alice", first.identity])
    assert second.wait_state("queued")["position"] == 1


def test_a_queued_web_caller_who_does_not_come_back_is_ended_after_the_grace_period(make_world):
    world = make_world(web_call_rejoin_s=2.0)
    world.add_agent("zed", status="busy")
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    caller.wait_state("queued")
    caller.leave()
    world.wait(lambda: "web_caller_away" in world.timeline(caller.call_id), what="the caller away")
    assert caller.status()["state"] == "queued"  # still in line, for now
    world.wait(lambda: caller.status()["state"] == "ended", timeout=10, what="ended after the grace period")
    timeline = world.timeline(caller.call_id)
    assert timeline.index("web_caller_away") < timeline.index("web_caller_did_not_return")
    assert "queue_abandoned" in timeline and "call_ended" in timeline
    assert world.services.views.call(caller.call_id)["end_reason"] == W.LEFT
    world.wait(lambda: caller.room not in world.livekit.rooms(), what="room deleted")
    late = caller.rejoin()
    assert late.status_code == 410 and late.json()["error"]


def test_a_rejoin_replaces_the_page_still_in_the_room_and_hang_up_ends_at_once(world):
    alice = world.add_agent("alice")
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    alice.accept_and_join(alice.wait_offer()["call_id"])
    caller.wait_state("connected")
    room, before = caller.room, caller.identity
    wrong = requests.post(f"{world.url}/api/web-calls/{caller.call_id}/rejoin", json={"secret": "guess"}, timeout=5)
    assert wrong.status_code == 403
    replaced = requests.Session()
    replaced.headers["Authorization"] = caller.http.headers["Authorization"]
    back = caller.rejoin()  # (a page whose connection dropped without LiveKit noticing yet)
    assert back.status_code == 200, back.text
    world.wait(lambda: before not in world.participants(room), what="the old session removed")
    # The page it replaced (another tab with a copy of the secret, say) is out: its access is refused.
    for method, path in (("get", ""), ("post", "/join"), ("post", "/hangup")):
        refused = getattr(replaced, method)(f"{world.url}/api/web-calls/{caller.call_id}{path}", timeout=5)
        assert refused.status_code == 403 and "replaced" in refused.json()["error"], (path, refused.text)
    assert caller.status()["state"] != "ended"
    assert caller.join(back.json()["token"]).status_code == 200
    world.wait(lambda: world.participants(room) == sorted(["alice", caller.identity]), what="back with A")
    assert caller.wait_state("connected")

    hung_up = caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/hangup", timeout=5)
    assert hung_up.status_code == 200 and hung_up.json()["state"] == "ended"
    assert world.services.views.call(caller.call_id)["end_reason"] == "web caller hung up"
    world.wait(lambda: room not in world.livekit.rooms(), timeout=5, what="the room deleted at once")
    assert caller.rejoin().status_code == 410


def test_rejoins_are_rate_limited_per_call_even_with_the_right_secret(world):
    world.add_agent("alice")
    caller = WebCaller(world)
    url = f"{world.url}/api/web-calls/{caller.call_id}/rejoin"
    guesses = [requests.post(url, json={"secret": f"guess-{n}"}, timeout=5) for n in range(11)]
    assert [r.status_code for r in guesses[:10]] == [403] * 10
    assert guesses[10].status_code == 429 and int(guesses[10].headers["Retry-After"]) > 0
    assert caller.rejoin().status_code == 429
    assert "web_caller_rejoined" not in world.timeline(caller.call_id)


def test_rate_limit_cap_and_origins(make_world):
    world = make_world(web_call_origins=("https://shop.example",), web_calls_max=2)
    world.add_agent("alice")
    refused = WebCaller(world, origin="https://evil.example")
    assert refused.reply.status_code == 403 and "WEB_CALL_ORIGINS" in refused.data["error"]
    assert "Access-Control-Allow-Origin" not in refused.reply.headers
    preflight = requests.options(
        world.url + "/api/web-calls",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        timeout=5,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    allowed = WebCaller(world, origin="https://shop.example")
    assert allowed.reply.status_code == 201, allowed.reply.text
    assert allowed.reply.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert WebCaller(world).reply.status_code == 201
    capped = WebCaller(world)
    assert capped.reply.status_code == 429 and "at most 2" in capped.data["error"]
    assert capped.reply.headers["Retry-After"]
    page = requests.get(world.url + "/call", timeout=5)
    assert "frame-ancestors 'self' https://shop.example" in page.headers["Content-Security-Policy"]


def test_per_address_rate_limit(make_world):
    world = make_world(web_calls_max=100)
    world.add_agent("alice")
    replies = [WebCaller(world).reply for _ in range(6)]
    assert [r.status_code for r in replies[:5]] == [201] * 5
    assert replies[5].status_code == 429 and "per address" in replies[5].json()["error"]
    assert int(replies[5].headers["Retry-After"]) > 0


def test_signed_context_is_shown_and_used_forged_and_expired_are_ignored(make_world):
    world = make_world(web_call_context_secret=SECRET)
    alice = world.add_agent("alice")
    context = {"customer_id": "C-1001", "name": "Maria Lopez", "page": "/orders/5521", "note": "Damaged parcel"}
    signed = WebCaller(world, context=W.sign_context(context, SECRET))
    assert signed.data["context"] == "verified"
    facts = world.services.views.call(signed.call_id)["facts"]
    assert facts == {"context": context}
    offer = alice.wait_offer()
    assert offer["context"]["name"] == "Maria Lopez"

    forged = WebCaller(world, context=W.sign_context({"name": "Admin"}, "not-the-secret"))
    expired = WebCaller(world, context=W.sign_context({"name": "Old"}, SECRET, now=time.time() - 3600))
    unsigned = WebCaller(world, context='{"name": "Trust me"}')
    for caller, why in ((forged, "bad signature"), (expired, "expired"), (unsigned, "malformed")):
        assert caller.reply.status_code == 201, caller.reply.text
        assert caller.data["context"] == "ignored"
        assert world.services.views.call(caller.call_id)["facts"] is None
        ignored = [e for e in world.services.views.timeline(caller.call_id) if e["kind"] == "web_context_ignored"]
        assert ignored and ignored[0]["detail"]["reason"] == why


def test_status_needs_the_calls_own_access_token(world):
    world.add_agent("alice")
    one, other = WebCaller(world), WebCaller(world)
    assert requests.get(f"{world.url}/api/web-calls/{one.call_id}", timeout=5).status_code == 401
    stolen = other.http.get(f"{world.url}/api/web-calls/{one.call_id}", timeout=5)
    assert stolen.status_code == 403 and stolen.json()["error"]


def test_web_caller_cold_transferred_to_b_and_counted_by_channel_on_the_board(world):
    from tests.conftest import AgentClient

    carol = world.add_agent("carol")
    alice, bob = world.add_agent("alice", status="offline"), world.add_agent("bob", status="offline")
    credential = world.services.agents.add("sue", "Sue", None, True, "offline", role="supervisor")
    sue = AgentClient(world, "sue", credential)
    phone = world.call()  # a phone caller too (Carol takes it): the board counts both, by channel
    carol.accept_and_join(carol.wait_offer()["call_id"])
    phone.wait_current("bridged", timeout=8)
    world.services.agents.set_status("alice", "available")
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    offer = world.wait(
        lambda: next((o for o in alice.offers() if o["call_id"] == caller.call_id), None), what="web offer"
    )
    assert offer["channel"] == "web" and offer["caller"] == "web caller"
    alice.accept_and_join(caller.call_id)
    caller.wait_state("connected")

    assert bob.post("/api/agents/me/status", {"status": "available"}).status_code == 200
    reply = alice.post("/api/transfer/initiate", {"call_id": caller.call_id, "target_agent_id": "bob", "mode": "cold"})
    assert reply.status_code == 202, reply.text
    transfer = reply.json()["transfer"]
    caller.wait_state("on_hold")
    accepted = bob.wait_offer("transfer") and bob.post(f"/api/transfers/{transfer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    bob.join(accepted.json()["token"])
    caller.wait_state("connected")
    room = transfer["consult_room"]
    world.wait(lambda: world.participants(room) == sorted(["bob", caller.identity]), what="caller with B")
    world.wait(lambda: transfer_state(world, transfer["id"]) == "completed", what="completed")

    figures = sue.get("/api/supervisor/figures").json()["figures"]
    assert figures["channels"]["web"]["offered"] == 1 and figures["channels"]["phone"]["offered"] == 1
    assert figures["channels"]["web"]["answered"] == 1


def test_what_the_website_said_about_the_caller_is_purged_with_the_calls_data(make_world):
    world = make_world(web_call_context_secret=SECRET, retention_hours=0)
    world.add_agent("alice")
    caller = WebCaller(world, context=W.sign_context({"name": "Maria Lopez", "email": "maria@example.com"}, SECRET))
    assert world.services.views.call(caller.call_id)["facts"]
    assert caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/hangup").status_code == 200
    world.wait(lambda: "call_data_purged" in world.timeline(caller.call_id), timeout=10, what="purge")
    assert world.services.views.call(caller.call_id)["facts"] is None


def test_a_web_caller_whose_wait_runs_out_is_told_nobody_could_take_the_call(world):
    world.add_agent("zed", status="busy")  # signed in, not free
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    caller.wait_state("queued")
    world.services.caller.queue_timeout(caller.call_id)  # the team's max wait is over (the timer, run now)
    status = world.wait(lambda: (s := caller.status())["state"] == "ended" and s, what="ended")
    assert "nobody could take your call" in status["message"]
    world.wait(lambda: caller.room not in world.livekit.rooms(), what="room deleted")
    assert world.services.views.call(caller.call_id)["end_reason"] == "queue timeout"


def test_with_no_livekit_webhooks_the_web_caller_is_still_seen_in_the_room(make_world):
    """LiveKit sends no webhooks: the web caller's join is read from ListParticipants a few seconds
    later, so the call connects instead of being given up for a page that never joined."""
    world = make_world(ring_timeout_s=15.0)
    world.livekit.webhooks_configured = False
    alice = world.add_agent("alice")
    caller = WebCaller(world)
    caller.join(caller.data["token"])
    alice.accept_and_join(alice.wait_offer()["call_id"])
    caller.wait_state("connected", timeout=20)
    assert "livekit_reconciled" in world.timeline(caller.call_id)
    assert world.livekit.webhook_log() == []


def test_integrators_events_say_a_web_call_is_one(make_world):
    from tests.e2e.test_event_webhooks import Receiver

    receiver = Receiver()
    try:
        world = make_world(event_webhook_urls=(receiver.url,), event_webhook_secret="whsec-test-integrator-secret")
        world.add_agent("alice")
        caller = WebCaller(world)
        caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/hangup")
        events = world.wait(
            lambda: (
                [e for e in receiver.accepted() if e["call"]["id"] == caller.call_id and e["type"] == "call.ended"]
                and [e for e in receiver.accepted() if e["call"]["id"] == caller.call_id]
            ),
            what="events",
        )
        assert all(e["call"]["channel"] == "web" and e["call"]["twilio_sid"] is None for e in events)
    finally:
        receiver.close()


# ------------------------------------------------------------------ call me back instead
CALLBACK_NUMBER = "+15550900077"


def test_a_queued_web_caller_called_back_keeps_their_place_and_is_dialled_when_an_agent_frees_up(make_world):
    from tests.e2e.test_queue_callbacks import busy_agent, entries, said, supervisor

    world = make_world(ring_timeout_s=15.0, retention_hours=0)
    world.twilio.script_phone(CALLBACK_NUMBER, answer=True, answer_after=0.5, digits=None)
    ann, first = busy_agent(world)
    sam = supervisor(world)
    caller = WebCaller(world, origin=world.url, context="unsigned")
    assert caller.join(caller.data["token"]).status_code == 200
    assert caller.wait_state("queued")["position"] == 1
    room, url = caller.room, f"{world.url}/api/web-calls/{caller.call_id}/callback"

    # A number we could not dial: refused with what to type, and nothing changes.
    for typed in ("555-0077", "+266696687"):  # no country code; "anonymous" spelled on a keypad
        bad = caller.http.post(url, json={"number": typed}, timeout=5)
        assert bad.status_code == 400 and "international format" in bad.json()["error"], bad.text
    assert caller.status()["state"] == "queued"
    assert [(e.kind, e.state, e.callback_number) for e in entries(world)] == [("caller", "waiting", None)]

    # The number as people write it: the place in line becomes a callback, the page's part ends.
    asked = caller.http.post(url, json={"number": "+1 (555) 090-0077"}, timeout=5)
    assert asked.status_code == 200, asked.text
    assert asked.json()["state"] == "callback" and not asked.json()["join"]
    assert asked.json()["message"] == (
        "We'll call you at …0077 when it's your turn. You keep your place in line, so you can close this page now."
    )
    (entry,) = entries(world)
    assert (entry.kind, entry.state, entry.callback_number) == ("callback", "waiting", CALLBACK_NUMBER)
    world.wait(lambda: room not in world.livekit.rooms(), what="the web call's room deleted")
    assert world.services.views.call(caller.call_id)["state"] == "queued"  # the page left, the place did not
    # The page has no part in the call any more: asking again, joining, rejoining, hanging up: 409.
    assert caller.http.post(url, json={"number": CALLBACK_NUMBER}, timeout=5).status_code == 409
    assert caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/join", timeout=5).status_code == 409
    assert caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/hangup", timeout=5).status_code == 409
    assert caller.rejoin().status_code == 409
    assert caller.status()["state"] == "callback"

    # A phone caller coming later stays behind them; the board counts a pending callback, on the web.
    later = world.call(from_="+15550900003")
    world.wait(lambda: len(entries(world)) == 2, what="the later caller waiting")
    board = sam.get("/api/supervisor/board").json()["live"]
    assert next(t for t in board["teams"] if t["id"] == "default")["callbacks_pending"] == 1
    row = next(c for c in board["calls"] if c["id"] == caller.call_id)
    assert (row["channel"], row["caller"], row["state"]) == ("web", "web caller", "queued")

    # An agent frees up: offered the callback first, then the gateway dials the number given.
    assert ann.post(f"/api/calls/{first}/hangup").status_code == 200
    offer = ann.wait_offer(timeout=10)
    assert (offer["call_id"], offer["callback"], offer["channel"]) == (caller.call_id, True, "web")
    assert offer["caller"] == f"web caller at {CALLBACK_NUMBER}"
    dialled = lambda: [c for c in world.twilio.calls() if c.direction == "outbound-api" and c.to == CALLBACK_NUMBER]  # noqa: E731
    assert not dialled()  # the agent first, then the caller
    ann.accept_and_join(caller.call_id)
    world.wait(dialled, what="the number given dialled")
    (back,) = dialled()
    back.wait_current("bridged", timeout=10)
    world.wait(lambda: world.services.views.call(caller.call_id)["state"] == "connected", what="callback connected")
    assert "Hello, this is the call back you asked for. Connecting you to an agent now." in said(back)
    assert "ann" in world.participants(room)
    assert [e.state for e in entries(world)] == ["answered", "waiting"]
    assert world.db_call(later.sid)["state"] == "queued"
    kinds = world.timeline(caller.call_id)
    for kind in ("callback_requested", "caller_left_for_callback", "callback_dialled", "callback_answered"):
        assert kind in kinds, kinds
    assert caller.status()["message"] == "We called you back at …0077: your call goes on by phone."

    # The agent ends the call: the phone hears goodbye (Twilio REST now, not the page), and the number
    # given is purged with the call's data.
    assert ann.post(f"/api/calls/{caller.call_id}/hangup").status_code == 200
    back.wait_for(lambda c: c.ended, timeout=10)
    world.wait(lambda: "call_data_purged" in world.timeline(caller.call_id), timeout=10, what="purge")
    assert entries(world)[0].callback_number == "…0077"


def test_a_web_caller_not_waiting_in_line_cannot_ask_for_a_callback(world):
    alice = world.add_agent("alice")
    caller = WebCaller(world)
    assert caller.join(caller.data["token"]).status_code == 200
    caller.wait_state("ringing")
    url = f"{world.url}/api/web-calls/{caller.call_id}/callback"
    refused = caller.http.post(url, json={"number": CALLBACK_NUMBER}, timeout=5)
    assert refused.status_code == 409 and "waiting in line" in refused.json()["error"], refused.text
    alice.accept_and_join(caller.call_id)
    caller.wait_state("connected")
    assert caller.http.post(url, json={"number": CALLBACK_NUMBER}, timeout=5).status_code == 409
    assert "callback_requested" not in world.timeline(caller.call_id)
    # Someone else's access token is no way in either.
    other = WebCaller(world)
    assert (
        requests.post(
            url,
            json={"number": CALLBACK_NUMBER},
            headers={"Authorization": f"Bearer {other.data['access']}"},
            timeout=5,
        ).status_code
        == 403
    )
    assert requests.post(url, json={"number": CALLBACK_NUMBER}, timeout=5).status_code == 401
