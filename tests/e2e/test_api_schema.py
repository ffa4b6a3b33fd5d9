"""Every REST reply validates against /openapi.json: real responses from a gateway taking real
(simulated) calls and transfers, each checked against the schema the document gives for its
operation and status. The schemas forbid undocumented fields, so a field added to a reply but not
to the document fails here."""

from __future__ import annotations

import re

import jsonschema_rs
import requests

from tests.conftest import AgentClient, World
from tests.e2e.test_transfer import caller_back_with_a, connect_call, consult_room_for, transfer_state, wait_joined

ADMIN = {"Authorization": "Bearer admin-test-token"}
# Operations whose success reply this walk does not reach (their error replies are validated).
SUCCESS_NOT_REACHED = {("/api/calls/{call_id}/decline", "post")}


class Checked:
    """Validates each reply against the document served by the gateway under test."""

    def __init__(self, world: World):
        self.world = world
        self.document = requests.get(world.url + "/openapi.json", timeout=5).json()
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in self.document["paths"]
            if path.startswith("/api/")
        ]
        self.seen: set[tuple[str, str, str]] = set()

    def __call__(self, response: requests.Response) -> requests.Response:
        url = response.request.path_url.split("?", 1)[0]
        method = response.request.method.lower()
        path = next(template for pattern, template in self.templates if pattern.match(url))
        responses = self.document["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{method.upper()} {url} answered {status}, not documented: {response.text[:200]}"
        content = responses[status]["content"]
        if "application/json" not in content:  # the CSV export: its documented media type
            assert response.headers["Content-Type"].split(";")[0] in content, response.headers["Content-Type"]
            self.seen.add((path, method, status))
            return response
        schema = content["application/json"]["schema"]
        validator = jsonschema_rs.validator_for({**schema, "components": self.document["components"]})
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(response.json())]
        assert not errors, f"{method.upper()} {url} {status}: {errors} in {response.text[:400]}"
        self.seen.add((path, method, status))
        return response


