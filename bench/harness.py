"""What the bench runs the gateway with: Postgres, gunicorn processes and the loopback doubles.

The doubles are the sandbox ones (gateway/sandbox), subclassed here only to *observe* (arrival
times of REST requests, join times of participants, how long each webhook took) and for two
scale fixes that do not change what the gateway sees:

* the Twilio simulator's SIP signalling to the LiveKit double is a direct method call instead of
  loopback HTTP (it polls every bridged call's SIP session; with 1,000 calls over HTTP that alone
  would saturate the bench process), and
* the LiveKit double delivers webhooks in order within a room but concurrently across rooms (as
  LiveKit does, see shared/provider-facts.md) instead of from one thread for every room.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests

from gateway.sandbox import runtime as sandbox
from gateway.sandbox import twiml_exec
from gateway.sandbox.livekit_server import FakeLiveKit
from gateway.sandbox.openai_server import FakeOpenAI
from gateway.sandbox.twilio_sim import TwilioSimulator

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / ".runs"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("BENCH_PG_DB", "bench")
ADMIN_TOKEN = "bench-admin-token"
SECRET_KEY = "bench-secret-key"
ACCESS_LOG_FORMAT = "ACCESS %(m)s %(U)s %(s)s %(D)s %(p)s"
ACCESS_LINE = re.compile(r"ACCESS (\S+) (\S+) (\d{3}) (\d+) <(\d+)>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mono() -> float:
    return time.monotonic()


# ----------------------------------------------------------------------------- doubles
class BenchLiveKit(FakeLiveKit):
    """The LiveKit double, delivering webhooks per room in order and across rooms concurrently."""

    def __init__(self, shards: int = 64, **kwargs):
        super().__init__(api_key=sandbox.LIVEKIT_KEY, api_secret=sandbox.LIVEKIT_SECRET, **kwargs)
        self._shards = [queue.Queue() for _ in range(shards)]
        self.joins: dict[tuple[str, str], float] = {}  # (room, identity) -> monotonic time of the latest join
        self.deliveries: list[tuple[float, float, str]] = []  # (start, seconds, event)
        self._obs_lock = threading.Lock()

    def start(self) -> BenchLiveKit:
        for i, q in enumerate(self._shards):
            threading.Thread(target=self._shard_loop, args=(q,), name=f"bench-lk-wh-{i}", daemon=True).start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        for q in self._shards:
            q.put(None)

    def _webhook_loop(self) -> None:  # the base class's single sender thread becomes the router
        while True:
            item = self._wh_queue.get()
            if item is None:
                return
            self._shards[hash(item[1].room.name) % len(self._shards)].put(item)

    def _shard_loop(self, q: queue.Queue) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            try:
                if not self._stopping.is_set():
                    start = mono()
                    self._deliver(*item)
                    with self._obs_lock:
                        self.deliveries.append((start, mono() - start, item[1].event))
            finally:
                with self._wh_idle:
                    self._wh_pending -= 1
                    self._wh_idle.notify_all()

    def _join_locked(self, room, participant) -> None:
        self.joins[(room.info.name, participant.identity)] = mono()
        super()._join_locked(room, participant)


class BenchTwilio(TwilioSimulator):
    """The Twilio simulator, recording REST arrivals and webhook round trips."""

    def __init__(self, livekit: BenchLiveKit, **kwargs):
        super().__init__(
            account_sid=sandbox.ACCOUNT_SID, auth_token=sandbox.AUTH_TOKEN, livekit_url=livekit.url, **kwargs
        )
        self._lk = livekit
        self.stale_retries = 0
        self.call_arrivals: dict[str, float] = {}  # To number -> arrival of its Calls.json POST (monotonic)
        self.sent: list[tuple] = []  # (start, seconds, kind, status, error, url)
        self._obs_lock = threading.Lock()

    def _wsgi(self, environ, start_response):
        environ["bench.arrival"] = mono()
        return super()._wsgi(environ, start_response)

    def _create_call(self, request):
        arrival = request.environ.get("bench.arrival", mono())
        to = request.form.get("To", "").strip()
        with self._obs_lock:
            self.call_arrivals.setdefault(to, arrival)
        return super()._create_call(request)

    STALE = ("Connection aborted", "RemoteDisconnected", "Connection reset by peer")

    def send_webhook(self, call_sid, kind, url, method, params):
        start = mono()
        result = super().send_webhook(call_sid, kind, url, method, params)
        if result.error and any(s in result.error for s in self.STALE):
            # gunicorn closed the idle keep-alive connection just as this request went out (keepalive = 5 s):
            # an HTTP race of the simulator's connection reuse, not an answer from the gateway. Again, fresh.
            self._http.session = None
            with self._obs_lock:
                self.stale_retries += 1
            result = super().send_webhook(call_sid, kind, url, method, params)
        with self._obs_lock:
            self.sent.append((start, mono() - start, kind, result.status, result.error, url))
        return result

    def livekit(self, method: str, path: str, body: dict | None = None, timeout: float | None = None):
        """SIP signalling to the LiveKit double as a direct call (same semantics as its /_sim/sip API)."""
        lk = self._lk
        if path == "/_sim/sip/invite" and method == "POST":
            return lk.sip_invite(body or {})
        match = re.fullmatch(r"/_sim/sip/([^/]+)(/bye)?", path)
        if match and match.group(2) and method == "POST":
            payload = lk.sip_bye(match.group(1))
            return (200, payload) if payload else (404, {"error": "unknown session"})
        if match and method == "GET":
            with lk._lock:
                session = lk._sessions.get(match.group(1))
                payload = session.as_dict() if session else None
            return (200, payload) if payload else (404, {"error": "unknown session"})
        return super().livekit(method, path, body, timeout)


class World:
    """The three doubles, started by the bench process."""

    def __init__(self, time_scale: float = 1.0):
        self.livekit = BenchLiveKit().start()
        self.openai = FakeOpenAI(api_key=sandbox.OPENAI_KEY).start()
        self.twilio = BenchTwilio(self.livekit, time_scale=time_scale).start()
        self._number: str | None = None

    def env(self, port: int, database_url: str, extra: dict | None = None) -> dict:
        """Real-credentials mode: every provider variable set, pointing at the doubles."""
        env = {
            "TWILIO_ACCOUNT_SID": sandbox.ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": sandbox.AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": sandbox.PHONE_NUMBER,
            "TWILIO_API_BASE_URL": self.twilio.url,
            "LIVEKIT_URL": self.livekit.url,
            "LIVEKIT_API_KEY": sandbox.LIVEKIT_KEY,
            "LIVEKIT_API_SECRET": sandbox.LIVEKIT_SECRET,
            "LIVEKIT_SIP_HOST": sandbox.SIP_HOST,
            "LIVEKIT_SIP_USERNAME": sandbox.SIP_USER,
            "LIVEKIT_SIP_PASSWORD": sandbox.SIP_PASSWORD,
            "OPENAI_API_KEY": sandbox.OPENAI_KEY,
            "OPENAI_BASE_URL": self.openai.url + "/v1",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "SECRET_KEY": SECRET_KEY,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "DATABASE_URL": database_url,
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
        }
        env.update(extra or {})
        return env

    def connect(self, env: dict) -> None:
        """Point the doubles at a gateway: the LiveKit double's webhook URL, then the gateway's own
        provisioning (LiveKit trunk + dispatch rule, the Twilio number's webhook URLs)."""
        from gateway import config

        settings = config.load(env)
        origin = settings.public_origin
        self.livekit.webhook_url = origin + "/livekit/webhook"
        if not self._number:
            self._number = self.twilio.add_number(sandbox.PHONE_NUMBER)
        try:
            from gateway.ops.provision import provision
            from gateway.ops.settings import OpsSettings
        except ImportError:  # older trees: the sandbox's own helper
            sandbox.provision_livekit(settings)
            self.twilio.add_number(
                sandbox.PHONE_NUMBER,
                voice_url=origin + "/twilio/voice",
                status_callback=origin + "/twilio/status",
                voice_fallback_url=origin + "/twilio/fallback",
            )
            return
        report = provision(settings, out=lambda *_: None, ops=OpsSettings())
        if not report.ok:
            raise RuntimeError("provisioning the doubles failed: " + report.summary())

    def hang_up_all(self, settle_s: float = 2.0) -> None:
        """End every simulated call still up (before its gateway goes away), and let the last webhooks land."""
        live = [c for c in self.twilio.calls() if not c.ended]
        for call in live:
            call._request_hangup("api")
        if live:
            time.sleep(settle_s)

    def clear(self) -> None:
        self.twilio.clear_faults()
        self.livekit.clear_faults()
        self.openai.set_latency(0.0)
        self.openai.hang(False)

    def stop(self) -> None:
        for double in (self.twilio, self.livekit, self.openai):
            with contextlib.suppress(Exception):
                double.stop()


def scale_mode(on: bool) -> None:
    """Two simulator pacing constants for the scale test (restored afterwards):

    * how often a bridged call looks at its SIP session: 0.5 s instead of 20 ms (1,000 bridged calls
      would otherwise poll 50,000 times a second inside the bench process);
    * how long a <Play> lasts: 30 s, a hold-music track's length, instead of 2 s (with 2 s every held
      caller would fetch the hold TwiML again every ~3 s, ten times more often than with real music)."""
    twiml_exec.LEG_POLL_INTERVAL = 0.5 if on else 0.02
    twiml_exec.PLAY_SECONDS_PER_LOOP = 30.0 if on else 2.0


# ---------------------------------------------------------------------------- Postgres
def database_url() -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB


def fresh_database() -> str:
    """Create the bench database if needed and drop everything in it; then migrate (the release phase)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{PG_DB}"')
    url = database_url()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    from gateway.adapters.store import Store
    from gateway.config import normalise_database_url

    store = Store(normalise_database_url(url))
    store.migrate()  # what the Procfile's release phase (flask --app gateway db-upgrade) does
    store.engine.dispose()
    return url


def sql(query: str, params: tuple = ()) -> list:
    import psycopg

    with psycopg.connect(database_url(), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


# ---------------------------------------------------------------------------- gunicorn
class Gunicorn:
    """``gunicorn --config gunicorn.conf.py APP`` with the production config (WEB_CONCURRENCY=2)."""

    def __init__(self, app: str, env: dict, name: str):
        self.app, self.name = app, name
        self.port = int(env["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        RUNS.mkdir(parents=True, exist_ok=True)
        self.log_path = RUNS / f"{name}.log"
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.lower().endswith("_proxy") and k not in ("DATABASE_URL", "SANDBOX_BASE_PORT")
        }
        self.env = {**clean, **env}
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 60.0) -> Gunicorn:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [gunicorn, "--config", "gunicorn.conf.py", "--access-logformat", ACCESS_LOG_FORMAT, self.app],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = mono() + timeout
        workers = int(self.env.get("WEB_CONCURRENCY", "2"))
        while mono() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200 and len(self.workers()) == workers:
                    # Every worker answers (each builds its app after the fork).
                    for _ in range(4 * workers):
                        requests.get(self.url + "/healthz", timeout=2)
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: not ready in {timeout}s; see {self.log_path}")

    def workers(self) -> list[int]:
        if self.proc is None:
            return []
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def rss_mb(self) -> dict[int, float]:
        out = {}
        for pid in self.workers():
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            out[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out

    def log_offset(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def access(self, start_offset: int = 0, end_offset: int | None = None) -> list[tuple[str, str, int, float]]:
        """(method, path, status, seconds) of every request logged in [start_offset, end_offset)."""
        with open(self.log_path, "rb") as f:
            f.seek(start_offset)
            data = f.read() if end_offset is None else f.read(max(0, end_offset - start_offset))
        out = []
        for line in data.decode(errors="replace").splitlines():
            m = ACCESS_LINE.search(line)
            if m:
                out.append((m.group(1), m.group(2), int(m.group(3)), int(m.group(4)) / 1e6))
        return out

    def problems(self, start_offset: int = 0) -> list[str]:
        """Lines of the log that are not access lines or the usual start-up/shut-down chatter."""
        with open(self.log_path, "rb") as f:
            f.seek(start_offset)
            text = f.read().decode(errors="replace")
        bad = []
        for line in text.splitlines():
            if "ACCESS " in line:
                continue
            if any(w in line for w in ("Traceback", "ERROR", "Error", "WORKER TIMEOUT", "exception", "CRITICAL")):
                bad.append(line.strip()[:300])
        return bad

    def stop(self, timeout: float = 20.0, wait: bool = True) -> None:
        """SIGTERM (gunicorn's graceful stop); with wait=False call stop() again later to reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None and not getattr(self, "_signalled", False):
            self.proc.send_signal(signal.SIGTERM)
            self._signalled = True
        if not wait:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this bench started for this gunicorn
            self.proc.wait(5)
        if self._log and not self._log.closed:
            self._log.close()


class RssSampler:
    """Samples VmRSS of the gunicorn workers every ``every`` seconds."""

    def __init__(self, server: Gunicorn, every: float = 1.0):
        self.server, self.every = server, every
        self.samples: dict[int, list[float]] = defaultdict(list)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, mb in self.server.rss_mb().items():
                self.samples[pid].append(mb)
            self._stop.wait(self.every)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[int, float]:
        self._stop.set()
        self._thread.join(5)
        for pid, mb in self.server.rss_mb().items():
            self.samples[pid].append(mb)
        return {pid: max(v) for pid, v in self.samples.items() if v}


# ------------------------------------------------------------------------------ CPU use
def _proc_times() -> dict[int, tuple[str, float, int]]:
    """pid -> (command, CPU seconds used so far, parent pid) for every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            rest = stat[stat.rindex(")") + 2 :].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            out[int(entry)] = (cmd, (int(rest[11]) + int(rest[12])) / tick, int(rest[1]))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _machine_busy() -> float:
    """CPU seconds the whole machine was busy (all but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def pg_sessions() -> int:
    """Sessions (connections) ever opened to the bench database (PostgreSQL 14+), or -1."""
    try:
        return int(sql("SELECT sessions FROM pg_stat_database WHERE datname = %s", (PG_DB,))[0][0])
    except Exception:
        return -1


def job_stats() -> tuple[int, int]:
    """(jobs ever enqueued, primary-key lookups of the jobs table) — each claim attempt reads its job by key."""
    try:
        jobs = sql("SELECT coalesce(max(id), 0) FROM jobs")[0][0]
        scans = sql("SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname = 'jobs_pkey'")[0][
            0
        ]
        return int(jobs), int(scans)
    except Exception:
        return 0, 0


class CpuMeter:
    """CPU used during a window, in cores: gateway workers, PostgreSQL (backends alive at the end), the
    bench process (doubles), the bench's load/driver processes, other live processes, and what ended
    during the window (short-lived PostgreSQL backends, other people's short processes)."""

    def __init__(self, gateway_pids: list[int], helper_pids: list[int]):
        self.gateway, self.helpers, self.me = set(gateway_pids), set(helper_pids), os.getpid()
        self.start_times, self.t0 = _proc_times(), mono()
        self.busy0, self.sessions0, self.jobs0 = _machine_busy(), pg_sessions(), job_stats()

    def _group(self, pid: int, cmd: str) -> str:
        if pid in self.gateway:
            return "gateway workers"
        if pid == self.me:
            return "bench process (doubles)"
        if pid in self.helpers:
            return "bench load/driver processes"
        if cmd.startswith("postgres"):
            return "PostgreSQL"
        return "other processes on the machine"

    def stop(self) -> dict:
        end, seconds = _proc_times(), mono() - self.t0
        busy = _machine_busy() - self.busy0
        used: dict[str, float] = defaultdict(float)
        for pid, (cmd, cpu, _) in end.items():
            before = self.start_times.get(pid)
            delta = cpu - (before[1] if before and before[0] == cmd else 0.0)
            if delta > 0:
                used[self._group(pid, cmd)] += delta
        used["processes that ended in the window"] = max(0.0, busy - sum(used.values()))
        sessions = pg_sessions()
        jobs = job_stats()
        new_jobs = jobs[0] - self.jobs0[0]
        return {
            "seconds": seconds,
            "new_jobs": new_jobs,
            "job_key_lookups_per_job": round((jobs[1] - self.jobs0[1]) / new_jobs, 1) if new_jobs > 0 else None,
            "cores": os.cpu_count(),
            "machine_busy": round(busy / seconds, 3),
            "new_pg_sessions_per_s": round((sessions - self.sessions0) / seconds, 1) if sessions >= 0 else None,
            "share": {k: round(v / seconds, 3) for k, v in sorted(used.items(), key=lambda kv: -kv[1])},
        }


def describe_cpu(cpu: dict) -> str:
    parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu["share"].items() if v >= 0.005)
    text = (
        f"CPU over {cpu['seconds']:.0f} s, in cores: machine busy {cpu['machine_busy']:.2f} of {cpu['cores']} ({parts})"
    )
    if cpu.get("new_pg_sessions_per_s") is not None:
        text += f"; {cpu['new_pg_sessions_per_s']:g} new PostgreSQL connections/s"
    if cpu.get("job_key_lookups_per_job") is not None:
        text += (
            f"; {cpu['new_jobs']} jobs enqueued, {cpu['job_key_lookups_per_job']:g} reads of a job by key per job "
            f"(2 when each job is claimed once: the claim and the finish; 1 for an urgent job run straight "
            f"from the commit that stored it leased)"
        )
    return text


class PgActivitySampler:
    """What the gateway's PostgreSQL sessions are doing, sampled every ``every`` seconds (pg_stat_activity):
    running a statement, waiting for a row lock, idle inside a transaction (the app holds it open while it
    runs Python), or idle in the pool."""

    def __init__(self, every: float = 0.5):
        self.every = every
        self.counts: Counter = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(database_url(), autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    (PG_DB,),
                ).fetchall()
                for state, wait in rows:
                    if state == "active":
                        key = "waiting for a lock" if wait == "Lock" else "running a statement"
                    elif state == "idle in transaction":
                        key = "idle in transaction (app busy)"
                    else:
                        key = "idle"
                    self.counts[key] += 1
                self.samples += 1
                self._stop.wait(self.every)

    def start(self) -> PgActivitySampler:
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(5)
        n = max(1, self.samples)
        return {k: round(v / n, 1) for k, v in self.counts.most_common()}
