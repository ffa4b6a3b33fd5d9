"""Event webhooks for integrators, received by a real HTTP server in the test: what a CRM gets
during a call and a declined then completed transfer — signed, in order, retried, replayable."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.domain import integrator_events as E
from tests.e2e.test_transfer import caller_back_with_a, connect_call, consult_room_for, transfer_state, wait_joined

SECRET = "whsec-test-integrator-secret"


class Receiver:
    """A CRM's endpoint: records every request; answers 500 to the first ``fail_first`` ones."""

    def __init__(self, fail_first: int = 0):
        self.requests: list[dict] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body, "at": time.time()})
                    failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/gateway"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict]:
        """Events as the CRM processes them: verified, deduplicated by event id, in arrival order."""
        seen, out = set(), []
        with self.lock:
            requests = list(self.requests)
        for i, r in enumerate(requests):
            if i < self.fail_first:
                continue
            h = r["headers"]
            assert E.verify(SECRET, h[E.TIMESTAMP_HEADER], r["body"], h[E.SIGNATURE_HEADER], time.time())
            event = json.loads(r["body"])
            if event["id"] not in seen:
                seen.add(event["id"])
                out.append(event)
        return out

    def types(self, call_id: str) -> list[str]:
        return [e["type"] for e in self.accepted() if e["call"]["id"] == call_id]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _world(make_world, receiver):
    return make_world(event_webhook_urls=(receiver.url,), event_webhook_secret=SECRET, event_webhook_retry_base_s=0.2)


def test_a_crm_receives_a_call_and_its_transfers_signed_and_in_order(make_world, receiver):
    world = _world(make_world, receiver)
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = connect_call(world, alice)

    declined = alice.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": "bob"}).json()["transfer"]
    consult_room_for(world, alice, declined)
    bob.wait_offer("transfer")
    assert bob.post(f"/api/transfers/{declined['id']}/decline").status_code == 200
    world.wait(lambda: transfer_state(world, declined["id"]) == "declined", what="declined")
    caller_back_with_a(world, call)

    done = alice.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": "bob"}).json()["transfer"]
    consult_room_for(world, alice, done)
    bob.wait_offer("transfer")
    bob.join(bob.post(f"/api/transfers/{done['id']}/accept").json()["token"])
    wait_joined(world, call_id, "bob", done["consult_room"])
    world.wait(lambda: world.services.views.transfer(done["id"])["summary"], what="summary")
    assert alice.post(f"/api/transfers/{done['id']}/complete").status_code == 200
    assert alice.post(f"/api/transfers/{done['id']}/leave").status_code == 200
    world.wait(lambda: transfer_state(world, done["id"]) == "completed", what="completed")
    call.hangup()
    world.wait(lambda: "call.ended" in receiver.types(call_id), what="call.ended delivered")

    types = receiver.types(call_id)
    assert types[:2] == ["call.queued", "call.answered"]
    assert types[-1] == "call.ended"
    # Each transfer in the order it happened, with its typed outcome.
    first = [e for e in receiver.accepted() if e["transfer_id"] == declined["id"] and e["type"] != "summary.ready"]
    assert [e["type"] for e in first] == ["transfer.initiated", "transfer.offered", "transfer.declined"]
    assert first[-1]["data"] == {"reason": "target_declined", "reason_text": "B declined"}
    second = [e["type"] for e in receiver.accepted() if e["transfer_id"] == done["id"]]
    assert second[0] == "transfer.initiated" and "transfer.offered" in second and second[-1] == "transfer.completed"
    assert second.index("transfer.offered") < second.index("transfer.accepted") < second.index("transfer.completed")
    assert "summary.ready" in second
    assert types.index("transfer.declined") < len(types) - 1 - types[::-1].index("transfer.initiated")
    event = receiver.accepted()[0]
    assert event["call"]["twilio_sid"] == call.sid and event["call"]["id"] == call_id
    headers = receiver.requests[0]["headers"]
    assert headers[E.EVENT_TYPE_HEADER] == "call.queued" and headers[E.EVENT_ID_HEADER] == event["id"]
    # The delivery log says what was sent, once each.
    # (the receiver has the last event a moment before the gateway records the 2xx it answered)
    world.wait(
        lambda: {r["state"] for r in world.services.event_webhooks.log(call_id=call_id, limit=200)} == {"delivered"},
        what="every delivery logged as delivered",
    )
    assert len(world.services.event_webhooks.log(call_id=call_id, limit=200)) == len(types)


def test_a_forged_or_stale_delivery_fails_verification():
    body = b'{"id":"evt_1","type":"call.ended"}'
    now = time.time()
    signature = E.sign(SECRET, int(now), body)
    assert E.verify(SECRET, str(int(now)), body, signature, now)
    assert not E.verify(SECRET, str(int(now)), body + b" ", signature, now)  # body changed
    assert not E.verify("another-secret", str(int(now)), body, signature, now)
    old = int(now) - E.REPLAY_WINDOW_S - 1
    assert not E.verify(SECRET, str(old), body, E.sign(SECRET, old, body), now)  # replayed later


def test_a_failing_receiver_gets_every_event_again_in_order_then_replay_resends(make_world):
    receiver = Receiver(fail_first=3)
    try:
        world = _world(make_world, receiver)
        alice = world.add_agent("alice")
        call, call_id = connect_call(world, alice)
        call.hangup()
        world.wait(lambda: "call.ended" in receiver.types(call_id), timeout=20, what="call.ended after retries")

        # The first three attempts were refused: retried with backoff, and nothing overtook them.
        assert receiver.types(call_id) == ["call.queued", "call.answered", "call.ended"]
        first_type = json.loads(receiver.requests[0]["body"])["type"]
        assert [json.loads(r["body"])["type"] for r in receiver.requests[:4]] == [first_type] * 4
        gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:4], strict=False)]
        assert gaps[1] > gaps[0] * 1.3  # backoff grows
        log = world.services.event_webhooks.log(call_id=call_id)
        assert max(row["attempts"] for row in log) == 4

        before = len(receiver.requests)
        runner = world.app.test_cli_runner()
        result = runner.invoke(args=["webhooks", "replay", "--call", call_id])
        assert result.exit_code == 0 and "queued 3 deliveries" in result.output, result.output
        world.wait(lambda: len(receiver.requests) >= before + 3, what="replayed deliveries")
        replayed = [json.loads(r["body"]) for r in receiver.requests[before:]]
        assert [e["type"] for e in replayed] == ["call.queued", "call.answered", "call.ended"]
        # Same ids as before: a receiver that deduplicates processes nothing twice.
        assert receiver.types(call_id) == ["call.queued", "call.answered", "call.ended"]
        listed = runner.invoke(args=["webhooks", "log", "--call", call_id])
        assert listed.exit_code == 0 and "call.ended" in listed.output and "delivered" in listed.output
    finally:
        receiver.close()
