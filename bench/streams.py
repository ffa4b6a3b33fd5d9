"""``python -m bench consoles`` (or ``python -m bench.streams``): open consoles against the call path.

Goal (issue 15, consoles at scale): with 500 consoles and 5 supervisor boards open, signed voice
webhooks keep p99 <= 50 ms and every console gets its events within 1 s, each gunicorn worker
keeping one store poller.

The gateway runs as deployed (gunicorn with gunicorn.conf.py: two gthread workers of 32 threads,
Postgres, the loopback doubles). The consoles run in a separate process (one asyncio loop): each
behaves as a browser's EventSource on ``GET /api/events`` (it reads events, and when the server ends
the stream it comes back after the ``retry:`` the server asked for, with ``Last-Event-ID``). The
boards are five supervisors' board streams (``/api/supervisor/events``). This process sends the webhooks and the changes:

- signed ``POST /twilio/voice`` at ``--rate`` per second, a new CallSid each, every agent offline
  (the no-agent path), measured from this process; first with no console open (the baseline), then
  with every console open;
- meanwhile, once a second, one agent ("pulse") changes its status through the API: every console
  must show it (a presence event). Delivery latency = arrival at the console minus the moment the
  change was sent (same machine, wall clock), for every console and every change;
- memory: each worker's resident set with no stream open and with every stream open; and the
  workers' own count of open streams and store pollers (``/metrics``).

Options: ``--consoles 500 --boards 5 --agents 250 --rate 20 --seconds 40``; the database is
``BENCH_PG_DB`` (default ``bench``) on ``BENCH_PG_ADMIN_URL``. Keep runs under two minutes on a
shared machine. Results: the consoles section of bench/RESULTS.md (``--out`` to write elsewhere) and
bench/.runs/consoles.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import time
from collections import Counter
from pathlib import Path

import aiohttp
import requests
from twilio.request_validator import RequestValidator

from bench import harness as H
from gateway.sandbox import runtime as sandbox

HERE = Path(__file__).resolve().parent
GOAL_P99_MS = 50.0
GOAL_DELIVERY_S = 1.0
PULSE = "pulse"
PULSE_STATUS = '"id":"pulse","name":"Pulse","status":"'
SECTION_START, SECTION_END = "<!-- consoles -->", "<!-- /consoles -->"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------------ the consoles' process
class Console:
    """One EventSource: reconnects after the server's retry, with Last-Event-ID; notes when the
    pulse agent's status changes in its presence events."""

    def __init__(self, url: str, path: str, credential: str, counts: Counter):
        self.url, self.path, self.credential, self.counts = url, path, credential, counts
        self.last_id: str | None = None
        self.retry_ms = 2000
        self.ready = False
        self.pulse_status: str | None = None
        self.changes: list[tuple[str, float]] = []  # (pulse's new status, wall-clock arrival)

    def on_event(self, event: str, data: str) -> None:
        self.counts[event] += 1
        if event in ("ready", "board"):  # a console's first event, or a board's
            self.ready = True
        elif event == "presence":
            # A substring, not json.loads: this process must not take the CPU the gateway needs.
            at = data.find(PULSE_STATUS)
            status = data[at + len(PULSE_STATUS) : data.find('"', at + len(PULSE_STATUS))] if at >= 0 else None
            if status != self.pulse_status:
                if self.pulse_status is not None:
                    self.changes.append((status, time.time()))
                self.pulse_status = status

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        while not stop.is_set():
            headers = {"Authorization": f"Bearer {self.credential}", "Accept": "text/event-stream"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            event, data = "message", ""
            try:
                async with http.get(self.url + self.path, headers=headers) as reply:
                    self.counts[f"status {reply.status}"] += 1
                    if reply.status != 200:
                        await asyncio.sleep(float(reply.headers.get("Retry-After", "5")))
                        continue
                    async for raw in reply.content:
                        line = raw.decode().rstrip("\r\n")
                        if not line:
                            if data:
                                self.on_event(event, data)
                            event, data = "message", ""
                        elif line.startswith("retry:"):
                            self.retry_ms = int(line[6:].strip())
                        elif line.startswith("id:"):
                            self.last_id = line[3:].strip()
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].strip()
                        if stop.is_set():
                            break
            except (TimeoutError, aiohttp.ClientError):
                self.counts["stream errors"] += 1
            if not stop.is_set():
                await asyncio.sleep(self.retry_ms / 1000)


