"""The supervisor's board and listen-in end to end: simulator → gateway → LiveKit double.

Who may see the board, what its figures say after real calls, the CSV a supervisor exports, and
a listener that is in the call's room but invisible to the caller's side, never taken for an agent."""

from __future__ import annotations

import csv
import io
import time

import jwt
import requests

from tests.conftest import AgentClient


def supervisor(world, agent_id: str = "sam") -> AgentClient:
    credential = world.services.agents.add(agent_id, "Sam", None, True, "offline", role="supervisor")
    return AgentClient(world, agent_id, credential)


def connected_call(world, agent, from_="+15557654321"):
    call = world.call(from_)
    offer = agent.wait_offer()
    room = agent.accept_and_join(offer["call_id"])["room"]
    call.wait_current("bridged", timeout=8)
    world.wait(lambda: world.db_call(call.sid)["state"] == "connected", what="call connected")
    return call, offer["call_id"], room


def test_an_agent_is_refused_the_board_and_listen_in_with_what_to_do(world):
    alice = world.add_agent("alice")
    for path in ("/api/supervisor/board", "/api/supervisor/figures", "/api/supervisor/export.csv"):
        reply = alice.get(path)
        assert reply.status_code == 403, path
        assert "--supervisor" in reply.json()["error"]
    call, call_id, _ = connected_call(world, alice)
    reply = alice.post(f"/api/supervisor/calls/{call_id}/listen")
    assert reply.status_code == 403 and "supervisors" in reply.json()["error"]
    assert "listen_in" not in world.timeline(call_id)
    page = alice.get("/board")
    assert page.status_code == 403 and "for supervisors" in page.text
    assert requests.get(world.url + "/api/supervisor/board", timeout=5).status_code == 401
    call.hangup()


def test_the_board_shows_a_live_call_and_the_days_figures_move_when_calls_end(world):
    sam = supervisor(world)
    alice = world.add_agent("alice")
    empty = sam.get("/api/supervisor/board").json()
    assert empty["live"]["calls"] == [] and empty["figures"]["overall"]["offered"] == 0

    call, call_id, _ = connected_call(world, alice, "+15557654321")
    live = sam.get("/api/supervisor/board").json()["live"]
    row = next(c for c in live["calls"] if c["id"] == call_id)
    assert row["caller"] == "…4321" and row["state"] == "talking" and row["agent"] == "Alice"
    default = next(t for t in live["teams"] if t["id"] == "default")
    assert default["agents"]["on_call"] == 1
    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")

    # A second caller rings Alice and hangs up before anyone answers: abandoned.
    second = world.call("+15550009999")
    alice.wait_offer()
    second.hangup()
    world.wait(lambda: world.db_call(second.sid)["state"] == "ended", what="second call ended")

    figures = sam.get("/api/supervisor/figures").json()["figures"]
    overall = figures["overall"]
    assert (overall["offered"], overall["answered"], overall["abandoned"], overall["in_progress"]) == (2, 1, 1, 0)
    assert overall["service_level"] == 0.5  # the answer came within 20 s; the abandoned call counts against
    assert overall["average_wait_s"] is not None and overall["average_handle_s"] is not None
    assert figures["teams"]["default"]["offered"] == 2
    assert sum(slot["answered"] + slot["abandoned"] for slot in figures["intervals"]) == 2
    assert sam.get("/api/supervisor/board").json()["live"]["calls"] == []

    export = sam.get("/api/supervisor/export.csv")
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["record"], r["caller_or_target"], r["outcome"]) for r in rows] == [
        ("call", "…4321", "answered"),
        ("call", "…9999", "abandoned"),
    ]
    assert "+1555" not in export.text  # numbers leave masked

    metrics = requests.get(world.url + "/metrics", timeout=5).text
    assert 'gateway_board_calls_today{outcome="answered",team="default"} 1.0' in metrics
    assert 'gateway_board_calls_today{outcome="abandoned",team="all"} 1.0' in metrics


