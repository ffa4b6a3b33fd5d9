"""Findings 7, 8 and 9: retention covers every table with call content; a locked SQLite file makes
the caller hear the apology inside Twilio's budget and /readyz answer within a second; with the
database down, doctor still reports and the web process stops with one clear line."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from gateway.adapters.store.models import Call, Message, TranscriptLine, Voicemail
from tests.security.helpers import CALLER, connect_call, signed_post, warm_transfer

ROOT = Path(__file__).resolve().parents[2]
DOWN = "postgresql://postgres@127.0.0.1:1/gateway"  # nothing listens on port 1: refused at once
TWILIO_BUDGET_S = 15.0


def test_retention_removes_sms_bodies_numbers_and_the_rest_of_the_call_content(make_world):
    world = make_world(retention_hours=0.0005)  # 1.8 s after the call ends
    alice, bob = world.add_agent("alice"), world.add_agent("bob", status="offline")
    world.add_agent("carol", phone="+15550001111", status="offline")
    call, call_id = connect_call(world, alice)
    call.speak("My card number is 4111 1111 1111 1111, expiry 09/29.")
    world.services.agents.set_status("bob", "available")
    transfer, _ = warm_transfer(world, alice, bob, call_id)
    world.wait(lambda: world.services.views.transfer(transfer["id"])["summary"], what="summary")
    assert bob.post("/api/twilio/sms-summary", {"transfer_id": transfer["id"], "agent_id": "carol"}).status_code == 202

    def stored():
        return world.store.read(
            lambda s: {
                "messages": s.execute(select(Message.to_number, Message.body)).all(),
                "transcript": s.execute(select(TranscriptLine.text).where(TranscriptLine.call_id == call_id)).all(),
                "voicemails": s.execute(select(Voicemail.recording_url)).all(),
                "caller": s.execute(select(Call.from_number).where(Call.id == call_id)).scalar_one(),
            }
        )

    world.wait(lambda: stored()["messages"], what="the resent SMS stored")
    call.hangup()
    world.wait(lambda: "call_data_purged" in world.timeline(call_id), timeout=20, what="retention purge")

    assert stored() == {"messages": [], "transcript": [], "voicemails": [], "caller": "…" + CALLER[-4:]}
    assert world.services.views.transfer(transfer["id"])["summary"] is None


def test_a_locked_sqlite_database_answers_the_apology_inside_twilios_budget(world):
    if not world.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's file lock")
    world.add_agent("alice")
    locker = sqlite3.connect(world.settings.database_url.removeprefix("sqlite:///"), timeout=1)
    locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock (a backup, a stuck job)
    try:
        started = time.monotonic()
        reply = signed_post(
            requests,
            world,
            "/twilio/voice",
            {"CallSid": "CA" + "7" * 32, "From": CALLER, "To": world.settings.twilio_phone_number},
            timeout=TWILIO_BUDGET_S,
        )
        took = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()

    assert reply.status_code == 200 and "<Say" in reply.text and "<Dial" not in reply.text, reply.text
    assert took < TWILIO_BUDGET_S - 5  # room left for the network and Twilio's own connect time


def test_readyz_answers_within_a_second_when_livekit_hangs(world):
    world.livekit.inject_latency(5.0, method="ListRooms")
    started = time.monotonic()
    reply = requests.get(world.url + "/readyz", timeout=10)

    assert reply.status_code == 503 and reply.json()["checks"]["livekit"]["ok"] is False
    assert time.monotonic() - started < 1.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(args: list[str], **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "LIVEKIT_", "DATABASE_"))}
    return subprocess.run(
        args, cwd=ROOT, env=environment | env, capture_output=True, text=True, timeout=120, check=False
    )


def test_doctor_reports_a_database_that_is_down_and_says_what_to_fix():
    done = _run([sys.executable, "-m", "flask", "--app", "gateway", "doctor"], DATABASE_URL=DOWN)
    database = next(line for line in done.stdout.splitlines() if line.startswith("database"))

    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "FAIL" in database and "check DATABASE_URL" in database
    assert 'connection to server at "127.0.0.1", port 1 failed' in " ".join(done.stdout.split())


def test_the_web_process_stops_with_one_clear_line_when_the_database_is_down():
    done = _run(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "gateway:create_app()"],
        DATABASE_URL=DOWN,
        PORT=str(_free_port()),
        WEB_CONCURRENCY="1",
    )
    output = done.stdout + done.stderr

    assert done.returncode != 0 and "Traceback" not in output, output[-2000:]
    assert sum("cannot start: the database" in line for line in output.splitlines()) == 1, output[-2000:]