async def _consoles(url: str, streams: list[tuple[str, str]], conn) -> None:
    counts: Counter = Counter()
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=20, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        consoles = [Console(url, path, credential, counts) for path, credential in streams]
        runners = [asyncio.create_task(c.run(http, stop)) for c in consoles]
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.25)
            ready = sum(c.ready for c in consoles)
            if await loop.run_in_executor(None, conn.poll, 0):
                break
            conn.send(("ready", ready))
        conn.recv()
        stop.set()
        for r in runners:
            r.cancel()
        await asyncio.gather(*runners, return_exceptions=True)
    conn.send(("done", {"counts": dict(counts), "changes": [c.changes for c in consoles]}))


def consoles_process(url: str, streams: list[tuple[str, str]], conn) -> None:
    asyncio.run(_consoles(url, streams, conn))


# ------------------------------------------------------------------ this process
async def voice_load(url: str, rate: float, seconds: float, prefix: str) -> tuple[list[float], Counter]:
    validator = RequestValidator(sandbox.AUTH_TOKEN)
    latencies: list[float] = []
    statuses: Counter = Counter()
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as http:
        forms = []
        for i in range(int(rate * seconds)):
            form = {
                "CallSid": f"CA{prefix}{i:030d}"[:34],
                "From": f"+1555{i % 10_000_000:07d}",
                "To": sandbox.PHONE_NUMBER,
            }
            forms.append((form, validator.compute_signature(url + "/twilio/voice", form)))

        async def one(form: dict, signature: str) -> None:
            started = time.perf_counter()
            try:
                async with http.post(url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}) as r:
                    await r.read()
                    statuses[r.status] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                statuses[type(exc).__name__] += 1
                return
            latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        for i, (form, signature) in enumerate(forms):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(form, signature)))
        await asyncio.gather(*tasks)
    return latencies, statuses


