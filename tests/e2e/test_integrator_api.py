"""A CRM's back end on the REST API with an API key (made, listed and revoked by the CLI): it reads
calls and transfers, is refused writes with a read-only key and agent actions with any key, gets
401 once the key is revoked; its event webhooks validate against the schemas /openapi.json gives.
Every reply is checked against the document too."""

from __future__ import annotations

import json

import jsonschema_rs
import requests

from gateway.domain import integrator_events as E
from tests.e2e.test_api_schema import Checked
from tests.e2e.test_event_webhooks import SECRET, Receiver
from tests.e2e.test_transfer import caller_back_with_a, connect_call, start_warm, transfer_state, wait_joined


class Crm:
    """An integration's HTTP client: nothing but its key and the documented endpoints."""

    def __init__(self, world, key: str, check: Checked):
        self.world, self.check = world, check
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def get(self, path: str) -> requests.Response:
        return self.check(self.http.get(self.world.url + path, timeout=10))

    def post(self, path: str, json: dict | None = None) -> requests.Response:
        return self.check(self.http.post(self.world.url + path, json=json or {}, timeout=10))


def _add_key(cli, name: str, scope: str) -> str:
    result = cli.invoke(args=["api-keys", "add", name, "--scope", scope])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()  # the key alone on stdout; the explanation on stderr
    assert key.startswith("GWK_") and "\n" not in key, result.stdout
    assert "shown once" in result.stderr
    return key


def test_a_crm_reads_with_a_key_is_refused_writes_and_loses_access_when_revoked(make_world):
    receiver = Receiver()
    try:
        world = make_world(
            event_webhook_urls=(receiver.url,), event_webhook_secret=SECRET, event_webhook_retry_base_s=0.2
        )
        check = Checked(world)
        cli = world.app.test_cli_runner()
        alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
        call, call_id = connect_call(world, alice)
        assert bob.post("/api/agents/me/status", {"status": "available"}).status_code == 200
        transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
        bob.wait_offer("transfer")
        assert bob.post(f"/api/transfers/{transfer['id']}/decline").status_code == 200
        world.wait(lambda: transfer_state(world, transfer["id"]) == "declined", what="declined")
        caller_back_with_a(world, call)
        second = start_warm(world, alice, call_id, {"target_agent_id": "bob"})
        bob.wait_offer("transfer")
        bob.join(bob.post(f"/api/transfers/{second['id']}/accept").json()["token"])
        wait_joined(world, call_id, "bob", second["consult_room"])
        assert alice.post(f"/api/transfers/{second['id']}/complete").status_code == 200
        assert alice.post(f"/api/transfers/{second['id']}/leave").status_code == 200
        world.wait(lambda: transfer_state(world, second["id"]) == "completed", what="completed")
        call.hangup()
        world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")

        reader = Crm(world, _add_key(cli, "crm-sync", "read"), check)
        writer = Crm(world, _add_key(cli, "crm-admin", "write"), check)

        # Reads: every call (not only one agent's), by CallSid, its timeline, transcript, transfers.
        assert call_id in [c["id"] for c in reader.get("/api/calls").json()["calls"]]
        assert [c["id"] for c in reader.get(f"/api/calls?twilio_sid={call.sid}").json()["calls"]] == [call_id]
        detail = reader.get(f"/api/calls/{call_id}").json()
        assert {t["id"] for t in detail["transfers"]} == {transfer["id"], second["id"]}
        assert "call_ended" in [e["kind"] for e in reader.get(f"/api/calls/{call_id}/timeline").json()["timeline"]]
        assert reader.get(f"/api/calls/{call_id}/transcript").status_code == 200
        shown = reader.get(f"/api/transfers/{second['id']}").json()["transfer"]
        assert shown["state"] == "completed" and shown["target_joined_at"]
        assert reader.get("/api/agents").status_code == 200
        assert reader.get("/api/admin/agents").status_code == 200

        # The delivery log over HTTP, a page at a time.
        world.wait(lambda: len(receiver.accepted()) >= 8, what="events delivered")
        first_page = reader.get("/api/webhooks/deliveries?limit=3").json()
        assert len(first_page["deliveries"]) == 3 and first_page["next_before"]
        next_page = reader.get(f"/api/webhooks/deliveries?limit=3&before={first_page['next_before']}").json()
        assert max(d["id"] for d in next_page["deliveries"]) < min(d["id"] for d in first_page["deliveries"])
        assert reader.get("/api/webhooks/deliveries?limit=0").status_code == 400

        # Writes: refused to the read key, allowed to the write key; agent actions to neither.
        ended_event = next(e for e in receiver.accepted() if e["type"] == "call.ended")
        refused = reader.post("/api/webhooks/replay", {"event_id": ended_event["id"]})
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]
        assert reader.post("/api/admin/teams", {"id": "vip", "name": "VIP"}).status_code == 403
        before = len(receiver.requests)
        assert writer.post("/api/webhooks/replay", {"event_id": ended_event["id"]}).json() == {"queued": 1}
        world.wait(lambda: len(receiver.requests) > before, what="the replayed event")
        assert writer.post("/api/admin/teams", {"id": "vip", "name": "VIP"}).status_code == 201
        for key in (reader, writer):
            note = key.post(f"/api/calls/{call_id}/notes", {"text": "from the CRM"})
            assert note.status_code == 403 and "cannot act as an agent" in note.json()["error"]
            assert key.get("/api/me").status_code == 403

        # Listed without the key itself; revoked: 401 on the next request.
        listed = cli.invoke(args=["api-keys", "list", "--json"])
        rows = json.loads(listed.stdout)
        assert {r["name"] for r in rows} == {"crm-sync", "crm-admin"} and "GWK_" not in listed.stdout
        assert all(r["last_used_at"] for r in rows)  # both were used: an admin sees which keys are live
        read_id = next(r["id"] for r in rows if r["name"] == "crm-sync")
        assert cli.invoke(args=["api-keys", "revoke", read_id]).exit_code == 0
        gone = reader.get("/api/calls")
        assert gone.status_code == 401 and "revoked" in gone.json()["error"]
        assert writer.get("/api/calls").status_code == 200
        assert cli.invoke(args=["api-keys", "revoke", "key_000000000000"]).exit_code != 0

        # Every event the CRM received validates against the schema the document gives its type.
        document = check.document
        for event in receiver.accepted():
            assert event["type"] in document["webhooks"], event["type"]
            schema = document["webhooks"][event["type"]]["post"]["requestBody"]["content"]["application/json"]
            validator = jsonschema_rs.validator_for({**schema["schema"], "components": document["components"]})
            errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(event)]
            assert not errors, (event, errors)
        received = {e["type"] for e in receiver.accepted()}
        assert {
            "call.answered",
            "transfer.offered",
            "transfer.declined",
            "transfer.completed",
            "call.ended",
        } <= received
        assert set(document["webhooks"]) == set(E.EVENT_TYPES)
    finally:
        receiver.close()