def test_listen_in_grant_is_one_room_subscribe_only_hidden_and_short(world):
    sam = supervisor(world)
    alice = world.add_agent("alice")
    call, call_id, room = connected_call(world, alice)

    reply = sam.post(f"/api/supervisor/calls/{call_id}/listen")
    assert reply.status_code == 201, reply.text
    grant = reply.json()
    claims = jwt.decode(
        grant["token"], world.settings.livekit_api_secret, algorithms=["HS256"], options={"verify_aud": False}
    )
    video = claims["video"]
    assert grant["room"] == room and video["room"] == room and video["roomJoin"] is True
    assert video["canSubscribe"] is True and video["canPublish"] is False and video["canPublishData"] is False
    assert video["hidden"] is True
    assert not any(video.get(k) for k in ("roomAdmin", "roomCreate", "roomList", "roomRecord"))
    assert claims["sub"] == grant["identity"] == "listen:sam"
    assert claims["exp"] - claims["nbf"] <= 60
    entry = next(e for e in world.services.views.timeline(call_id) if e["kind"] == "listen_in")
    assert entry["agent_id"] == "sam" and entry["detail"]["room"] == room
    # On the timeline supervisors read; the agent's console is not told (silent monitoring).
    assert "listen_in" in [e["kind"] for e in sam.get(f"/api/calls/{call_id}/timeline").json()["timeline"]]
    assert "listen_in" not in [e["kind"] for e in alice.get(f"/api/calls/{call_id}/timeline").json()["timeline"]]

    # The supervisor joins: in the room for LiveKit, invisible to the caller's side and to Alice.
    joined = requests.post(world.livekit.url + "/_sim/rtc/join", json={"token": grant["token"]}, timeout=5)
    assert joined.status_code == 200, joined.text
    world.settle()
    assert "listen:sam" in world.participants(room)
    caller = f"sip_{call.from_}"
    seen = requests.get(f"{world.livekit.url}/_sim/rooms/{room}/seen-by/{caller}", timeout=5).json()
    assert seen["participants"] == ["alice"]
    assert world.livekit.seen_by(room, "alice") == [caller]
    # The gateway took it for nobody: not removed, no agent joined, the call carries on with Alice.
    time.sleep(0.3)
    world.settle()
    kinds = world.timeline(call_id)
    assert "participant_removed" not in kinds
    assert kinds.count("agent_joined") == 1
    db = world.db_call(call.sid)
    assert db["state"] == "connected" and db["agent_id"] == "alice"
    assert "listen:sam" in world.participants(room)
    assert call.current.startswith("bridged")

    # The supervisor leaves: nothing happens to the call either.
    requests.post(world.livekit.url + "/_sim/rtc/leave", json={"room": room, "identity": "listen:sam"}, timeout=5)
    world.settle()
    assert world.db_call(call.sid)["state"] == "connected"
    call.hangup()
    world.wait(lambda: world.db_call(call.sid)["state"] == "ended", what="call ended")
    assert sam.post(f"/api/supervisor/calls/{call_id}/listen").status_code == 409


def test_a_listener_identity_without_a_listen_in_is_removed(world):
    """A token naming a listener is only honoured for a supervisor who asked to listen to that call."""
    alice = world.add_agent("alice")
    call, call_id, room = connected_call(world, alice)
    forged = world.services.gw.rooms.listen_token(identity="listen:alice", name="x", room=room, ttl_s=60)
    assert requests.post(world.livekit.url + "/_sim/rtc/join", json={"token": forged}, timeout=5).status_code == 200
    world.wait(lambda: "listen:alice" not in world.participants(room), what="the stranger removed")
    assert "participant_removed" in world.timeline(call_id)
    assert world.db_call(call.sid)["state"] == "connected"
    call.hangup()


def test_listen_in_waits_for_a_connected_call(world):
    sam = supervisor(world)
    world.add_agent("alice")
    call = world.call()
    call_id = world.wait(lambda: world.services.views.calls_by_twilio_sid(call.sid, None), what="call")[0]["id"]
    reply = sam.post(f"/api/supervisor/calls/{call_id}/listen")
    assert reply.status_code == 409 and "once the call is connected" in reply.json()["error"]
    assert sam.post("/api/supervisor/calls/call_nope/listen").status_code == 404
    call.hangup()