def test_every_reply_validates_against_the_documented_schema(world):
    check = Checked(world)
    alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
    dave = world.add_agent("dave", status="offline")
    http = requests.Session()

    def admin(method: str, path: str, **kwargs):
        return check(http.request(method, world.url + path, headers=ADMIN, timeout=10, **kwargs))

    # The admin API: teams and agents.
    assert admin("POST", "/api/admin/teams", json={"id": "billing", "name": "Billing"}).status_code == 201
    assert admin("PATCH", "/api/admin/teams/billing", json={"max_wait_s": 300}).status_code == 200
    assert admin("GET", "/api/admin/teams").status_code == 200
    added = admin("POST", "/api/admin/agents", json={"id": "carol", "name": "Carol", "phone": "+15550002222"})
    assert added.status_code == 201
    assert admin("GET", "/api/admin/agents").status_code == 200
    assert admin("PUT", "/api/admin/agents/carol/teams", json={"teams": ["billing"]}).status_code == 200
    assert admin("POST", "/api/admin/agents/carol/status", json={"status": "busy"}).status_code == 200
    assert admin("PUT", "/api/admin/agents/carol/role", json={"role": "supervisor"}).json()["agent"]["role"] == (
        "supervisor"
    )
    assert admin("PUT", "/api/admin/agents/carol/role", json={"role": "boss"}).status_code == 400
    assert admin("DELETE", "/api/admin/agents/carol").status_code == 200
    assert admin("DELETE", "/api/admin/teams/billing").status_code == 200
    assert admin("DELETE", "/api/admin/teams/billing").status_code == 404
    assert admin("POST", "/api/rooms/create", json={"room": "standup"}).status_code == 201
    assert admin("GET", "/api/webhooks/deliveries?limit=5").status_code == 200
    assert admin("POST", "/api/webhooks/replay", json={"failed_only": True}).status_code == 202
    assert admin("POST", "/api/webhooks/replay", json={}).status_code == 400
    assert check(http.get(world.url + "/api/admin/agents", timeout=5)).status_code == 401

    # Signing in and out with the console session.
    console = requests.Session()
    console.headers["X-Requested-With"] = "console"
    assert check(console.post(world.url + "/api/auth/login", json={"credential": "alice.wrong"})).status_code == 401
    assert check(console.post(world.url + "/api/auth/login", json={"credential": alice.credential})).status_code == 200
    assert check(console.post(world.url + "/api/auth/logout", json={})).status_code == 200

    assert check(alice.get("/api/me")).status_code == 200
    assert check(alice.get("/api/agents")).status_code == 200
    assert check(alice.post("/api/agents/me/status", {"status": "sometimes"})).status_code == 400
    assert check(bob.post("/api/agents/me/status", {"status": "available"})).status_code == 200

    # A call, answered in the browser (the offer and the accept are validated too).
    assert check(alice.get("/api/agents/me/offers")).status_code == 200
    assert check(alice.get("/api/agents/me/missed")).json()["missed"] == []
    call = world.call()
    offer = alice.wait_offer()
    assert check(alice.get("/api/agents/me/offers")).json()["offers"][0]["kind"] == "call"
    call_id = offer["call_id"]
    accepted = check(alice.post(f"/api/calls/{call_id}/accept"))
    alice.join(accepted.json()["token"])
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected")
    assert check(alice.post(f"/api/calls/{call_id}/accept")).status_code == 409
    assert check(alice.post(f"/api/calls/{call_id}/decline")).status_code == 409
    call.speak("My router keeps rebooting every evening, I already replaced the cable.")
    assert check(alice.post(f"/api/calls/{call_id}/notes", {"text": "Cable replaced."})).status_code == 201
    assert check(alice.get(f"/api/calls/{call_id}/transcript")).status_code == 200
    assert check(alice.get(f"/api/calls/{call_id}")).status_code == 200
    assert check(dave.get(f"/api/calls/{call_id}")).status_code == 403
    assert check(alice.get("/api/calls/call_unknown/timeline")).status_code == 404
    assert check(alice.post("/api/summary/generate", {"call_id": call_id})).status_code == 200
    assert check(alice.get("/api/rooms")).status_code == 200
    assert check(alice.post("/api/rooms/join", {"room": offer["room"]})).status_code == 200
    assert check(dave.post("/api/rooms/join", {"room": offer["room"]})).status_code == 403

    # A supervisor's board, figures, export and listen-in; an agent is refused them.
    sup = admin("POST", "/api/admin/agents", json={"id": "sue", "name": "Sue", "role": "supervisor"})
    assert sup.status_code == 201 and sup.json()["agent"]["role"] == "supervisor"
    sue = AgentClient(world, "sue", sup.json()["credential"])
    board = check(sue.get("/api/supervisor/board")).json()
    assert [c["state"] for c in board["live"]["calls"]] == ["talking"]
    assert check(sue.get("/api/supervisor/figures")).json()["figures"]["overall"]["offered"] == 1
    assert check(sue.get("/api/supervisor/export.csv")).status_code == 200
    assert check(alice.get("/api/supervisor/board")).status_code == 403
    assert check(alice.get("/api/supervisor/figures")).status_code == 403
    assert check(alice.get("/api/supervisor/export.csv")).status_code == 403
    assert check(sue.post(f"/api/supervisor/calls/{call_id}/listen")).status_code == 201
    assert check(alice.post(f"/api/supervisor/calls/{call_id}/listen")).status_code == 403
    assert check(sue.post("/api/supervisor/calls/call_unknown/listen")).status_code == 404

    # The CallSid a CRM knows finds the call; another agent learns nothing of it.
    by_sid = check(alice.get(f"/api/calls?twilio_sid={call.sid}")).json()["calls"]
    assert [c["id"] for c in by_sid] == [call_id] and by_sid[0]["twilio_sid"] == call.sid
    assert check(dave.get(f"/api/calls?twilio_sid={call.sid}")).json()["calls"] == []
    assert check(alice.get("/api/calls?twilio_sid=12345")).status_code == 400

    # Transfer 1: B declines; transfer 2: A cancels; transfer 3: accepted, completed, A leaves.
    def initiate() -> dict:
        reply = check(alice.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": "bob"}))
        assert reply.status_code == 202, reply.text
        transfer = reply.json()["transfer"]
        consult_room_for(world, alice, transfer)  # as the console does: A follows the caller's hold
        return transfer

    first = initiate()
    assert (
        check(alice.post("/api/transfer/initiate", {"call_id": call_id, "target_agent_id": "bob"})).status_code == 409
    )
    bob.wait_offer("transfer")
    assert check(bob.get("/api/agents/me/offers")).json()["offers"][0]["kind"] == "transfer"
    assert check(bob.post(f"/api/transfers/{first['id']}/decline")).status_code == 200
    world.wait(lambda: transfer_state(world, first["id"]) == "declined", what="declined")
    caller_back_with_a(world, call)

    second = initiate()
    assert check(alice.post(f"/api/transfers/{second['id']}/cancel")).status_code == 200
    caller_back_with_a(world, call)
    assert check(alice.post(f"/api/transfers/{second['id']}/leave")).status_code == 409

    third = initiate()
    assert check(alice.post(f"/api/transfers/{third['id']}/complete")).status_code == 409
    bob.wait_offer("transfer")
    bob.join(check(bob.post(f"/api/transfers/{third['id']}/accept")).json()["token"])
    wait_joined(world, call_id, "bob", third["consult_room"])
    world.wait(lambda: world.services.views.transfer(third["id"])["summary"], what="summary")
    assert check(alice.get(f"/api/transfers/{third['id']}")).status_code == 200
    assert check(dave.get(f"/api/transfers/{third['id']}")).status_code == 403
    assert check(alice.get("/api/transfers/tr_unknown")).status_code == 404
    world.add_agent("erin", phone="+15550003333", status="offline")  # a summary goes to a directory agent
    sms = check(alice.post("/api/twilio/sms-summary", {"transfer_id": third["id"], "agent_id": "erin"}))
    assert sms.status_code == 202
    assert (
        check(alice.post("/api/twilio/sms-summary", {"transfer_id": third["id"], "to": "+15550004444"})).status_code
        == 400
    )
    assert check(alice.post(f"/api/transfers/{third['id']}/complete")).status_code == 200
    assert check(alice.post(f"/api/transfers/{third['id']}/leave")).status_code == 200
    world.wait(lambda: transfer_state(world, third["id"]) == "completed", what="completed")
    assert check(alice.get(f"/api/calls/{call_id}/timeline")).status_code == 200
    assert check(alice.get("/api/calls")).status_code == 200

    # Bob sends the caller on to a phone number (cold); a second call is ended by its agent.
    world.wait(
        lambda: (lambda c: c["state"] == "connected" and c["agent_id"] == "bob")(world.db_call(call.sid)),
        what="the call is Bob's",
    )
    cold = check(bob.post("/api/twilio/transfer", {"call_id": call_id, "to": "+15550004444"}))
    assert cold.status_code == 202, cold.text
    assert check(bob.post("/api/twilio/transfer", {"call_id": call_id, "to": "5550004444"})).status_code == 400
    second_call, second_id = connect_call(world, alice)
    assert check(bob.post(f"/api/calls/{second_id}/hangup")).status_code in (403, 409)
    assert check(alice.post(f"/api/calls/{second_id}/hangup")).status_code == 200
    world.wait(lambda: world.db_call(second_call.sid)["state"] == "ended", what="second call ended")
    _third_call, third_id = connect_call(world, alice)
    left = check(alice.post(f"/api/rooms/{world.services.views.call(third_id)['room']}/leave"))
    assert left.status_code == 200, left.text
    assert check(alice.post("/api/rooms/nowhere/leave")).status_code == 404
    # A transfer to a team with nobody free: A keeps the caller in that team's queue.
    world.services.teams.add("billing", "Billing")
    world.services.teams.set_agent_teams("dave", ["billing"])
    world.services.agents.set_status("dave", "busy")
    _fourth_call, fourth_id = connect_call(world, alice)
    busy = check(alice.post("/api/transfer/initiate", {"call_id": fourth_id, "target_team": "billing"}))
    assert busy.status_code == 202 and busy.json()["transfer"]["state"] == "team_busy", busy.text
    queued = check(alice.post(f"/api/transfers/{busy.json()['transfer']['id']}/queue"))
    assert queued.status_code == 200 and queued.json()["transfer"]["state"] == "queued", queued.text

    # A web call: placed (and refused from an origin not allowed), followed, joined once, hung up.
    world.add_agent("webby")
    refused = http.post(world.url + "/api/web-calls", json={}, headers={"Origin": "https://elsewhere.example"})
    assert check(refused).status_code == 403
    placed = check(http.post(world.url + "/api/web-calls", json={"context": "unsigned"}, timeout=5))
    assert placed.status_code == 201, placed.text
    web = requests.Session()
    web.headers["Authorization"] = f"Bearer {placed.json()['access']}"
    web_call = f"{world.url}/api/web-calls/{placed.json()['call_id']}"
    assert check(http.get(web_call, timeout=5)).status_code == 401
    assert check(web.get(web_call, timeout=5)).status_code == 200
    assert check(web.post(web_call + "/join", timeout=5)).status_code == 409  # the first token is not used yet
    assert check(web.get(world.url + "/api/web-calls/call_unknown", timeout=5)).status_code == 403
    assert check(web.post(web_call + "/hangup", timeout=5)).json()["state"] == "ended"
    moved = check(http.post(world.url + "/api/web-calls", json={}, timeout=5))
    mover = requests.Session()
    mover.headers["Authorization"] = f"Bearer {moved.json()['access']}"
    requests.post(world.livekit.url + "/_sim/rtc/join", json={"token": moved.json()["token"]}, timeout=5)
    # The call moves to another room (as a completed transfer moves it): the page asks for a token there.
    world.store.run(lambda s: _move_web_call(s, moved.json()["call_id"]))
    rejoined = check(mover.post(f"{world.url}/api/web-calls/{moved.json()['call_id']}/join", timeout=5))
    assert rejoined.status_code == 200, rejoined.text
    # The page reloads: its rejoin secret gets it back into the call, once; a call over is gone.
    rejoin = f"{world.url}/api/web-calls/{moved.json()['call_id']}/rejoin"
    secret = moved.json()["rejoin_secret"]
    assert check(http.post(rejoin, json={"secret": secret}, timeout=5)).status_code == 200
    assert check(http.post(rejoin, json={"secret": secret}, timeout=5)).status_code == 403
    assert check(http.post(rejoin, json={}, timeout=5)).status_code == 400
    assert check(http.post(world.url + "/api/web-calls/call_unknown/rejoin", json={"secret": "x"})).status_code == 404
    assert check(http.post(web_call + "/rejoin", json={"secret": placed.json()["rejoin_secret"]})).status_code == 410
    # A web caller waiting in line asks to be called back: a number we cannot dial, then one we can.
    for agent_id in ("alice", "webby"):
        world.services.agents.set_status(agent_id, "busy")
    waiting = check(http.post(world.url + "/api/web-calls", json={}, timeout=5))
    assert waiting.status_code == 201 and waiting.json()["state"] == "queued", waiting.text
    asker = requests.Session()
    asker.headers["Authorization"] = f"Bearer {waiting.json()['access']}"
    callback = f"{world.url}/api/web-calls/{waiting.json()['call_id']}/callback"
    assert check(asker.post(callback, json={"number": "12345"}, timeout=5)).status_code == 400
    assert check(asker.post(callback, json={"number": "+15550900077"}, timeout=5)).json()["state"] == "callback"
    assert check(asker.post(callback, json={"number": "+15550900077"}, timeout=5)).status_code == 409

    operations = {(p, m) for p, ops in check.document["paths"].items() if p.startswith("/api/") for m in ops}
    reached = {(p, m) for p, m, _ in check.seen}
    succeeded = {(p, m) for p, m, status in check.seen if status.startswith("2")}
    assert operations - {("/api/events", "get")} <= reached, operations - reached
    assert operations - SUCCESS_NOT_REACHED <= succeeded, operations - SUCCESS_NOT_REACHED - succeeded


def _move_web_call(session, call_id: str) -> None:
    from gateway.adapters.store.models import Call

    call = session.get(Call, call_id)
    call.room, call.caller_identity, call.bridge_gen = call.room + "_next", None, (call.bridge_gen or 0) + 1
