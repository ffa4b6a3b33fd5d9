"""``python -m bench.streams``: console event streams against the call path.

Goal: with 500 console event streams open (``GET /api/events``), signed ``POST /twilio/voice``
webhooks (a new CallSid each) keep p99 <= 50 ms. The gateway runs as deployed (gunicorn with
gunicorn.conf.py, two gthread workers of 32 threads, Postgres, the loopback doubles); the streams
and the webhooks come from this process (one asyncio loop). Each stream behaves as a browser's
EventSource: it reads events, and when the server ends the stream it comes back after the
``retry:`` the server asked for, with ``Last-Event-ID``. The webhooks are measured twice: with no
console open (the baseline), then with all the streams open.

Options: ``--streams 500 --agents 250 --rate 20 --seconds 30``; the database is ``BENCH_PG_DB``
(default ``bench``) on ``BENCH_PG_ADMIN_URL``. Results: bench/STREAMS.md and bench/.runs/streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import aiohttp
from twilio.request_validator import RequestValidator

from bench import harness as H
from gateway.sandbox import runtime as sandbox

HERE = Path(__file__).resolve().parent
GOAL_P99_MS = 50.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Console:
    """One EventSource: reconnects after the server's retry, with Last-Event-ID."""

    def __init__(self, url: str, credential: str, counts: Counter):
        self.url, self.credential, self.counts = url, credential, counts
        self.last_id: str | None = None
        self.retry_ms = 2000
        self.open = False

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            headers = {"Authorization": f"Bearer {self.credential}"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                async with http.get(self.url + "/api/events", headers=headers) as reply:
                    self.counts[f"status {reply.status}"] += 1
                    if reply.status != 200:
                        await asyncio.sleep(float(reply.headers.get("Retry-After", "5")))
                        continue
                    self.open = True
                    async for raw in reply.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("retry:"):
                            self.retry_ms = int(line[6:].strip())
                        elif line.startswith("id:"):
                            self.last_id = line[3:].strip()
                        elif line.startswith("event:"):
                            self.counts[line[6:].strip()] += 1
                        if stop.is_set():
                            break
            except (TimeoutError, aiohttp.ClientError):
                self.counts["stream errors"] += 1
            finally:
                self.open = False
            if not stop.is_set():
                await asyncio.sleep(self.retry_ms / 1000)


async def voice_load(http, url: str, rate: float, seconds: float, prefix: str) -> tuple[list[float], Counter]:
    validator = RequestValidator(sandbox.AUTH_TOKEN)
    latencies: list[float] = []
    statuses: Counter = Counter()
    tasks = []

    async def one(i: int) -> None:
        form = {"CallSid": f"CA{prefix}{i:030d}"[:34], "From": f"+1555{i % 10_000_000:07d}", "To": sandbox.PHONE_NUMBER}
        signature = validator.compute_signature(url + "/twilio/voice", form)
        started = time.perf_counter()
        try:
            async with http.post(url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}) as r:
                await r.read()
                statuses[r.status] += 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            statuses[type(exc).__name__] += 1
            return
        latencies.append(time.perf_counter() - started)

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies, statuses