def test_a_transfer_in_progress_and_its_outcome_on_the_board(world):
    from tests.e2e.test_transfer import connect_call as answered_call
    from tests.e2e.test_transfer import start_warm, transfer_state

    sam = supervisor(world)
    alice, bob = world.add_agent("alice"), world.add_agent("bob")
    call, call_id = answered_call(world, alice)
    transfer = start_warm(world, alice, call_id, {"target_agent_id": "bob"})

    def on_board():
        return next((t for t in sam.get("/api/supervisor/board").json()["live"]["transfers"]), None)

    row = world.wait(on_board, what="the transfer on the board")
    assert (row["id"], row["from_agent"], row["to"], row["mode"]) == (transfer["id"], "Alice", "Bob", "warm")
    assert row["state"] in ("initiated", "consulting", "target_ringing")
    live_call = next(c for c in sam.get("/api/supervisor/board").json()["live"]["calls"] if c["id"] == call_id)
    assert live_call["state"] == "in transfer"

    bob.wait_offer("transfer")
    assert bob.post(f"/api/transfers/{transfer['id']}/decline").status_code == 200
    world.wait(lambda: transfer_state(world, transfer["id"]) == "declined", what="declined")
    world.wait(lambda: not sam.get("/api/supervisor/board").json()["live"]["transfers"], what="off the board")
    transfers = sam.get("/api/supervisor/figures").json()["figures"]["overall"]["transfers"]
    assert transfers["total"] == 1 and transfers["by_outcome"]["declined"] == 1
    rows = list(csv.DictReader(io.StringIO(sam.get("/api/supervisor/export.csv").text)))
    assert [
        (r["record"], r["outcome"], r["agent"], r["caller_or_target"]) for r in rows if r["record"] == "transfer"
    ] == [("transfer", "declined", "alice", "bob")]
    call.hangup()


def test_the_board_stream_sends_the_board_and_ends_when_the_supervisor_is_signed_out(world):
    sam = supervisor(world)
    stream = sam.http.get(world.url + "/api/supervisor/events", stream=True, timeout=10)
    assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    lines = stream.iter_lines(decode_unicode=True)
    events = []
    for line in lines:
        if line.startswith("event: "):
            events.append(line[7:])
        if events == ["board"]:
            break
    world.services.agents.reset_secret("sam")  # the credential changes: the stream must end
    started = time.monotonic()
    for line in lines:
        if line.startswith("event: "):
            events.append(line[7:])
        if line.startswith("data: ") and events[-1] == "signed_out":
            assert "sign in again" in line
            break
    assert events[-1] == "signed_out" and time.monotonic() - started < 6
    stream.close()


def test_web_calls_carry_their_channel_and_a_listener_is_invisible_to_the_web_caller(world):
    from tests.e2e.test_web_calls import WebCaller

    sam = supervisor(world)
    alice = world.add_agent("alice")
    caller = WebCaller(world, origin=world.url)
    assert caller.reply.status_code == 201, caller.reply.text
    assert caller.join(caller.data["token"]).status_code == 200
    alice.wait_offer()
    room = alice.accept_and_join(caller.call_id)["room"]
    caller.wait_state("connected")

    row = next(c for c in sam.get("/api/supervisor/board").json()["live"]["calls"] if c["id"] == caller.call_id)
    assert (row["channel"], row["caller"], row["state"]) == ("web", "web caller", "talking")
    grant = sam.post(f"/api/supervisor/calls/{caller.call_id}/listen").json()
    assert grant["room"] == room
    assert requests.post(world.livekit.url + "/_sim/rtc/join", json={"token": grant["token"]}, timeout=5).ok
    world.settle()
    assert "listen:sam" in world.participants(room)
    assert world.livekit.seen_by(room, caller.identity) == ["alice"]  # the caller's page is not told
    assert caller.status()["state"] == "connected"
    assert "participant_removed" not in world.timeline(caller.call_id)

    assert caller.http.post(f"{world.url}/api/web-calls/{caller.call_id}/hangup").status_code == 200
    world.wait(lambda: caller.status()["state"] == "ended", what="ended")
    world.wait(lambda: room not in world.livekit.rooms(), what="the room, and the listener with it, gone")
    figures = sam.get("/api/supervisor/figures").json()["figures"]
    assert figures["channels"]["web"]["offered"] == 1 and figures["channels"]["web"]["answered"] == 1
    assert "phone" not in figures["channels"]
    rows = list(csv.DictReader(io.StringIO(sam.get("/api/supervisor/export.csv").text)))
    assert [(r["channel"], r["caller_or_target"], r["outcome"]) for r in rows] == [("web", "web caller", "answered")]