async def pulses(url: str, credential: str, seconds: float) -> list[tuple[str, float]]:
    """The pulse agent changes its status once a second; (new status, wall-clock time sent)."""
    sent = []
    headers = {"Authorization": f"Bearer {credential}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            status = "busy" if n % 2 else "offline"
            at = time.time()
            async with http.post(url + "/api/agents/me/status", json={"status": status}, headers=headers) as r:
                if r.status == 200:
                    sent.append((status, at))
            await asyncio.sleep(1.0)
    return sent


def delivery_latencies(sent: list[tuple[str, float]], received: list[list[tuple[str, float]]]) -> tuple[list, int]:
    """For every change a console saw: its arrival minus the send of the latest change to that status
    sent before it arrived (a console shows the state now, so two changes read in one tick arrive as
    one). Returns the latencies and how many changes the consoles never saw as such (merged)."""
    latencies, merged = [], 0
    for changes in received:
        for status, arrived in changes:
            sends = [at for s, at in sent if s == status and at <= arrived]
            if sends:
                latencies.append(arrived - sends[-1])
        merged += max(0, len(sent) - len(changes))
    return latencies, merged


def workers_view(url: str) -> dict:
    """The workers' open streams and pollers from /metrics (each scrape reaches one worker)."""
    seen: dict[str, dict] = {}
    for _ in range(12):
        try:
            text = requests.get(url + "/metrics", timeout=5).text
        except requests.RequestException:
            continue
        figures = dict(
            re.findall(
                r"^(gateway_console_stream(?:s|_pollers|_tick_seconds_(?:sum|count)|_cpu_seconds_total)[^ ]*) ([0-9.e+-]+)$",
                text,
                re.M,
            )
        )
        # One entry per worker (told apart by its open streams; the tick and CPU counters move between scrapes).
        steady = {k: v for k, v in figures.items() if "tick" not in k and "cpu" not in k}
        seen[json.dumps(steady, sort_keys=True)] = figures
    return {"scrapes": list(seen.values())}


def cpu_seconds(pids) -> dict[int, float]:
    """Each process's CPU time so far (user + system), from /proc."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench consoles", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consoles", "--streams", type=int, default=500, dest="consoles")
    parser.add_argument("--boards", type=int, default=5)
    parser.add_argument("--board-path", default="/api/supervisor/events", help="the supervisor board's stream")
    parser.add_argument("--agents", type=int, default=250)
    parser.add_argument("--rate", type=float, default=20.0, help="voice webhooks per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="the measurement with every console open")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[consoles {time.monotonic() - started:6.1f}s] {message}", flush=True)

    database = H.fresh_database()
    world = H.World()
    port = H.free_port()
    env = world.env(port, database, dict(item.split("=", 1) for item in args.env))
    server = H.Gunicorn("gateway:create_app()", env, "consoles").start()
    child = None
    try:
        from gateway.adapters.store import Store
        from gateway.config import normalise_database_url
        from gateway.services.agents import AgentService

        store = Store(normalise_database_url(database))
        agents = AgentService(store)
        # Offline agents: every call takes the no-agent path, so what varies is only the streams.
        credentials = [agents.add(f"agent{i:03d}", f"Agent {i}", None, True, "offline") for i in range(args.agents)]
        pulse = agents.add(PULSE, "Pulse", None, True, "offline")
        boards = [
            agents.add(f"board{i}", f"Board {i}", None, True, "offline", role="supervisor") for i in range(args.boards)
        ]
        store.engine.dispose()
        log(f"gateway up; {args.agents} agents; baseline: voice webhooks at {args.rate:g}/s, no console open")
        rss_idle = server.rss_mb()
        base_lat, base_status = asyncio.run(voice_load(server.url, args.rate, 10, "b"))

        streams = [("/api/events", credentials[i % len(credentials)]) for i in range(args.consoles)]
        streams += [(args.board_path, b) for b in boards]
        ctx = mp.get_context("spawn")
        here, there = ctx.Pipe()
        child = ctx.Process(target=consoles_process, args=(server.url, streams, there), daemon=True)
        child.start()
        deadline = time.monotonic() + 75
        ready = 0
        while ready < len(streams) and time.monotonic() < deadline:
            if here.poll(1):
                _kind, ready = here.recv()
        log(f"{ready} of {len(streams)} streams open; load with every console open for {args.seconds:g} s")
        time.sleep(2)  # presence settles in every console
        rss_open = server.rss_mb()
        view_open = workers_view(server.url)

        async def loaded():
            return await asyncio.gather(
                voice_load(server.url, args.rate, args.seconds, "s"), pulses(server.url, pulse, args.seconds - 2)
            )

        cpu_before, load_began = cpu_seconds(server.workers()), time.monotonic()
        (lat, status), sent = asyncio.run(loaded())
        cpu_after, load_took = cpu_seconds(server.workers()), time.monotonic() - load_began
        view_end = workers_view(server.url)
        time.sleep(3)  # the last change reaches every console
        here.send("stop")
        result = None
        while result is None:
            kind, payload = here.recv()
            if kind == "done":
                result = payload
        child.join(timeout=20)
        log("done; stopping the gateway")
    finally:
        if child is not None and child.is_alive():
            child.terminate()
        server.stop()
        world.stop()

    delivered, missing = delivery_latencies(sent, result["changes"][: args.consoles])  # boards show no presence
    p99 = pct(lat, 99) * 1000
    d99 = pct(delivered, 99)
    passed = p99 <= GOAL_P99_MS and set(status) == {200} and d99 <= GOAL_DELIVERY_S
    summary = {
        "goal": f"{args.consoles} consoles + {args.boards} boards open: signed voice webhooks p99 <= "
        f"{GOAL_P99_MS:g} ms, every console's events within {GOAL_DELIVERY_S:g} s",
        "passed": passed,
        "consoles": args.consoles,
        "boards": args.boards,
        "board_path": args.board_path,
        "agents": args.agents,
        "rate": args.rate,
        "streams_ready": ready,
        "baseline_ms": {"p50": pct(base_lat, 50) * 1000, "p99": pct(base_lat, 99) * 1000, "n": len(base_lat)},
        "with_consoles_ms": {"p50": pct(lat, 50) * 1000, "p99": p99, "max": max(lat, default=0) * 1000, "n": len(lat)},
        "statuses": {str(k): v for k, v in status.items()},
        "baseline_statuses": {str(k): v for k, v in base_status.items()},
        "delivery_s": {
            "p50": pct(delivered, 50),
            "p99": d99,
            "max": max(delivered, default=float("nan")),
            "n": len(delivered),
            "missing": missing,
            "changes": len(sent),
        },
        "rss_mb_idle": rss_idle,
        "rss_mb_open": rss_open,
        # Each worker's CPU during the load (share of one core): webhooks, the notifier, the job runner.
        "worker_cpu": sorted((cpu_after[pid] - cpu_before[pid]) / load_took for pid in cpu_after if pid in cpu_before),
        "workers": view_open,
        "workers_end": view_end,
        "stream_events": result["counts"],
        "extra_env": args.env,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "cpus": mp.cpu_count(),
    }
    H.RUNS.mkdir(parents=True, exist_ok=True)
    (H.RUNS / "consoles.json").write_text(json.dumps(summary, indent=1))
    write_results(Path(args.out), summary)
    print(render(summary))
    return 0 if passed else 1


def render(s: dict) -> str:
    b, w, d = s["baseline_ms"], s["with_consoles_ms"], s["delivery_s"]
    idle = sorted(s["rss_mb_idle"].values())
    opened = sorted(s["rss_mb_open"].values())
    per_worker = ", ".join(f"{i:.0f} -> {o:.0f} MB" for i, o in zip(idle, opened, strict=False))

    def worker(f: dict) -> str:
        streams = sum(float(v) for k, v in f.items() if k.startswith("gateway_console_streams{"))
        pollers = float(f.get("gateway_console_stream_pollers", "nan"))
        ticks = float(f.get("gateway_console_stream_tick_seconds_count", "0"))
        mean = float(f.get("gateway_console_stream_tick_seconds_sum", "0")) / ticks * 1000 if ticks else float("nan")
        cpu = float(f.get("gateway_console_stream_cpu_seconds_total", "nan")) / ticks * 1000 if ticks else float("nan")
        return (
            f"{streams:g} streams, {pollers:g} poller, mean tick {mean:.0f} ms (CPU {cpu:.0f} ms) over {ticks:g} ticks"
        )

    def streams_of(f: dict) -> float:
        return sum(float(v) for k, v in f.items() if k.startswith("gateway_console_streams{"))

    def during_load(before: dict, after: dict) -> str:
        def moved(name: str) -> float:
            return float(after.get(name, "nan")) - float(before.get(name, "nan"))

        ticks = moved("gateway_console_stream_tick_seconds_count")
        wall = moved("gateway_console_stream_tick_seconds_sum") / ticks * 1000 if ticks else float("nan")
        cpu = moved("gateway_console_stream_cpu_seconds_total") / ticks * 1000 if ticks else float("nan")
        return f"{streams_of(after):g} streams: {ticks:g} ticks, mean {wall:.0f} ms, notifier CPU {cpu:.1f} ms a tick"

    scrapes = "; ".join(worker(f) for f in s["workers"]["scrapes"])
    scrapes_end = "; ".join(worker(f) for f in s.get("workers_end", {}).get("scrapes", []))
    # The same worker before and after the load: told apart by its open streams.
    loads = "; ".join(
        during_load(before, after)
        for after in s.get("workers_end", {}).get("scrapes", [])
        for before in s["workers"]["scrapes"]
        if streams_of(before) == streams_of(after)
    )
    return (
        f"{SECTION_START}\n## Consoles at scale (`python -m bench consoles`)\n\n"
        f"Goal: {s['goal']}. Gateway as deployed (gunicorn.conf.py: 2 gthread workers x 32 threads, stream "
        f"sockets handed to each worker's notifier), Postgres, loopback doubles, on this shared {s['cpus']}-core "
        f"machine (load average at the end {' '.join(s['loadavg'])}: other work was running). "
        f"{s['consoles']} consoles from {s['agents']} agents plus {s['boards']} boards ({s['board_path']}), "
        "opened from a separate process as EventSources; voice webhooks at "
        f"{s['rate']:g}/s (new CallSid each, no agent available) measured from the client; one agent's status "
        "changed once a second, delivery timed to every console.\n\n"
        "| | p50 | p99 | max | n |\n|---|---|---|---|---|\n"
        f"| voice webhook, no console open | {b['p50']:.1f} ms | {b['p99']:.1f} ms | | {b['n']} |\n"
        f"| voice webhook, {s['streams_ready']} streams open | {w['p50']:.1f} ms | **{w['p99']:.1f} ms** | "
        f"{w['max']:.1f} ms | {w['n']} |\n"
        f"| event delivery to each console | {d['p50'] * 1000:.0f} ms | **{d['p99'] * 1000:.0f} ms** | "
        f"{d['max'] * 1000:.0f} ms | {d['n']} ({d['changes']} changes x {s['consoles']} consoles; {d['missing']} "
        "merged: two changes read in one tick) |\n\n"
        f"Memory per worker (resident, no stream -> every stream open): {per_worker}. CPU per worker during "
        f"the load: {', '.join(f'{c:.0%}' for c in s.get('worker_cpu', []))} of a core. "
        f"Workers' own figures (/metrics, per worker scraped): all open {scrapes}; after the load {scrapes_end}. "
        f"During the load: {loads or 'n/a'}.\n\n"
        f"Result: **{'PASS' if s['passed'] else 'FAIL'}**. Webhook statuses {s['statuses']}; stream events "
        f"{s['stream_events']}.\n{SECTION_END}\n"
    )


def write_results(path: Path, summary: dict) -> None:
    section = render(summary)
    text = path.read_text() if path.exists() else ""
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        text = before + section + rest.split(SECTION_END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
