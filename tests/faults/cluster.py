"""Two real gateway processes on one database, behind a round-robin router, for crash tests.

- The loopback doubles (Twilio simulator, LiveKit, OpenAI) run in the test process.
- Each gateway is ``python -m tests.faults.gateway_process PORT``, configured like production
  (real-credential environment variables pointing at the doubles) with ``JOB_LEASE_S=3`` so a
  killed process's running jobs are taken over three seconds later. A SIGKILLed process is
  replaced at once by a warm standby on the same port (imports done, app built, nothing served or
  run until it takes over), so the crash points are not spaced by a 2 s interpreter start.
- ``RoundRobinRouter`` stands in for the platform router: PUBLIC_BASE_URL points at it (so
  Twilio signatures are computed for its URL) and it forwards each request to the gateways in
  turn. A request whose gateway is down or dies before answering is sent to the other one
  (as a router with retry-on-connection-failure does), so a SIGKILL costs the caller nothing
  as long as the gateway itself is crash-safe — which is what these tests check.
"""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from gateway.adapters.store import Store
from gateway.config import Settings
from gateway.sandbox import runtime
from gateway.services.views import Views

ROOT = Path(__file__).resolve().parents[2]
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}
ADMIN_TOKEN = "crash-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class RoundRobinRouter:
    """A tiny reverse proxy: round robin over live backends, retrying on connection failures."""

    def __init__(self, ports: list[int], *, give_up_s: float = 20.0):
        self.ports = list(ports)
        self.give_up_s = give_up_s
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.hooks: list[tuple[Callable[[str, str], bool], Callable[[int], None]]] = []
        self.stats = {"forwarded": 0, "rerouted": 0, "failed": 0}
        self.handled_by: dict[str, int] = {}  # path -> the backend that answered it last
        # LiveKit webhooks as delivered: body, and each attempt's (port, "ok" | "died") — a webhook whose
        # gateway died while handling it was retried on the other one.
        self.webhooks: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_Quiet)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="router"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> RoundRobinRouter:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def on_request(self, predicate: Callable[[str, str], bool], action: Callable[[int], None]) -> None:
        """Once: when a request matching predicate(method, path) is sent to a backend, run action(port)
        on another thread (the request is in flight meanwhile)."""
        with self._lock:
            self.hooks.append((predicate, action))

    def _take_hook(self, method: str, path: str) -> Callable[[int], None] | None:
        with self._lock:
            for i, (predicate, action) in enumerate(self.hooks):
                if predicate(method, path):
                    del self.hooks[i]
                    return action
        return None

    def __call__(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        deadline = time.monotonic() + self.give_up_s
        attempt = 0
        record = None
        if request.path == "/livekit/webhook":
            record = {"at": time.monotonic(), "body": body, "attempts": []}
            with self._lock:
                self.webhooks.append(record)
        while True:
            start = next(self._turn)
            order = [self.ports[(start + i) % len(self.ports)] for i in range(len(self.ports))]
            for port in order:
                hook = self._take_hook(request.method, request.path)
                if hook is not None:
                    threading.Thread(target=hook, args=(port,), daemon=True).start()
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                    conn.request(request.method, target, body=body, headers=headers)
                    reply = conn.getresponse()
                    data = reply.read()
                    out_headers = [(k, v) for k, v in reply.getheaders() if k.lower() not in HOP_BY_HOP]
                    status = reply.status
                    conn.close()
                except (OSError, http.client.HTTPException) as exc:
                    attempt += 1
                    if record is not None:  # refused: never reached a gateway; died: it had the request
                        record["attempts"].append(
                            (port, "refused" if isinstance(exc, ConnectionRefusedError) else "died")
                        )
                    with self._lock:
                        self.stats["rerouted"] += 1
                    continue
                if record is not None:
                    record["attempts"].append((port, status))
                with self._lock:
                    self.stats["forwarded"] += 1
                    self.handled_by.pop(request.path, None)  # keep the dict in order of last use
                    self.handled_by[request.path] = port
                response = Response(data, status=status, headers=out_headers)
                return response(environ, start_response)
            if time.monotonic() > deadline:
                with self._lock:
                    self.stats["failed"] += 1
                return Response("no gateway answered\n", status=503)(environ, start_response)
            time.sleep(0.05)


class GatewayProcess:
    _serial = itertools.count()

    def __init__(self, name: str, port: int, env: dict, log_dir: Path):
        self.name, self.port, self.env = name, port, env
        self.log_path = log_dir / f"{name}-{next(self._serial)}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, *, standby: bool = False) -> GatewayProcess:
        """Start the process; a standby builds the app and waits for activate() before serving."""
        log = open(self.log_path, "ab")
        command = [sys.executable, "-m", "tests.faults.gateway_process", str(self.port)]
        self.proc = subprocess.Popen(
            command + (["--standby"] if standby else []),
            cwd=str(ROOT),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
        )
        log.close()
        return self

    def activate(self) -> None:
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n"
                    + self.log_path.read_text()[-3000:]
                )
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log_path}")

    def sigkill(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.stdin:
            try:
                self.proc.stdin.close()  # a standby that was never activated exits
            except OSError:
                pass
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Agent:
    """An agent's console: the REST API through the router, and the browser's LiveKit join."""

    def __init__(self, cluster: Cluster, agent_id: str, credential: str):
        self.cluster, self.id = cluster, agent_id
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {credential}"

    def post(self, path: str, json: dict | None = None):
        return self.http.post(self.cluster.url + path, json=json or {}, timeout=30)

    def get(self, path: str):
        return self.http.get(self.cluster.url + path, timeout=30)

    def offers(self, kind: str | None = None) -> list:
        reply = self.get("/api/agents/me/offers")
        assert reply.status_code == 200, reply.text
        return [o for o in reply.json()["offers"] if kind is None or o["kind"] == kind]

    def join(self, token: str) -> dict:
        reply = requests.post(self.cluster.livekit.url + "/_sim/rtc/join", json={"token": token}, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def leave(self, room: str) -> None:
        requests.post(
            self.cluster.livekit.url + "/_sim/rtc/leave", json={"room": room, "identity": self.id}, timeout=10
        )


class Cluster:
    def __init__(self, database_url: str, log_dir: Path, *, time_scale: float = 0.2, ring_timeout_s: float = 20.0):
        self.database_url = database_url
        self.doubles = runtime.Doubles(time_scale=time_scale).start()
        self.twilio, self.livekit, self.openai = self.doubles.twilio, self.doubles.livekit, self.doubles.openai
        ports = [free_port(), free_port()]
        self.router = RoundRobinRouter(ports).start()
        self.url = self.router.url
        self.settings = self.doubles.settings(Settings(public_base_url=self.url, database_url=database_url))
        s = self.settings
        env = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEB_CONCURRENCY", "DATABASE_URL")}
        env.update(self.doubles.process_env(s))
        env.update(
            DATABASE_URL=database_url,
            PUBLIC_BASE_URL=self.url,
            SECRET_KEY="crash-test-secret",
            ADMIN_TOKEN=ADMIN_TOKEN,
            JOB_LEASE_S="3",
            RING_TIMEOUT_S=str(ring_timeout_s),
            QUEUE_TIMEOUT_S="600",
            SUMMARY_DEADLINE_S="1",
            INTRO_TIMEOUT_S="120",
            TRANSCRIPTION_ENABLED="false",
            PYTHONUNBUFFERED="1",
        )
        self.env, self.log_dir = env, log_dir
        self.procs = [GatewayProcess(f"gateway-{i}", port, env, log_dir) for i, port in enumerate(ports)]
        self.procs[0].start().wait_ready()  # the first one migrates the schema
        self.procs[1].start().wait_ready()
        # A warm replacement per slot: after a SIGKILL the slot's standby binds the port and starts at once.
        self.standbys = [
            GatewayProcess(f"gateway-{i}", port, env, log_dir).start(standby=True) for i, port in enumerate(ports)
        ]
        self.doubles.connect(self.settings)
        self.store = Store(database_url)
        self.views = Views(self.store)
        self.crashes = 0

    # ------------------------------------------------------------- processes
    def kill(self, index: int) -> None:
        """SIGKILL one gateway process; a fresh process takes its place on the same port at once."""
        self.procs[index].sigkill()
        self.crashes += 1
        replacement = self.standbys[index]
        replacement.activate()
        self.procs[index] = replacement
        self.standbys[index] = GatewayProcess(replacement.name, replacement.port, self.env, self.log_dir).start(
            standby=True
        )

    def kill_port(self, port: int) -> None:
        self.kill(next(i for i, p in enumerate(self.procs) if p.port == port))

    def wait_all_ready(self, timeout: float = 30.0) -> None:
        for proc in self.procs:
            proc.wait_ready(timeout)

    def close(self) -> None:
        for proc in self.procs + self.standbys:
            proc.stop()
        self.doubles.stop()
        self.router.stop()
        self.store.engine.dispose()

    # ---------------------------------------------------------------- helpers
    def admin(self, method: str, path: str, json: dict | None = None):
        return requests.request(
            method, self.url + path, json=json, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )

    def add_agent(self, agent_id: str, status: str = "available", phone: str | None = None) -> Agent:
        reply = self.admin(
            "POST",
            "/api/admin/agents",
            {"id": agent_id, "name": agent_id.title(), "browser": phone is None, "phone": phone, "status": status},
        )
        assert reply.status_code == 201, reply.text
        return Agent(self, agent_id, reply.json()["credential"])

    def set_status(self, agent_id: str, status: str):
        return self.admin("POST", f"/api/admin/agents/{agent_id}/status", {"status": status})

    def call(self, caller: str):
        return self.twilio.place_inbound_call(from_=caller, to=runtime.PHONE_NUMBER)

    def db_call(self, sid: str) -> dict:
        from sqlalchemy import select

        from gateway.adapters.store.models import Call
        from gateway.services.views import call_dict

        return self.store.read(lambda s: call_dict(s.execute(select(Call).where(Call.twilio_sid == sid)).scalar_one()))

    def participants(self, room: str | None) -> list[str]:
        return sorted(p["identity"] for p in self.livekit.participants(room or ""))

    def timeline(self, call_id: str) -> list[dict]:
        return self.views.timeline(call_id)