def test_time_in_state_runs_on_while_the_caller_speaks(world):
    """Transcript lines and notes are on the timeline, but the call's state has not changed."""
    sam = supervisor(world)
    alice = world.add_agent("alice")
    call, call_id, _ = connected_call(world, alice)
    time.sleep(1.2)
    call.speak("My router keeps rebooting every evening.")
    assert alice.post(f"/api/calls/{call_id}/notes", {"text": "router"}).status_code == 201
    world.wait(lambda: "transcript" in world.timeline(call_id), what="transcribed")
    row = next(c for c in sam.get("/api/supervisor/board").json()["live"]["calls"] if c["id"] == call_id)
    assert row["state"] == "talking" and row["in_state_s"] >= 1.0
    call.hangup()


def test_a_supervisor_made_an_agent_again_stops_listening_and_is_refused(world):
    sam = supervisor(world)
    alice = world.add_agent("alice")
    call, call_id, room = connected_call(world, alice)
    grant = sam.post(f"/api/supervisor/calls/{call_id}/listen").json()
    assert requests.post(world.livekit.url + "/_sim/rtc/join", json={"token": grant["token"]}, timeout=5).ok
    world.settle()
    assert "listen:sam" in world.participants(room)

    demoted = requests.put(
        world.url + "/api/admin/agents/sam/role",
        json={"role": "agent"},
        headers={"Authorization": "Bearer admin-test-token"},
        timeout=5,
    )
    assert demoted.status_code == 200 and demoted.json()["agent"]["role"] == "agent"
    world.wait(lambda: "listen:sam" not in world.participants(room), what="the listener taken out")
    assert sam.get("/api/supervisor/board").status_code == 403
    assert world.db_call(call.sid)["state"] == "connected"
    call.hangup()


def test_boards_served_by_gunicorn_hold_no_thread_and_see_a_caller_arrive(database_url):
    """Five boards on one gthread worker of six threads, on the consoles' notifier: each is shown the
    caller ringing in, the voice webhook is answered, and no board holds a request thread."""
    import socket

    from twilio.request_validator import RequestValidator

    from gateway.adapters.store import Store
    from gateway.sandbox.runtime import Doubles
    from gateway.services.agents import AgentService
    from tests.security.test_streams import Gunicorn, RawStream, _metric

    doubles = Doubles().start()
    store = Store(database_url)
    store.migrate()
    agents = AgentService(store)
    agents.add("ann", "Ann", None, True, "available")
    boards_credentials = [agents.add(f"sup{i}", f"Sup {i}", None, True, "offline", role="supervisor") for i in range(5)]
    server = Gunicorn(
        database_url, doubles, GUNICORN_THREADS="6", WEBHOOK_THREADS_RESERVED="2", CONSOLE_STREAM_DETACH="1"
    )
    port = int(server.url.rsplit(":", 1)[1])
    boards = []
    try:
        for credential in boards_credentials:
            board = RawStream.__new__(RawStream)
            board.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
            board.sock.sendall(
                (
                    f"GET /api/supervisor/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Accept: text/event-stream\r\nAuthorization: Bearer {credential}\r\n\r\n"
                ).encode()
            )
            board.received = b""
            boards.append(board)
        assert all(b.until(b"event: board") for b in boards), "every board was served"

        form = {"CallSid": "CA" + "5" * 32, "From": "+15557654321", "To": server.settings.twilio_phone_number}
        signature = RequestValidator(server.settings.twilio_auth_token).compute_signature(
            server.url + "/twilio/voice", form
        )
        voice = requests.post(
            server.url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}, timeout=(3, 15)
        )
        assert voice.status_code == 200 and "<Response>" in voice.text
        assert all(b.until(b"\\u20264321") for b in boards), "every board shows the caller (…4321)"
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        assert _metric(metrics, 'gateway_console_streams{transport="socket"}') == 5
        assert _metric(metrics, "gateway_console_stream_pollers") == 1
    finally:
        for board in boards:
            board.close()
        server.stop()
        doubles.stop()
        store.engine.dispose()
