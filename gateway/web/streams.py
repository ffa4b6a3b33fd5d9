"""Server-Sent Events at contact-centre scale: one store poller per process, no request thread per stream.

A contact centre keeps every agent's console open all day. Two things made that expensive: every
open stream polled the store on its own (three queries every half second each), and every open
stream held a request thread of the gunicorn worker for its whole life, so a few dozen consoles
took the threads Twilio's webhooks need.

- **One notifier per process** (``Notifier``, a thread started with the first stream): every
  ``poll_s`` it reads what is new in the timeline once (ids, calls and agents only), works out
  which agents it concerns (one query), reads the agents' presence once, and checks every open
  stream's session or credential in one query every ``auth_check_s``. Then it asks each open
  stream what to send (``Stream.on_tick``): a console whose agent is not concerned sends nothing
  and costs nothing; a concerned one reads its own entries and offers by the access rule.
- **Streams without a thread.** Under gunicorn's gthread worker (the Procfile's ``web``), once the
  stream's first events are ready the response's socket is handed to the notifier, which writes to
  every stream of the process from one selector loop (non-blocking, a bounded buffer per client),
  and the request thread goes back to the pool at once. Gunicorn never sees the rest of that
  response (as a WebSocket library takes over a connection). Where the socket cannot be handed
  over (another server, TLS terminated in gunicorn), a stream waits on its request thread for what
  the notifier gives it: such *held* streams are capped per process (``max_open``, set by
  gunicorn.conf.py from the threads minus the webhooks' reserve), and consoles beyond the cap get
  *brief* streams: what is new, then the stream ends and the browser's EventSource comes back after
  ``retry`` (polling, holding nothing in between).

A new kind of stream (the supervisor's board, say) subclasses ``Stream``: ``first()`` is what it
sends on opening (run on the request's thread), ``on_tick(tick)`` what it sends on each tick (run on
the notifier's thread; return '' for nothing), and the endpoint returns ``hub.respond(stream, ...)``.
``hub.wait_for_change(version, timeout)`` lets code that still polls (a held generator) sleep until
the notifier has seen something new.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import secrets
import selectors
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from flask import Response
from prometheus_client import Counter, Gauge, Histogram

from gateway.web.throttle import STREAMS_PER_AGENT

log = logging.getLogger(__name__)

STREAMS_OPEN = Gauge(
    "gateway_console_streams",
    "Open console event streams, by transport: socket (written by the process's notifier, no request "
    "thread) or thread (a request thread each, capped).",
    ["transport"],
    multiprocess_mode="livesum",
)
POLLERS = Gauge(
    "gateway_console_stream_pollers",
    "Store pollers feeding the console streams: one per process that has streams open.",
    multiprocess_mode="livesum",
)
TICK_SECONDS = Histogram(
    "gateway_console_stream_tick_seconds",
    "How long the notifier's tick takes (read the store once, then every open stream's share): "
    "it should stay well under the tick (0.5 s), or events reach consoles late.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
NOTIFIER_CPU = Counter(
    "gateway_console_stream_cpu_seconds",
    "CPU time of the notifier's thread (reading the store, working out and writing every stream's "
    "events): what the console streams take from the process's webhooks.",
)
NOTIFIERS: weakref.WeakSet[Notifier] = weakref.WeakSet()  # the running notifiers of this process


def framed(text: str, chunked: bool) -> bytes:
    """``text`` as written on a detached socket: one HTTP chunk when the response is chunked."""
    data = text.encode()
    if not chunked or not data:
        return data
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Detached(StopIteration):
    """Raised from the WSGI call once the socket is the notifier's: gunicorn's worker then closes its
    own copy of the connection without writing anything (it treats StopIteration as "close")."""


@dataclass
class Tick:
    """What the notifier learnt from the store this tick, shared by every stream of the process."""

    now: float
    concerned: set[str] = field(default_factory=set)  # agents whose calls have new timeline entries
    changed: bool = False  # anything new in the timeline
    presence: list[dict] | None = None  # every agent's presence, as last read
    presence_key: str | None = None
    sessions: set[str] | None = None  # live session tokens among the streams' (when checked this tick)
    fingerprints: dict[str, str] | None = None  # agents' credential fingerprints (when checked this tick)
    _presence_event: str | None = None
    _shared: dict[str, Any] = field(default_factory=dict)

    def shared(self, name: str, read: Callable[[], Any]) -> Any:
        """``read()`` once this tick for every stream that asks for ``name`` (e.g. every open board)."""
        if name not in self._shared:
            self._shared[name] = read()
        return self._shared[name]

    def presence_event(self) -> str:
        """The presence snapshot as one SSE event, encoded once for every stream of the tick."""
        if self._presence_event is None:
            self._presence_event = sse("presence", {"agents": self.presence or []})
        return self._presence_event


class Stream:
    """One open stream. The notifier owns its socket (detached) or its queue (held on a thread)."""

    sid: str | None = None  # a console session's token: the stream ends with the session
    cursor_at_open: int | None = None
    dirty = False  # read what is new at the next tick whether or not the notifier saw a change
    checks_credential = False  # a Bearer stream: it ends when the agent's credential changes

    def __init__(self, hub: EventStreams, agent_id: str):
        self.hub = hub
        self.agent_id = agent_id
        self.generation = hub.generation
        self.started = self.last_write = time.monotonic()
        self.ended = False
        self.transport = "brief"
        self.sock: socket.socket | None = None
        self.chunked = False
        self.out = bytearray()  # what the detached socket has not taken yet
        self.writing = False  # the selector watches the socket for room to write (out is not empty)
        self.cond = threading.Condition()
        self.queue: list[str] = []

    def frame(self, text: str) -> bytes:
        """``text`` as the bytes to write on a detached socket (one chunk when chunked)."""
        return framed(text, self.chunked)

    def first(self) -> str:
        """What to send when the stream opens (the request's thread)."""
        return ""

    def on_tick(self, tick: Tick) -> str:
        """What to send now (the notifier's thread); call ``self.finish()`` to end after it."""
        return ""

    def finish(self) -> None:
        self.ended = True

    # Held transport: the request thread yields what the notifier queued.
    def put(self, text: str) -> None:
        with self.cond:
            self.queue.append(text)
            self.cond.notify()

    def held_body(self, first: str) -> Iterator[str]:
        yield first
        while True:
            with self.cond:
                while not self.queue and not self.ended:
                    self.cond.wait(5.0)
                chunks, self.queue = self.queue, []
                ended = self.ended
            if chunks:
                yield "".join(chunks)
            if ended:
                return


class EventStreams:
    """This process's open event streams, their timing, and the knobs tests turn.

    ``drop()`` closes every open stream at once (the browser reconnects with Last-Event-ID); with
    ``refuse_for_s`` new streams are answered 503 for that long, as during a deploy or a router hiccup.
    """

    poll_s = 0.5  # the notifier's tick: an incoming call shows within about half a second
    presence_s = 0.5  # presence is read once per process, not per stream: as often as the rest
    heartbeat_s = 15.0
    auth_check_s = 2.0
    max_age_s = 300.0  # streams end now and then; the browser resumes where it was
    retry_ms = 2000
    lookback = 100  # ids re-read on every poll: a transaction may commit a lower id late

    # Whether a stream's socket may be handed to the notifier (gunicorn.conf.py turns it on for the
    # gthread worker); then a stream holds no request thread. At most max_detached such streams per
    # process (each is a file descriptor).
    detach = False
    max_detached = 4000
    # Held streams per process (when the socket cannot be handed over): each keeps a request thread,
    # so they may take only part of a worker's threads; gunicorn.conf.py sets it from the thread
    # count (threads minus the webhooks' reserve).
    max_open = 24
    per_agent = STREAMS_PER_AGENT  # one agent (one credential) cannot take the budget for itself
    brief_retry_ms = 4000  # a console over the budget is served brief streams and comes back after this
    write_buffer = 1 << 20  # a client this far behind is dropped (it reconnects with Last-Event-ID)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.generation = 0
        self.version = 0  # bumped whenever the notifier sees something new in the store
        self.refuse_until = 0.0
        self.open = 0  # held streams (a thread each)
        self.detached = 0
        self.by_agent: dict[str, int] = {}
        self.closed = False
        self._notifier: Notifier | None = None
        try:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft != resource.RLIM_INFINITY:
                self.max_detached = max(16, min(self.max_detached, soft - 256))
        except (OSError, ValueError):
            pass

    # ------------------------------------------------------------ budget
    def reserve(self, agent_id: str, detached: bool = False) -> str:
        """'detached' or 'held' (a slot is taken: release it), 'brief' (over budget), or 'refused'."""
        with self._lock:
            if self.by_agent.get(agent_id, 0) >= self.per_agent:
                return "refused"
            if detached and self.detached < self.max_detached:
                self.detached += 1
                mode = "detached"
            elif self.open < self.max_open:
                self.open += 1
                mode = "held"
            else:
                return "brief"
            self.by_agent[agent_id] = self.by_agent.get(agent_id, 0) + 1
            return mode

    def release(self, agent_id: str, mode: str = "held") -> None:
        with self._lock:
            if mode == "detached":
                self.detached -= 1
            else:
                self.open -= 1
            left = self.by_agent.get(agent_id, 1) - 1
            if left > 0:
                self.by_agent[agent_id] = left
            else:
                self.by_agent.pop(agent_id, None)

    # ------------------------------------------------------------ control
    def drop(self, refuse_for_s: float = 0.0) -> None:
        with self._lock:
            self.generation += 1
            self.refuse_until = time.monotonic() + refuse_for_s
            self._wake.notify_all()
        if self._notifier is not None:
            self._notifier.wake()

    def shutdown(self) -> None:
        """End every stream for good (tests' teardown, worker exit)."""
        with self._lock:
            self.closed = True
            self.generation += 1
            self._wake.notify_all()
            notifier, self._notifier = self._notifier, None
        if notifier is not None:
            notifier.stop()

    def refusing(self) -> bool:
        return self.closed or time.monotonic() < self.refuse_until

    def sleep(self, seconds: float, generation: int) -> bool:
        """Wait up to ``seconds``; False if the stream must end (dropped or shut down)."""
        with self._lock:
            if self.generation == generation:
                self._wake.wait(seconds)
            return self.generation == generation

    def changed(self) -> None:
        with self._lock:
            self.version += 1
            self._wake.notify_all()

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Wait until the notifier has seen something new after ``version`` (or ``timeout``, or a
        drop); the version now. For code that polls on a thread of its own."""
        with self._lock:
            generation = self.generation
            self._wake.wait_for(lambda: self.version != version or self.generation != generation, timeout)
            return self.version

    # ------------------------------------------------------------ the notifier
    def notifier(self, services: Any) -> Notifier:
        with self._lock:
            if self._notifier is None:
                self._notifier = Notifier(self, services)
                self._notifier.start()
            return self._notifier

    def recent_presence(self) -> tuple[list[dict], str] | None:
        """The notifier's last read of everyone's presence while still fresh (a stream opening then
        needs no read of its own), else None."""
        notifier = self._notifier
        if notifier is None or notifier.presence is None or notifier.presence_key is None:
            return None
        if time.monotonic() - notifier.last_presence > 2 * self.presence_s:
            return None
        return notifier.presence, notifier.presence_key

    def pollers(self) -> int:
        """Store pollers running for this hub: 0 before the first stream, then 1."""
        notifier = self._notifier
        return 1 if notifier is not None and notifier.running else 0

    # ------------------------------------------------------------ the response
    def detachable(self, environ: dict) -> bool:
        sock = environ.get("gunicorn.socket")
        return self.detach and isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)

    def respond(
        self,
        stream: Stream,
        mode: str,
        services: Any,
        headers: dict[str, str],
        on_close: Callable[[], None] | None = None,
    ) -> Response:
        """The HTTP response for ``stream`` reserved as ``mode`` ('detached', 'held' or 'brief')."""
        if mode == "brief":
            stream.transport = "brief"
            return Response(stream.first(), mimetype="text/event-stream", headers=headers)
        notifier = self.notifier(services)
        # What the notifier had read when this stream read its start: if it reads more before taking
        # the stream on, the stream reads once more at its first tick (nothing falls in between).
        stream.cursor_at_open = notifier.cursor
        first = stream.first()
        if mode == "detached":
            return DetachingResponse(stream, first, notifier, mimetype="text/event-stream", headers=headers)
        stream.transport = "thread"
        notifier.add(stream)
        response = Response(stream.held_body(first), mimetype="text/event-stream", headers=headers)
        closed: list[bool] = []

        def close() -> None:  # on close, whether the stream ran or the client left before its first byte
            if not closed:
                closed.append(True)
                notifier.remove(stream)
                if on_close is not None:
                    on_close()

        response.call_on_close(close)
        return response


class DetachingResponse(Response):
    """Writes its status line and headers itself and gives the socket to the notifier."""

    def __init__(self, stream: Stream, first: str, notifier: Notifier, **kwargs: Any):
        super().__init__(**kwargs)
        self.sse_stream, self.first, self.notifier = stream, first, notifier

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        sock: socket.socket = environ["gunicorn.socket"]
        skip = ("content-length", "connection", "transfer-encoding")
        headers = [(k, v) for k, v in self.headers.to_wsgi_list() if k.lower() not in skip]
        headers += [("Date", formatdate(usegmt=True)), ("Connection", "close")]
        # Chunked, as gunicorn would: a client then gets each event as it is written (one reading
        # fixed-size blocks of a close-delimited body would wait for the block), and a clean end.
        chunked = environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        reason = HTTPStatus(self.status_code).phrase
        head = f"HTTP/1.1 {self.status_code} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        # Our own descriptor of the connection; gunicorn's number now names an unconnected socket,
        # so its graceful close (shutdown, then close) cannot end the stream.
        fd = os.dup(sock.fileno())
        placeholder = socket.socket(sock.family, socket.SOCK_STREAM)
        os.dup2(placeholder.fileno(), sock.fileno())
        placeholder.close()
        ours = socket.socket(fileno=fd)
        ours.setblocking(False)
        self.sse_stream.sock = ours
        self.sse_stream.chunked = chunked
        self.sse_stream.transport = "socket"
        self.notifier.add(self.sse_stream, head.encode("latin-1") + self.sse_stream.frame(self.first))
        raise Detached("the console stream continues on the notifier's thread")


class Notifier:
    """The process's one store poller and the writer of every detached stream (one thread)."""

    def __init__(self, hub: EventStreams, services: Any):
        self.hub = hub
        self.services = services
        self.lock = threading.Lock()
        self.streams: set[Stream] = set()
        self.incoming: list[tuple[Stream, bytes]] = []
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._run, name="console-streams", daemon=True)
        self.running = False
        self.stopping = False
        self.cursor: int | None = None
        self.seen: set[int] = set()
        self.presence: list[dict] | None = None
        self.presence_key: str | None = None
        self.presence_rows: list[tuple] | None = None
        self.last_presence = self.last_auth = 0.0
        self.generation = hub.generation
        self.polls = 0  # store polls so far (ticks with streams open)

    def start(self) -> None:
        self.running = True
        POLLERS.inc()
        NOTIFIERS.add(self)
        self.thread.start()

    def stop(self) -> None:
        self.stopping = True
        self.wake()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=5)

    def wake(self) -> None:
        # OSError: the pair is full (a wake is pending already) or closed.
        with contextlib.suppress(OSError):
            self.wake_w.send(b"\0")

    def add(self, stream: Stream, first: bytes = b"") -> None:
        STREAMS_OPEN.labels(transport=stream.transport).inc()
        with self.lock:
            self.incoming.append((stream, first))
        self.wake()

    def remove(self, stream: Stream) -> None:
        """A held stream's request ended (the client left, or the stream finished)."""
        stream.ended = True
        self._forget(stream)

    def _forget(self, stream: Stream) -> bool:
        """Take the stream off the registry; False if it was not on it (any more)."""
        with self.lock:
            if stream in self.streams:
                self.streams.discard(stream)
            elif any(s is stream for s, _ in self.incoming):
                self.incoming = [(s, b) for s, b in self.incoming if s is not stream]
            else:
                return False
        STREAMS_OPEN.labels(transport=stream.transport).dec()
        return True

    def count(self) -> dict[str, int]:
        with self.lock:
            out: dict[str, int] = {}
            for s in [*self.streams, *(s for s, _ in self.incoming)]:
                out[s.transport] = out.get(s.transport, 0) + 1
            return out

    # ------------------------------------------------------------ the loop
    def _run(self) -> None:
        next_tick = time.monotonic()
        cpu = time.thread_time()
        try:
            while not self.stopping:
                used = time.thread_time()
                NOTIFIER_CPU.inc(used - cpu)
                cpu = used
                timeout = max(0.0, next_tick - time.monotonic())
                for key, events in self.selector.select(timeout):
                    if key.data is None:
                        try:
                            while self.wake_r.recv(4096):
                                pass
                        except OSError:
                            pass
                    else:
                        self._on_socket(key.data, events)
                if self.stopping:
                    break
                self._adopt()
                if self.hub.generation != self.generation:
                    self.generation = self.hub.generation
                    for stream in self._open():
                        if stream.generation != self.generation:
                            self._end(stream)
                if time.monotonic() >= next_tick:
                    began = time.monotonic()
                    self._tick()
                    took = time.monotonic() - began
                    # A fixed rate: the next read is poll_s after this one began (at once if the tick
                    # overran), so a slow tick does not also push every later read back.
                    next_tick = max(began + self.hub.poll_s, time.monotonic() + 0.01)
                    if self.streams:
                        TICK_SECONDS.observe(took)
        except Exception:
            log.exception("console streams: the notifier failed; open streams end and reconnect")
        finally:
            self._adopt()
            for stream in self._open():
                self._end(stream)
            self.running = False
            POLLERS.dec()
            self.selector.close()
            self.wake_r.close()
            self.wake_w.close()

    def _open(self) -> list[Stream]:
        with self.lock:
            return list(self.streams)

    def _adopt(self) -> None:
        with self.lock:
            incoming, self.incoming = self.incoming, []
            for stream, _ in incoming:
                self.streams.add(stream)
        for stream, first in incoming:
            if stream.cursor_at_open is None or stream.cursor_at_open != self.cursor:
                stream.dirty = True
            if stream.sock is not None:
                self.selector.register(stream.sock, selectors.EVENT_READ, stream)
                if first:
                    self._write(stream, first)

    def _tick(self) -> None:
        streams = self._open()
        if not streams:
            self.cursor = None  # nothing to feed: no store poll until a stream opens
            return
        now = time.monotonic()
        tick = Tick(now=now)
        try:
            self._read_store(tick, streams)
        except Exception:
            log.warning("console streams: reading the store failed; retrying next tick", exc_info=True)
            return
        self.polls += 1
        if tick.changed:
            self.hub.changed()
        # The same event (presence, the board) goes to hundreds of streams: framed once per tick.
        frames: dict[tuple[str, bool], bytes] = {}
        for stream in streams:
            if stream.ended:
                self._end(stream)
                continue
            try:
                text = stream.on_tick(tick)
            except Exception:
                log.warning("console streams: a stream failed; it ends and its browser reconnects", exc_info=True)
                stream.finish()
                text = ""
            if text:
                self._send(stream, text, frames)
            if stream.ended:
                self._end(stream)

    def _read_store(self, tick: Tick, streams: list[Stream]) -> None:
        views, agents = self.services.views, self.services.agents
        if self.cursor is None:
            self.cursor = views.last_event_id()
            self.seen = set()
        else:
            floor = max(0, self.cursor - self.hub.lookback)
            rows = [r for r in views.timeline_heads(floor) if r[0] not in self.seen]
            if rows:
                tick.changed = True
                for entry_id, _call, _agent in rows:
                    self.seen.add(entry_id)
                self.cursor = max(self.cursor, max(r[0] for r in rows))
                if len(self.seen) > 4 * self.hub.lookback:
                    self.seen = {i for i in self.seen if i > self.cursor - 2 * self.hub.lookback}
                tick.concerned = {a for _i, _c, a in rows if a} | views.agents_concerned({c for _i, c, _a in rows})
        if tick.now - self.last_presence >= self.hub.presence_s or self.presence is None:
            self.last_presence = tick.now
            rows = agents.presence()
            # Most reads find everyone as they were: compared as rows, nothing built or encoded.
            if rows != self.presence_rows:
                presence = presence_dicts(rows)
                key = json.dumps(presence, sort_keys=True)
                self.presence_rows = rows
                if key != self.presence_key:
                    self.presence, self.presence_key = presence, key
                    tick.changed = True
        tick.presence, tick.presence_key = self.presence, self.presence_key
        if tick.now - self.last_auth >= self.hub.auth_check_s:
            self.last_auth = tick.now
            sids = {s.sid for s in streams if s.sid}
            bearers = {s.agent_id for s in streams if s.checks_credential}
            tick.sessions = agents.live_sessions(sids)
            tick.fingerprints = agents.fingerprints(bearers)

    # ------------------------------------------------------------ writing
    def _send(self, stream: Stream, text: str, frames: dict[tuple[str, bool], bytes]) -> None:
        """Give ``text`` to the stream; ``frames``: what this tick has encoded already, by text."""
        stream.last_write = time.monotonic()
        if stream.sock is None:
            stream.put(text)
            return
        key = (text, stream.chunked)
        data = frames.get(key)
        if data is None:
            data = frames[key] = stream.frame(text)
        self._write(stream, data)

    def _write(self, stream: Stream, data: bytes) -> None:
        sock = stream.sock
        if sock is None:
            return
        pending = stream.out
        if pending:
            pending += data
        sending = pending or data
        try:
            sent = sock.send(sending) if sending else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(stream)
            return
        # Mostly the socket takes it all and nothing is copied; what it does not take waits in out.
        if pending:
            del pending[:sent]
        elif sent < len(data):
            pending += data[sent:]
        if len(pending) > self.hub.write_buffer:
            self._close(stream)
        elif bool(pending) != stream.writing:
            stream.writing = bool(pending)
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            self.selector.modify(sock, events, stream)

    def _on_socket(self, stream: Stream, events: int) -> None:
        sock = stream.sock
        if sock is None:
            return
        if events & selectors.EVENT_READ:
            try:
                if not sock.recv(4096):
                    self._close(stream)  # the browser went away
                    return
            except BlockingIOError:
                pass
            except OSError:
                self._close(stream)
                return
        if events & selectors.EVENT_WRITE:
            self._write(stream, b"")
            if stream.ended and not stream.out:
                self._close(stream)

    def _end(self, stream: Stream) -> None:
        """End a stream once what it was given is written (held: its request thread ends it)."""
        stream.finish()
        if stream.sock is None:
            self._forget(stream)
            with stream.cond:
                stream.cond.notify()
            return
        if stream.chunked and stream.sock is not None:
            self._write(stream, b"0\r\n\r\n")  # the body ends here
            stream.chunked = False
        if not stream.out or self.stopping:
            self._close(stream)
        # else: closed when the buffer drains (_on_socket) or the client goes away

    def _close(self, stream: Stream) -> None:
        stream.ended = True
        present = self._forget(stream)
        sock, stream.sock = stream.sock, None
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        if present:
            self.hub.release(stream.agent_id, "detached")


def presence_of(services: Any) -> list[dict]:
    return presence_dicts(services.agents.presence())


def presence_dicts(rows: list[tuple[str, str, str, bool, bool, bool]]) -> list[dict]:
    return [
        {"id": i, "name": name, "status": status, "browser": browser, "phone": phone, "not_responding": nr}
        for i, name, status, browser, phone, nr in rows
    ]


def jittered(ms: int) -> int:
    return ms + secrets.randbelow(ms // 2 + 1)
