"""A small HTTP/1.1 load generator (asyncio, keep-alive, pre-built requests) run in its own process.

Two modes:

* closed loop: ``concurrency`` connections each send the next request as soon as the previous
  answer is in — the server's maximum throughput;
* open loop: requests are due at a fixed rate whatever the server does; latency is measured from
  the moment a request was *due* (no coordinated omission), and a request that finds every
  connection busy opens another one (up to ``max_connections``) or waits its turn.

Requests are built before the clock starts (signing included), so the client's own CPU cost per
request is a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


def voice_requests(
    port: int, public_base_url: str, auth_token: str, account_sid: str, to: str, count: int, path: str = "/twilio/voice"
) -> list[bytes]:
    """``count`` signed Twilio voice webhooks, each with a new CallSid and caller."""
    validator = RequestValidator(auth_token)
    url = public_base_url.rstrip("/") + path
    out = []
    for _ in range(count):
        form = {
            "AccountSid": account_sid,
            "CallSid": "CA" + secrets.token_hex(16),
            "From": "+1555" + str(secrets.randbelow(10**7)).zfill(7),
            "To": to,
            "Caller": "",
            "Called": to,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        form["Caller"] = form["From"]
        signature = validator.compute_signature(url, form)
        body = urlencode(form).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: TwilioProxy/1.1\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n"
            f"I-Twilio-Idempotency-Token: {secrets.token_hex(16)}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


class _Conn(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self):
        self.transport = None
        self.buf = b""
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data):
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1")
        length, close = 0, False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        body = self.buf[end + 4 : end + 4 + length]
        self.buf = self.buf[end + 4 + length :]
        self.waiter.set_result((status, body, close))

    async def request(self, raw: bytes):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def _classify(status: int, body: bytes) -> str:
    if status != 200:
        return f"http_{status}"
    if b"trouble connecting" in body:
        return "error_twiml"  # the gateway's technical apology: it failed to handle the call
    if b"<Sip" in body:
        return "bridge"
    if b"<Say" in body:
        return "apology"
    return "other"


async def _open(port: int) -> _Conn:
    _, conn = await asyncio.get_running_loop().create_connection(_Conn, "127.0.0.1", port)
    return conn


async def _send(port: int, conn: _Conn | None, raw: bytes):
    """Send on conn (a new one if None or closed); returns (conn or None, status, kind)."""
    for attempt in range(2):
        if conn is None or conn.closed:
            conn = await _open(port)
        try:
            status, body, close = await conn.request(raw)
        except ConnectionError:
            conn = None
            if attempt == 0:
                continue  # the server closed an idle keep-alive connection before we wrote: reconnect once
            return None, 0, "conn_error"
        if close:
            conn.transport.close()
            conn = None
        return conn, status, _classify(status, body)
    return None, 0, "conn_error"


async def _closed_loop(port: int, reqs: list[bytes], concurrency: int, duration: float):
    results: list[tuple[float, float, str]] = []  # (start, latency, kind)
    it = iter(reqs)
    start = time.monotonic()
    stop_at = start + duration

    async def worker():
        conn = None
        for raw in it:
            t = time.monotonic()
            if t >= stop_at:
                return
            conn, status, kind = await _send(port, conn, raw)
            results.append((t, time.monotonic() - t, kind))
        if conn:
            conn.transport.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.monotonic() - start


async def _open_loop(port: int, reqs: list[bytes], rate: float, max_connections: int):
    results: list[tuple[float, float, str]] = []
    idle: list[_Conn] = []
    open_count = 0
    backlog: asyncio.Queue = asyncio.Queue()
    start = time.monotonic() + 0.05
    pending: set = set()

    async def one(due: float, raw: bytes, conn: _Conn | None):
        nonlocal open_count
        conn, status, kind = await _send(port, conn, raw)
        results.append((due, time.monotonic() - due, kind))
        if conn is None:
            open_count -= 1
        if not backlog.empty():
            due2, raw2 = backlog.get_nowait()
            if conn is None:
                open_count += 1
            task = asyncio.ensure_future(one(due2, raw2, conn))
            pending.add(task)
            task.add_done_callback(pending.discard)
        elif conn is not None:
            idle.append(conn)

    for i, raw in enumerate(reqs):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            conn = idle.pop()
        elif open_count < max_connections:
            conn, open_count = None, open_count + 1
        else:
            backlog.put_nowait((due, raw))
            continue
        task = asyncio.ensure_future(one(due, raw, conn))
        pending.add(task)
        task.add_done_callback(pending.discard)
    while pending or not backlog.empty():
        await asyncio.sleep(0.01)
    for conn in idle:
        conn.transport.close()
    return results, time.monotonic() - start


def run(spec: dict) -> dict:
    """Entry point in the load process. spec: mode (closed|open), port, reqs, and concurrency/duration or rate."""
    reqs = spec["reqs"]
    if spec["mode"] == "closed":
        results, elapsed = asyncio.run(_closed_loop(spec["port"], reqs, spec["concurrency"], spec["duration"]))
    else:
        results, elapsed = asyncio.run(_open_loop(spec["port"], reqs, spec["rate"], spec.get("max_connections", 256)))
    return {"results": results, "elapsed": elapsed}


_CACHE: dict = {}


def build_and_run(build: dict, spec: dict) -> dict:
    """Build the requests in the load process too (keeps the bench process free). ``reuse`` keeps them
    for the next run with the same build (only for the bare app: the gateway needs new CallSids)."""
    build = dict(build)
    if build.pop("reuse", False):
        key = tuple(sorted(build.items()))
        if key not in _CACHE:
            _CACHE[key] = voice_requests(**build)
        reqs = _CACHE[key]
    else:
        reqs = voice_requests(**build)
    return run(dict(spec, reqs=reqs))