async def scenario(url: str, credentials: list[str], streams: int, rate: float, seconds: float) -> dict:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        hooks = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20), connector=aiohttp.TCPConnector(limit=0))
        async with hooks:
            base_lat, base_status = await voice_load(hooks, url, rate, seconds / 2, "b")
            counts: Counter = Counter()
            stop = asyncio.Event()
            consoles = [Console(url, credentials[i % len(credentials)], counts) for i in range(streams)]
            runners = [asyncio.create_task(c.run(http, stop)) for c in consoles]
            await asyncio.sleep(8)  # every console connected (and the brief ones polling)
            held = sum(c.open for c in consoles)
            lat, status = await voice_load(hooks, url, rate, seconds, "s")
            held_end = sum(c.open for c in consoles)
            stop.set()
            for r in runners:
                r.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
    return {
        "baseline": {"latencies": base_lat, "statuses": dict(base_status)},
        "with_streams": {"latencies": lat, "statuses": dict(status)},
        "streams_open_at_start": held,
        "streams_open_at_end": held_end,
        "stream_events": dict(counts),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--agents", type=int, default=250)
    parser.add_argument("--rate", type=float, default=20.0, help="voice webhooks per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    database = H.fresh_database()
    world = H.World()
    port = H.free_port()
    env = world.env(port, database, dict(item.split("=", 1) for item in args.env))
    server = H.Gunicorn("gateway:create_app()", env, "streams").start()
    try:
        from gateway.adapters.store import Store
        from gateway.config import normalise_database_url
        from gateway.services.agents import AgentService

        store = Store(normalise_database_url(database))
        agents = AgentService(store)
        # Offline agents: every call takes the no-agent path, so what varies is only the streams.
        credentials = [agents.add(f"agent{i:03d}", f"Agent {i}", None, True, "offline") for i in range(args.agents)]
        store.engine.dispose()
        offset = server.log_offset()
        result = asyncio.run(scenario(server.url, credentials, args.streams, args.rate, args.seconds))
        server_side = [s for m, p, code, s in server.access(offset) if p == "/twilio/voice"]
    finally:
        server.stop()
        world.stop()

    base = result["baseline"]["latencies"]
    loaded = result["with_streams"]["latencies"]
    p99 = pct(loaded, 99) * 1000
    passed = p99 <= GOAL_P99_MS and set(result["with_streams"]["statuses"]) == {200}
    summary = {
        "goal": f"with {args.streams} console streams open, signed voice webhooks p99 <= {GOAL_P99_MS:g} ms",
        "passed": passed,
        "streams": args.streams,
        "agents": args.agents,
        "rate": args.rate,
        "baseline_ms": {"p50": pct(base, 50) * 1000, "p99": pct(base, 99) * 1000, "n": len(base)},
        "with_streams_ms": {
            "p50": pct(loaded, 50) * 1000,
            "p99": p99,
            "max": max(loaded, default=0) * 1000,
            "n": len(loaded),
        },
        "server_side_ms_all_voice": {"p50": pct(server_side, 50) * 1000, "p99": pct(server_side, 99) * 1000},
        "statuses": result["with_streams"]["statuses"],
        "streams_held_at_start": result["streams_open_at_start"],
        "streams_held_at_end": result["streams_open_at_end"],
        "stream_events": result["stream_events"],
        "extra_env": args.env,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    H.RUNS.mkdir(parents=True, exist_ok=True)
    (H.RUNS / "streams.json").write_text(json.dumps(summary, indent=1))
    b, w = summary["baseline_ms"], summary["with_streams_ms"]
    text = (
        "# Console streams vs the call path (`python -m bench.streams`)\n\n"
        f"Goal: {summary['goal']}. Gateway as deployed (gunicorn.conf.py: 2 gthread workers x 32 threads, "
        f"8 per worker reserved for webhooks), Postgres, loopback doubles; {args.streams} EventSource-like "
        f"streams from {args.agents} agents; voice webhooks at {args.rate:g}/s (new CallSid each, no agent "
        "available), measured from the client.\n\n"
        "| | p50 | p99 | n |\n|---|---|---|---|\n"
        f"| no console open | {b['p50']:.1f} ms | {b['p99']:.1f} ms | {b['n']} |\n"
        f"| {args.streams} streams open | {w['p50']:.1f} ms | {w['p99']:.1f} ms (max {w['max']:.1f}) | {w['n']} |\n\n"
        f"Result: **{'PASS' if passed else 'FAIL'}**. Webhook statuses {summary['statuses']}; streams holding a "
        f"thread when the load began {summary['streams_held_at_start']} (the rest served brief streams); "
        f"stream events {summary['stream_events']}.\n"
    )
    (HERE / "STREAMS.md").write_text(text)
    print(text)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
