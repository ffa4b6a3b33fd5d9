"""Two gateway processes (gunicorn, as deployed) on one database: no transition is handled twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from gateway.adapters.store import Store
from gateway.adapters.store.models import Call, Job, TimelineEntry
from gateway.sandbox import runtime

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_gateways(database_url, tmp_path):
    doubles = runtime.Doubles(time_scale=0.02).start()
    ports = [free_port(), free_port()]
    public = f"http://127.0.0.1:{ports[0]}"
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": runtime.ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": runtime.AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": runtime.PHONE_NUMBER,
        "TWILIO_API_BASE_URL": doubles.twilio.url,
        "LIVEKIT_URL": doubles.livekit.url,
        "LIVEKIT_API_KEY": runtime.LIVEKIT_KEY,
        "LIVEKIT_API_SECRET": runtime.LIVEKIT_SECRET,
        "LIVEKIT_SIP_HOST": runtime.SIP_HOST,
        "LIVEKIT_SIP_USERNAME": runtime.SIP_USER,
        "LIVEKIT_SIP_PASSWORD": runtime.SIP_PASSWORD,
        "DATABASE_URL": database_url,
        "PUBLIC_BASE_URL": public,
        "SECRET_KEY": "two-processes",
        "PYTHONPATH": str(ROOT),
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": "",
    }
    Store(database_url).migrate()
    procs = []
    for port in ports:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "gateway:create_app()"],
                env={**env, "PORT": str(port)},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "gateway processes did not start"
            time.sleep(0.2)
    yield [f"http://127.0.0.1:{p}" for p in ports], public, Store(database_url)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(10)
    doubles.stop()


def test_same_callbacks_to_two_processes_at_once_change_state_once(two_gateways):
    urls, public, store = two_gateways
    sid = "CA" + "7" * 32
    voice = {"CallSid": sid, "From": "+15557654321", "To": runtime.PHONE_NUMBER, "CallStatus": "ringing"}
    status = {"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "3"}

    def post(url, path, form):
        signature = RequestValidator(runtime.AUTH_TOKEN).compute_signature(public + path, form)
        return requests.post(url + path, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)

    barrier = threading.Barrier(8)
    results = []

    def race(url, path, form):
        barrier.wait()
        results.append(post(url, path, form).status_code)

    threads = [threading.Thread(target=race, args=(urls[i % 2], "/twilio/voice", voice)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == [200] * 8
    barrier = threading.Barrier(8)
    results.clear()
    threads = [threading.Thread(target=race, args=(urls[i % 2], "/twilio/status", status)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == [204] * 8

    def counts(session):
        call = session.execute(select(Call)).scalar_one()
        kinds = session.execute(select(TimelineEntry.kind).where(TimelineEntry.call_id == call.id)).scalars().all()
        deletes = session.execute(select(func.count()).select_from(Job).where(Job.kind == "delete_room")).scalar()
        return call.state, kinds, deletes

    state, kinds, deletes = store.read(counts)
    assert state == "ended"
    assert kinds.count("call_received") == 1 and kinds.count("call_ended") == 1
    assert deletes == 1
