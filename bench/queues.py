"""Queue benchmark: ``python -m bench.queues`` (about 2 minutes; ``--smoke`` for a short run).

100 agents, a backlog that keeps about 200 callers waiting, calls handled for ~20 s, ~5 new calls a
second. Gunicorn as deployed, PostgreSQL, the loopback doubles (a simulated caller per call: the
queue's hold loop, the REST redirect into the room, the SIP bridge). Agents use the REST API the
console uses (accept, join LiveKit with the token, then leave the room when done: the leave frees
the agent, and the same request offers them the oldest waiting caller).

Measured: the time from an agent becoming free to the next caller's offer (the leave request's
duration in gunicorn's access log: the offer is committed before it answers; the in-transaction
part from the timeline), webhook latency while ~200 wait, callers lost (voicemail or dropped while
agents are staffed), callers offered out of order. The figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench import harness as H
from gateway.sandbox import runtime as sandbox

HERE = Path(__file__).resolve().parent
MARK = ("<!-- queues -->", "<!-- /queues -->")
SKIP_S = 1.0  # a younger caller offered this much before an older one in line is a skip


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


class Agent:
    def __init__(self, bench, agent_id, credential, handle_s):
        self.bench, self.id, self.handle_s = bench, agent_id, handle_s
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {credential}"
        self.offers: list[str] = []
        self.seen: set[str] = set()  # a leg still ringing is seen again by the next poll
        self.cv = threading.Condition()

    def offer(self, call_id):
        with self.cv:
            if call_id not in self.seen:
                self.seen.add(call_id)
                self.offers.append(call_id)
                self.cv.notify()

    def run(self):
        b = self.bench
        while not b.stop.is_set():
            with self.cv:
                while not self.offers and not b.stop.is_set():
                    self.cv.wait(0.5)
                if b.stop.is_set():
                    return
                call_id = self.offers.pop(0)
            try:
                reply = self.http.post(f"{b.url}/api/calls/{call_id}/accept", timeout=20)
                if reply.status_code != 200:
                    b.count("accept refused")
                    continue
                token, room = reply.json()["token"], reply.json()["room"]
                joined = requests.post(b.livekit + "/_sim/rtc/join", json={"token": token}, timeout=20)
                if joined.status_code != 200:
                    b.count("join failed")
                    continue
                b.stop.wait(self.handle_s * random.uniform(0.8, 1.2))
                started = time.monotonic()
                left = self.http.post(f"{b.url}/api/rooms/{room}/leave", timeout=20)
                b.leaves.append((time.monotonic() - started, left.status_code))
                requests.post(b.livekit + "/_sim/rtc/leave", json={"room": room, "identity": self.id}, timeout=20)
            except requests.RequestException as exc:
                b.count(f"agent {type(exc).__name__}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.stop = threading.Event()
        self.leaves: list[tuple[float, int]] = []
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()

    def count(self, what):
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def dispatcher(self, agents):
        """Hands each new ringing leg to its agent (one query for all, instead of 100 pollers)."""
        while not self.stop.is_set():
            for agent_id, call_id in H.sql("SELECT agent_id, call_id FROM legs WHERE state = 'ringing'"):
                if agent_id in agents:
                    agents[agent_id].offer(call_id)
            time.sleep(0.05)

    def arrivals(self, world, n, rate):
        for _ in range(n):
            if self.stop.is_set():
                return
            world.twilio.place_inbound_call(from_=f"+1558{self.seq:07d}", to=sandbox.PHONE_NUMBER)
            self.seq += 1
            time.sleep(1.0 / rate)

    def run(self):
        a = self.args
        H.scale_mode(True)  # hold music lasts 30 s a play, as a real clip does; SIP polled every 0.5 s
        world = H.World()
        url = H.fresh_database()
        port = H.free_port()
        env = world.env(port, url, {"RING_TIMEOUT_S": "30", "QUEUE_TIMEOUT_S": "3600"})
        world.connect(env)
        gw = H.Gunicorn("gateway:create_app()", env, "queues").start()
        self.url, self.livekit, self.seq = gw.url, world.livekit.url, 0
        admin = {"Authorization": f"Bearer {H.ADMIN_TOKEN}"}
        agents = {}
        for i in range(a.agents):
            reply = requests.post(
                gw.url + "/api/admin/agents",
                json={"id": f"q{i:03d}", "name": f"Agent {i}", "status": "available"},
                headers=admin,
                timeout=20,
            )
            reply.raise_for_status()
            agents[f"q{i:03d}"] = Agent(self, f"q{i:03d}", reply.json()["credential"], a.handle_s)
        threads = [threading.Thread(target=ag.run, daemon=True) for ag in agents.values()]
        threads.append(threading.Thread(target=self.dispatcher, args=(agents,), daemon=True))
        [t.start() for t in threads]
        print(f"backlog: {a.agents + a.waiting} calls at {a.backlog_rate}/s", flush=True)
        self.arrivals(world, a.agents + a.waiting, a.backlog_rate)
        waiting = H.sql("SELECT count(*) FROM queue_entries WHERE state IN ('waiting', 'offered')")[0][0]
        print(f"{waiting} waiting; steady arrivals at {a.rate}/s for {a.seconds} s", flush=True)
        log_from = gw.log_offset()
        self.leaves.clear()
        started = datetime.now(UTC).replace(tzinfo=None)
        sampler = []

        def sample():
            while not self.stop.is_set():
                sampler.append(H.sql("SELECT count(*) FROM queue_entries WHERE state IN ('waiting','offered')")[0][0])
                time.sleep(1)

        threading.Thread(target=sample, daemon=True).start()
        self.arrivals(world, int(a.rate * a.seconds), a.rate)
        log_to = gw.log_offset()
        ended = datetime.now(UTC).replace(tzinfo=None)
        self.stop.set()
        access = gw.access(log_from, log_to)
        results = self.figures(access, started, ended, sampler, gw)
        world.hang_up_all()
        gw.stop()
        world.stop()
        H.scale_mode(False)
        return results

    def figures(self, access, started, ended, sampler, gw):
        leave_server = [s for m, path, status, s in access if re.match(r"^/api/rooms/[^/]+/leave$", path)]
        hooks = [s for m, path, status, s in access if path.startswith(("/twilio/", "/livekit/"))]
        queue_loop = [s for m, path, status, s in access if path == "/twilio/queue"]
        fives = [(path, status) for m, path, status, s in access if status >= 500]
        # In the transaction: the agent's leg ended (freed) -> the next caller offered to that agent.
        in_tx = H.sql(
            """
            SELECT EXTRACT(EPOCH FROM (o.at - l.at)) FROM timeline o
            JOIN LATERAL (
                SELECT at FROM timeline l WHERE l.agent_id = o.agent_id AND l.kind = 'leg_left'
                AND l.at <= o.at ORDER BY l.at DESC LIMIT 1) l ON true
            WHERE o.kind = 'queue_offered' AND o.at BETWEEN %s AND %s
            """,
            (started, ended),
        )
        in_tx = [float(r[0]) for r in in_tx if r[0] is not None and float(r[0]) < 1.0]
        order = H.sql("SELECT enqueued_at, offered_at FROM queue_entries WHERE offers > 0 ORDER BY enqueued_at, id")
        out_of_order = sum(1 for (_, a), (_, b) in zip(order, order[1:], strict=False) if b < a)
        # Skips: a younger caller of the same priority offered before an older one that was already
        # in line (its 'queued' entry committed) — what "answered out of order" means for a caller.
        # With no team lock, agents freeing in the same moment claim the first callers each under
        # its own row lock, so their offers' clocks may run in either order by a few ms: the gap is
        # reported, and only a skip longer than SKIP_S counts against the goal.
        gaps = [
            float(r[0])
            for r in H.sql(
                """
                WITH e AS (
                    SELECT q.enqueued_at, q.offered_at, q.priority,
                           (SELECT max(t.at) FROM timeline t WHERE t.call_id = q.call_id AND t.kind = 'queued') AS inline
                    FROM queue_entries q WHERE q.offers > 0)
                SELECT EXTRACT(EPOCH FROM (a.offered_at - b.offered_at)) FROM e a JOIN e b
                  ON a.priority = b.priority AND a.enqueued_at < b.enqueued_at
                 AND b.offered_at < a.offered_at AND a.inline < b.offered_at
                """
            )
        ]
        skipped = sum(1 for gap in gaps if gap > SKIP_S)
        lost = H.sql(
            "SELECT count(*) FROM calls WHERE state IN ('voicemail') OR (state = 'ended' AND connected_at IS NULL)"
        )[0][0]
        states = dict(H.sql("SELECT state, count(*) FROM queue_entries GROUP BY state"))
        steady = sampler[len(sampler) // 4 :] or sampler
        return {
            "leave_n": len(leave_server),
            "free_to_offer_p50_ms": pct(leave_server, 50) * 1000,
            "free_to_offer_p99_ms": pct(leave_server, 99) * 1000,
            "client_p99_ms": pct([s for s, _ in self.leaves], 99) * 1000,
            "in_tx_p50_ms": pct(in_tx, 50) * 1000,
            "in_tx_p99_ms": pct(in_tx, 99) * 1000,
            "webhooks": len(hooks),
            "webhook_p50_ms": pct(hooks, 50) * 1000,
            "webhook_p99_ms": pct(hooks, 99) * 1000,
            "queue_loop_p99_ms": pct(queue_loop, 99) * 1000,
            "waiting_min": min(steady) if steady else 0,
            "waiting_max": max(steady) if steady else 0,
            "waiting_mean": sum(steady) / len(steady) if steady else 0,
            "out_of_order": out_of_order,
            "concurrent_pairs": len(gaps),
            "largest_gap_ms": max(gaps, default=0.0) * 1000,
            "skipped": skipped,
            "offered": len(order),
            "lost": lost,
            "states": states,
            "errors": dict(self.errors),
            "server_5xx": len(fives),
            "problems": gw.problems()[:5],
        }


def report(r: dict, args) -> str:
    goal_offer = r["free_to_offer_p99_ms"] <= 100
    goal_hook = r["webhook_p99_ms"] <= 50
    clean = r["lost"] == 0 and r["skipped"] == 0
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    lines = [
        MARK[0],
        "## Queues (issue 14): agent free -> next caller offered",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.queues` on this 2-core machine (shared: other "
        "work ran alongside). Gunicorn as deployed (WEB_CONCURRENCY=2), PostgreSQL, the loopback doubles with a "
        "simulated caller per call.",
        "",
        f"Load: {args.agents} agents, a backlog of {args.waiting} callers, then {args.rate} new calls/s for "
        f"{args.seconds} s; each call handled {args.handle_s:g} s ±20%. Callers waiting during the steady window: "
        f"{r['waiting_min']}-{r['waiting_max']} (mean {r['waiting_mean']:.0f}).",
        "",
        "| Measure | Goal | Measured | Result |",
        "|---|---|---|---|",
        f"| Agent free -> next offer (the leave request that frees the agent and commits the next offer; "
        f"gunicorn's request time, n={r['leave_n']}) | p99 <= 100 ms | p50 {r['free_to_offer_p50_ms']:.1f} ms, "
        f"p99 {r['free_to_offer_p99_ms']:.1f} ms (inside the transaction: p50 {r['in_tx_p50_ms']:.1f} ms, "
        f"p99 {r['in_tx_p99_ms']:.1f} ms) | **{verdict(goal_offer)}** |",
        f"| Webhooks while callers wait (all /twilio and /livekit, n={r['webhooks']}) | p99 <= 50 ms | "
        f"p50 {r['webhook_p50_ms']:.1f} ms, p99 {r['webhook_p99_ms']:.1f} ms (the queue loop alone p99 "
        f"{r['queue_loop_p99_ms']:.1f} ms) | **{verdict(goal_hook)}** |",
        f"| No caller lost or answered out of order | 0 and 0 | {r['lost']} lost, {r['skipped']} skipped (a younger "
        f"caller offered more than {SKIP_S * 1000:.0f} ms before an older one already in line) of {r['offered']} "
        f"offered | **{verdict(clean)}** |",
        "",
        f"- order: {r['concurrent_pairs']} pairs offered within {r['largest_gap_ms']:.0f} ms of each other in the "
        f"other order (concurrent claims; by call time alone, {r['out_of_order']} adjacent pairs, which also counts "
        "callers whose arrival had not committed yet)",
        f"- queue entries by state at the end: {r['states']}; agent-side errors: {r['errors'] or 'none'}; "
        f"server 5xx: {r['server_5xx']}",
        "- method: the client-side time of the leave request (p99 "
        f"{r['client_p99_ms']:.1f} ms) adds the bench's own HTTP client on the same 2 cores; the in-transaction "
        "figure is from the leg's end to the offer's timeline entry of the same unit of work.",
        MARK[1],
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.queues", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a short run (10 agents, 20 waiting, 10 s)")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    args.agents, args.waiting, args.rate, args.seconds, args.handle_s, args.backlog_rate = (
        (10, 20, 1.0, 10.0, 3.0, 10.0) if args.smoke else (100, 200, 5.0, 60.0, 20.0, 20.0)
    )
    results = Bench(args).run()
    text = report(results, args)
    print(text)
    out = Path(args.out)
    if not args.smoke:
        body = out.read_text() if out.exists() else ""
        if MARK[0] in body:
            body = re.sub(re.escape(MARK[0]) + ".*?" + re.escape(MARK[1]), lambda _: text, body, flags=re.S)
        else:
            body = body.rstrip() + "\n\n" + text + "\n"
        out.write_text(body)
    print(results)


if __name__ == "__main__":
    main()
