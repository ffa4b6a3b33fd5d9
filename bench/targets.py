"""The five targets. Each returns a dict: id, title, target, figure, passed, details, notes.

Every figure is a ratio or a distribution measured in the same run; see README.md for the method.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bench import driver, report
from bench import harness as H
from gateway.sandbox import runtime as sandbox
from gateway.sandbox import twiml_exec


# ------------------------------------------------------------------------------ helpers
def pct(values, p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return "n/a" if seconds != seconds else f"{seconds * 1000:.1f} ms"


def iso_epoch(value: str) -> float:
    return datetime.fromisoformat(value.rstrip("Z")).replace(tzinfo=UTC).timestamp()


@dataclass
class Profile:
    """How big each target runs: ``all`` (the real figures) or ``smoke`` (CI, under 30 s)."""

    name: str
    # 1 webhook
    directory: int = 600  # agents, all available at the start of every load step; a step uses at most half
    max_s: float = 5.0
    reps: int = 2
    half_s: float = 8.0
    half_reps: int = 3
    sweep: tuple = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    sweep_s: float = 6.0
    gw_levels: tuple = (2, 8, 32)  # closed-loop connections tried for the gateway's max (best goodput wins)
    bare_levels: tuple = (8, 32)
    directory_probe: bool = True
    probe_sizes: tuple = (600, 2000)
    probe_rate: float = 10.0
    probe_s: float = 8.0
    apology_path: bool = True
    scarce: int = 16
    warmup_s: float = 1.0
    bare_requests: int = 40000
    floor_requests: int = 15000  # per floor-app run (new CallSids each: the floor stores every call)
    # 2 overhead
    overhead_samples: int = 150
    overhead_gap_s: float = 0.25
    # 3 overlap
    overlap_reps: int = 3
    time_scale: float = 1.0
    llm_s: float = 2.0
    ring_s: float = 4.0  # simulated seconds (x time_scale)
    # 4 deadline
    deadline_samples: int = 5
    summary_deadline_s: float | None = None  # None: the gateway's default (3 s)
    # 5 scale
    calls: int = 1000
    rate: float = 20.0
    duration: float = 60.0
    connect_rate: float = 15.0
    drain_s: float = 2.0
    separate_instances: bool = True


def with_overrides(profile: Profile, overrides: list[str]) -> Profile:
    """``profile`` with FIELD=VALUE changes (``--set``), each value parsed as the field's type."""
    changes = {}
    for item in overrides:
        name, sep, text = item.partition("=")
        default = getattr(profile, name, None)
        if not sep or name not in Profile.__dataclass_fields__:
            raise SystemExit(
                f"--set {item}: expected FIELD=VALUE with FIELD one of {', '.join(Profile.__dataclass_fields__)}"
            )
        if isinstance(default, bool):
            changes[name] = text.lower() in ("1", "true", "yes")
        elif isinstance(default, tuple):
            changes[name] = tuple(float(x) for x in text.split(",") if x)
        elif default is None or isinstance(default, float):
            changes[name] = float(text)
        else:
            changes[name] = type(default)(text)
    return replace(profile, name=profile.name, **changes) if changes else profile


ALL = Profile("all")
SMOKE = Profile(
    "smoke",
    directory=100,
    max_s=1.0,
    reps=1,
    half_s=1.5,
    half_reps=1,
    sweep=(),
    gw_levels=(8,),
    bare_levels=(32,),
    directory_probe=False,
    apology_path=False,
    warmup_s=0.5,
    bare_requests=8000,
    floor_requests=3000,
    overhead_samples=6,
    overhead_gap_s=0.15,
    overlap_reps=1,
    time_scale=0.25,
    llm_s=0.5,
    deadline_samples=2,
    summary_deadline_s=1.0,
    calls=60,
    rate=5.0,
    duration=4.0,
    connect_rate=20.0,
    drain_s=1.0,
    separate_instances=False,
)


@dataclass
class Bench:
    """What the targets share: the doubles, the two load processes, the running gateway."""

    profile: Profile
    world: H.World
    drive: Callable  # drive(fn, *args) -> result, in the driver process
    load: Callable  # load(build, spec) -> result, in the load process
    log: Callable[[str], None]
    helper_pids: Callable[[], list[int]] = list  # pids of the driver and load processes
    extra_env: dict = field(default_factory=dict)  # --env KEY=VALUE: added to every gateway instance
    gateway: H.Gunicorn | None = None
    instances: list = field(default_factory=list)
    agents_seq: int = 0
    numbers_seq: int = 0
    setup_failures: int = 0

    # -- lifecycle -------------------------------------------------------------------
    def start_gateway(self, name: str, extra_env: dict | None = None) -> H.Gunicorn:
        if self.gateway is not None:
            self.world.hang_up_all()  # the previous target's calls end while their gateway still answers
            self.gateway.stop()  # before its tables are dropped
        extra_env = dict(extra_env or {}, **self.extra_env)
        if self.profile.summary_deadline_s is not None:
            extra_env["SUMMARY_DEADLINE_S"] = str(self.profile.summary_deadline_s)
        url = H.fresh_database()
        port = H.free_port()
        env = self.world.env(port, url, extra_env)
        self.world.connect(env)
        self.gateway = H.Gunicorn("gateway:create_app()", env, name).start()
        self.instances.append(self.gateway)
        self.drive(driver.configure, self.gateway.url, self.world.twilio.url, self.world.livekit.url, H.ADMIN_TOKEN)
        self.log(f"gateway {name} up at {self.gateway.url} (workers {self.gateway.workers()})")
        return self.gateway

    def new_agents(self, prefix: str, n: int, status: str = "available") -> list[str]:
        ids = [f"{prefix}{self.agents_seq + i:05d}" for i in range(n)]
        self.agents_seq += n
        got = self.drive(driver.add_agents, ids, status)
        if got["errors"]:
            raise RuntimeError(f"adding agents failed: {got['errors']}")
        return ids

    def new_numbers(self, n: int) -> list[str]:
        out = [f"+1557{self.numbers_seq + i:07d}" for i in range(n)]
        self.numbers_seq += n
        return out

    def connect(self, prefix: str, n: int, rate: float, batch: int = 200) -> list[dict]:
        """``n`` connected calls, each answered by its own new browser agent.

        Agents log on in batches of ``batch`` just before their calls come in (routing reads the whole
        directory per call, see the findings, so a full directory up front would only slow the set-up).
        A call the gateway failed to route (the technical apology: concurrent webhooks racing for the
        same agent) is replaced by another call; ``setup_failures`` counts them."""
        calls: list[dict] = []
        self.setup_failures = 0
        for first in range(0, n, batch):
            agents = self.new_agents(prefix, min(batch, n - first))
            # Only this batch may take calls (agents freed by earlier targets would get some and never answer).
            H.sql(
                "UPDATE agents SET status = 'offline', version = version + 1 "
                "WHERE status = 'available' AND NOT (id = ANY(%s))",
                (agents,),
            )
            got = self.drive(driver.connect_calls, agents, rate, self.numbers_seq)
            self.numbers_seq += got["numbers_used"]
            self.setup_failures += got["failed"]
            if got["error_count"] or len(got["calls"]) < len(agents):
                raise RuntimeError(f"only {len(got['calls'])}/{len(agents)} calls connected: {got['errors'][:3]}")
            calls += got["calls"]
            if n > batch:
                self.log(f"   {len(calls)}/{n} calls connected")
        wanted = {c["call_id"] for c in calls}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = H.sql("SELECT id FROM calls WHERE state = 'connected'")
            if wanted <= {r[0] for r in rows}:
                return calls
            time.sleep(0.2)
        raise RuntimeError("calls did not all reach 'connected'")

    def caller_sid(self, call_id: str) -> str | None:
        rows = H.sql("SELECT twilio_sid FROM calls WHERE id = %s", (call_id,))
        return rows[0][0] if rows else None

    def voice_build(self, port: int, count: int) -> dict:
        return dict(
            port=port,
            public_base_url=self.gateway.url,
            auth_token=sandbox.AUTH_TOKEN,
            account_sid=sandbox.ACCOUNT_SID,
            to=sandbox.PHONE_NUMBER,
            count=count,
        )


def _summary(results: list, elapsed: float) -> dict:
    kinds = Counter(k for _, _, k in results)
    good = [lat for _, lat, k in results if k in ("bridge", "apology")]
    return {
        "n": len(results),
        "elapsed": elapsed,
        "kinds": dict(kinds),
        "goodput": (kinds.get("bridge", 0) + kinds.get("apology", 0)) / elapsed if elapsed else 0.0,
        "throughput": len(results) / elapsed if elapsed else 0.0,
        "p50": pct([lat for _, lat, _ in results], 50),
        "p99": pct([lat for _, lat, _ in results], 99),
        "p50_ok": pct(good, 50),
        "p99_ok": pct(good, 99),
        "errors": sum(v for k, v in kinds.items() if k not in ("bridge", "apology")),
    }


# ------------------------------------------------------------------- 1. inbound webhook
def target_webhook(b: Bench) -> dict:
    p = b.profile
    gw = b.start_gateway("webhook", {"RING_TIMEOUT_S": "600", "QUEUE_TIMEOUT_S": "600"})
    bare_env = dict(gw.env, PORT=str(H.free_port()))
    bare = H.Gunicorn(
        "bench.bare_app:create_app()", {k: bare_env[k] for k in ("PORT", "WEB_CONCURRENCY")}, "bare"
    ).start()
    b.instances.append(bare)
    # The durable floor (bench/floor_app.py): signature check + one INSERT + TwiML, in the gateway's database and
    # checking signatures against the gateway's PUBLIC_BASE_URL, so it accepts the very requests signed for it.
    floor_env = dict(
        {k: gw.env[k] for k in ("DATABASE_URL", "PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN", "WEB_CONCURRENCY")},
        PORT=str(H.free_port()),
    )
    floor = H.Gunicorn("bench.floor_app:create_app()", floor_env, "floor").start()
    b.instances.append(floor)
    details: dict = {"directory": p.directory, "gw_levels": p.gw_levels, "bare_levels": p.bare_levels}
    notes = []
    try:

        def drain(limit: float = 90.0) -> float:
            """Wait for the work the webhooks deferred (jobs due, LiveKit webhooks queued); its duration."""
            t = time.monotonic()
            while time.monotonic() - t < limit:
                due = H.sql(
                    "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running') "
                    "AND run_at <= (now() AT TIME ZONE 'UTC')"
                )[0][0]
                if not due and b.world.livekit.wait_webhooks_idle(0.05):
                    break
                time.sleep(0.1)
            return time.monotonic() - t

        def closed(port: int, count: int, seconds: float, concurrency: int = 32) -> dict:
            build = dict(b.voice_build(port, count), reuse=port == bare.port)  # the floor and gateway store each call
            server = {bare.port: bare, floor.port: floor}.get(port, gw)
            meter = H.CpuMeter(server.workers(), b.helper_pids())
            r = b.load(build, {"mode": "closed", "port": port, "concurrency": concurrency, "duration": seconds})
            out = dict(_summary(r["results"], r["elapsed"]), concurrency=concurrency)
            if server is gw:
                # The webhook answers before its jobs (create_room) ran: count the calls per second only once
                # everything they started has finished, so the rate is one the gateway can keep up.
                out["drain_s"] = drain()
                out["sustained"] = out["goodput"] * out["elapsed"] / (out["elapsed"] + out["drain_s"])
            out["cpu"] = meter.stop()
            return out

        def best(runs: list[dict], key: str) -> tuple[float, int]:
            """The best median (over repetitions) across concurrency levels, and that level."""
            levels = sorted({r["concurrency"] for r in runs})
            medians = {c: statistics.median(r[key] for r in runs if r["concurrency"] == c) for c in levels}
            c = max(medians, key=medians.get)
            return medians[c], c

        def open_(rate: float, count: int) -> dict:
            r = b.load(b.voice_build(gw.port, count), {"mode": "open", "port": gw.port, "rate": rate})
            return dict(_summary(r["results"], r["elapsed"]), drain_s=drain())

        def reset_agents(status: str = "available") -> None:
            H.sql("UPDATE agents SET status = %s, version = version + 1", (status,))

        b.new_agents("w", p.directory, "available")
        # Warm-up (both servers, both paths).
        reset_agents()
        closed(bare.port, p.bare_requests, p.warmup_s)
        closed(floor.port, p.floor_requests, p.warmup_s)
        closed(gw.port, p.directory // 2, p.warmup_s, 8)

        # At most half the directory per step: the gateway locks several candidate agents per routed call,
        # so with few agents left free, concurrent calls would find none (see the findings).
        cap = p.directory // 2
        bare_runs, floor_runs, gw_runs = [], [], []
        for _ in range(p.reps):  # alternated, so all three see the same machine
            for c in p.bare_levels:
                bare_runs.append(closed(bare.port, p.bare_requests, p.max_s, c))
            for c in p.bare_levels:  # the floor defers no work: its answers per second are its rate
                floor_runs.append(closed(floor.port, p.floor_requests, p.max_s, c))
            for c in p.gw_levels:
                reset_agents()
                gw_runs.append(closed(gw.port, cap, p.max_s, c))
        details["floor_problems"] = floor.problems()[:5]
        floor.stop(wait=False)  # done with it: its PostgreSQL connections go back before the rest of the target
        bare_max, bare_c = best(bare_runs, "throughput")
        floor_max, floor_c = best(floor_runs, "goodput")  # = throughput when every answer is the bridge
        gw_max, gw_c = best(gw_runs, "sustained")
        gw_burst, _ = best(gw_runs, "goodput")
        floor_ratio = floor_max / bare_max if bare_max else 0.0
        gw_vs_floor = gw_max / floor_max if floor_max else 0.0
        details.update(
            bare_runs=bare_runs,
            gw_runs=gw_runs,
            bare_max=bare_max,
            gw_max=gw_max,
            bare_c=bare_c,
            gw_c=gw_c,
            gw_burst=gw_burst,
            floor_runs=floor_runs,
            floor_max=floor_max,
            floor_c=floor_c,
            floor_ratio=floor_ratio,
            gw_vs_floor=gw_vs_floor,
            floor_errors=sum(r["errors"] for r in floor_runs),
        )
        b.log(
            f"1: bare {bare_max:.0f}/s (c={bare_c}), durable floor {floor_max:.0f}/s (c={floor_c}, {floor_ratio:.1%} of bare)"
            + "".join(f" [floor c={r['concurrency']}: {r['kinds']}]" for r in floor_runs if r["errors"])
            + f", gateway {gw_max:.0f}/s sustained (c={gw_c}, {gw_vs_floor:.1%} of the floor); "
            + "; ".join(
                f"c={r['concurrency']}: {r['goodput']:.0f}/s answered, {r['sustained']:.0f}/s sustained "
                f"(+{r['drain_s']:.1f} s to drain) {r['kinds']}"
                for r in gw_runs
            )
        )

        half_rate = gw_max / 2
        halves = []
        for _ in range(p.half_reps):
            reset_agents()
            halves.append(open_(half_rate, max(20, min(cap, int(half_rate * p.half_s)))))
        half = sorted(halves, key=lambda r: r["p99"])[len(halves) // 2]  # the median repetition (by p99)
        details.update(half_rate=half_rate, half=half, halves=halves)
        b.log(f"1: at {half_rate:.0f}/s p50 {ms(half['p50'])} p99 {ms(half['p99'])} {half['kinds']}")

        sweep = []
        for frac in p.sweep:
            rate = max(1.0, gw_max * frac)
            reset_agents()
            s = open_(rate, max(40, min(cap, int(rate * p.sweep_s))))
            s["offered"] = rate
            sweep.append(s)
            b.log(f"1: sweep {rate:.0f}/s -> p50 {ms(s['p50'])} p99 {ms(s['p99'])} errors {s['errors']}")
        details["sweep"] = sweep

        # The other path: no agent free, every call gets the apology (same directory, all busy).
        apology_max, apology_half = float("nan"), None
        if p.apology_path:
            reset_agents("busy")
            apology_runs = [closed(gw.port, 20000, p.max_s, c) for _ in range(p.reps) for c in p.gw_levels]
            apology_max, apology_c = best(apology_runs, "sustained")
            apology_half = open_(apology_max / 2, max(20, int(apology_max / 2 * p.half_s)))
            details.update(apology_runs=apology_runs, apology_max=apology_max, apology_half=apology_half)
        # Scarce agents: as many free agents as simultaneous calls; every call should get one.
        reset_agents("busy")
        free = [r[0] for r in H.sql("SELECT id FROM agents ORDER BY id LIMIT %s", (p.scarce,))]
        H.sql("UPDATE agents SET status = 'available', version = version + 1 WHERE id = ANY(%s)", (free,))
        scarce = closed(gw.port, p.scarce, 10.0, p.scarce)
        details["scarce"] = {"free_agents": p.scarce, "calls": p.scarce, "kinds": scarce["kinds"]}
        b.log(f"1: {p.scarce} free agents, {p.scarce} simultaneous calls -> {scarce['kinds']}")

        if p.directory_probe:
            # Routing reads the whole agent directory per call: the same low load at growing directory sizes.
            probe = []
            size = p.directory
            for target_size in p.probe_sizes:
                if target_size > size:
                    b.new_agents("w", target_size - size, "offline")
                    size = target_size
                reset_agents()
                r = open_(p.probe_rate, int(p.probe_rate * p.probe_s))
                probe.append(
                    {"agents": size, "rate": p.probe_rate, "p50": r["p50"], "p99": r["p99"], "kinds": r["kinds"]}
                )
                b.log(f"1: {size} agents in the directory: p50 {ms(r['p50'])} p99 {ms(r['p99'])} at {p.probe_rate:g}/s")
            details["directory_probe"] = probe
        details["server_problems"] = gw.problems()[:5]
    finally:
        bare.stop(wait=False)
        floor.stop(wait=False)
        H.sql("UPDATE agents SET status = 'offline', version = version + 1")  # out of the way of later targets

    ratio = gw_max / bare_max if bare_max else 0.0
    ratio_apology = apology_max / bare_max if bare_max else 0.0
    route_errors = sum(r["errors"] for r in gw_runs) + half["errors"]
    if len(details.get("halves", [])) > 1:
        notes.append(
            f"at half the maximum ({half_rate:.0f}/s), repeated: "
            + ", ".join(f"p50 {ms(h['p50'])} p99 {ms(h['p99'])}" for h in details["halves"])
            + " (the median run is reported)"
        )
    notes.append(
        f"the maximum counts a call once all the work it started is done: the webhook alone answered up to "
        f"{gw_burst:.0f}/s in a {p.max_s:g} s burst, but the create_room jobs and LiveKit webhooks it deferred "
        f"then needed {max(r['drain_s'] for r in gw_runs):.1f} s more at worst"
    )
    notes.append(
        "closed loop by concurrent connections, sustained (answered): gateway "
        + ", ".join(
            f"{r['concurrency']}: {r['sustained']:.0f}/s ({r['goodput']:.0f}/s)"
            + (f" ({r['errors']} errors)" if r["errors"] else "")
            for r in gw_runs
        )
        + "; bare "
        + ", ".join(f"{r['concurrency']}: {r['throughput']:.0f}/s" for r in bare_runs)
        + "; the best of each is compared"
    )
    best_gw = max((r for r in gw_runs if r["concurrency"] == gw_c), key=lambda r: r["goodput"])
    best_bare = max((r for r in bare_runs if r["concurrency"] == bare_c), key=lambda r: r["throughput"])
    notes.append(
        "gateway at its max: " + H.describe_cpu(best_gw["cpu"]).replace("bench load/driver processes", "load generator")
    )
    notes.append(
        "bare app at its max: "
        + H.describe_cpu(best_bare["cpu"])
        .replace("gateway workers", "bare app workers")
        .replace("bench load/driver processes", "load generator")
    )
    best_floor = max((r for r in floor_runs if r["concurrency"] == floor_c), key=lambda r: r["goodput"])
    notes.append(
        "durable floor (bench/floor_app.py, same gunicorn config): the least any gateway does if it commits the call "
        "before answering: Twilio signature check (RequestValidator), ONE `INSERT … ON CONFLICT (call_sid) DO NOTHING` "
        "of (CallSid, From, To) with raw psycopg (autocommit, prepared, one connection per request in flight) and the "
        "<Dial answerOnBridge><Sip> TwiML from twilio's VoiceResponse; no routing, no jobs. Closed loop at the bare "
        "app's levels, alternated with it: "
        + ", ".join(
            f"{r['concurrency']}: {r['goodput']:.0f}/s"
            + (f" ({r['errors']} errors: {r['kinds']})" if r["errors"] else "")
            for r in floor_runs
        )
        + f"; best {floor_max:.0f}/s = {floor_ratio:.1%} of bare; the gateway reaches {gw_vs_floor:.1%} of it"
    )
    notes.append(
        "durable floor at its max: "
        + H.describe_cpu(best_floor["cpu"])
        .replace("gateway workers", "floor app workers")
        .replace("bench load/driver processes", "load generator")
    )
    passed_ratio = ratio >= 0.60
    passed_p99 = half["p99"] <= 0.020 and half["errors"] == 0
    notes.append(
        "measured path: agents available (every answer a <Dial><Sip> bridge)"
        + (
            f"; also measured with no agent free (apology TwiML): {apology_max:.0f}/s = {ratio_apology:.1%} of bare, "
            f"p99 {ms(apology_half['p99'])} at {apology_max / 2:.0f}/s"
            if apology_half
            else ""
        )
    )
    sk = details.get("scarce", {}).get("kinds", {})
    if sk.get("apology") or sk.get("error_twiml"):
        notes.append(
            f"{p.scarce} calls at once with exactly {p.scarce} free agents: {sk.get('bridge', 0)} bridged, "
            f"{sk.get('apology', 0)} told no agent is available, {sk.get('error_twiml', 0)} technical apologies"
        )
    if route_errors:
        notes.append(
            f"{route_errors} answers were the gateway's technical apology (its routing transaction gave up "
            f"on concurrent updates) in the max/half runs"
        )
    return {
        "id": 1,
        "title": "Inbound webhook (POST /twilio/voice, signed, new CallSid, agents available)",
        "target": "throughput >= 60% of bare Flask; p99 <= 20 ms at half of own max",
        "figure": f"{gw_max:.0f}/s sustained vs bare {bare_max:.0f}/s = {ratio:.1%}; durable floor {floor_max:.0f}/s = "
        f"{floor_ratio:.1%} of bare, gateway = {gw_vs_floor:.1%} of the floor; p99 {ms(half['p99'])} "
        f"(p50 {ms(half['p50'])}) at {half_rate:.0f}/s",
        "passed": passed_ratio and passed_p99,
        "parts": {"throughput ratio": passed_ratio, "p99 at half load": passed_p99},
        "details": details,
        "notes": notes,
    }


# ------------------------------------------------------------- 2-4. transfer instance
def transfer_calls(b: Bench) -> list[dict]:
    p = b.profile
    if p.separate_instances or b.gateway is None:
        b.start_gateway("transfers")
    n = p.overhead_samples + p.overlap_reps + p.deadline_samples
    t = time.monotonic()
    calls = b.connect("t", n, p.connect_rate)
    b.log(f"2-4: {len(calls)} calls connected in {time.monotonic() - t:.1f}s")
    return calls


def target_overhead(b: Bench, calls: list[dict]) -> dict:
    p = b.profile
    b.world.clear()
    numbers = b.new_numbers(len(calls))
    got = b.drive(driver.transfer_to_numbers, calls, numbers, p.overhead_gap_s, False, 0.15)
    arrivals = b.world.twilio.call_arrivals
    to_dial, to_reply, missing = [], [], 0
    for tr in got["transfers"]:
        arrival = arrivals.get(tr["number"])
        to_reply.append(tr["t_response"] - tr["t0"])
        if arrival is None:
            missing += 1
        else:
            to_dial.append(arrival - tr["t0"])
    p50, p99 = pct(to_dial, 50), pct(to_dial, 99)
    passed = bool(to_dial) and p50 <= 0.020 and p99 <= 0.050 and missing == 0 and got["error_count"] == 0
    notes = [
        f"{len(to_dial)} sequential warm transfers to a phone B, zero-latency doubles; "
        f"POST /api/transfer/initiate answered in p50 {ms(pct(to_reply, 50))} / p99 {ms(pct(to_reply, 99))}"
    ]
    if missing or got["error_count"]:
        notes.append(f"{missing} transfers never dialled B; driver errors: {got['errors'][:3]}")
    return {
        "id": 2,
        "title": "Transfer overhead (initiate -> B's leg requested at Twilio)",
        "target": "p50 <= 20 ms, p99 <= 50 ms",
        "figure": f"p50 {ms(p50)}, p99 {ms(p99)} (max {ms(max(to_dial) if to_dial else float('nan'))}, n={len(to_dial)})",
        "passed": passed,
        "details": {"to_dial": to_dial, "to_reply": to_reply, "missing": missing, "driver_errors": got["errors"]},
        "notes": notes,
    }


def _carrier_after_answer(sim_call, scale: float) -> float:
    """Scripted time B's phone spends after answering before the bridge: AMD, the spoken whisper, the key."""
    seconds = 0.0
    if sim_call.setup.machine_detection and sim_call.answered_by:
        seconds += twiml_exec.AMD_SECONDS.get(sim_call.answered_by, 0.0)
    for event in sim_call.events:
        if event[0] == "say":
            seconds += len(str(event[1]).split()) * twiml_exec.SAY_SECONDS_PER_WORD
        elif event[0] == "pause":
            seconds += float(event[1])
        elif event[0] == "gather":
            break
    seconds += sim_call.script.gather_delay
    return seconds * scale


def target_overlap(b: Bench, calls: list[dict]) -> dict:
    p = b.profile
    w = b.world
    scale = p.time_scale
    runs = []
    problems = []
    for call in calls:
        (number,) = b.new_numbers(1)
        w.clear()
        w.twilio.time_scale = scale
        w.twilio.script_phone(number, answer=True, answer_after=p.ring_s, digits="1")
        w.openai.set_latency(p.llm_s)
        w.twilio.inject_latency(0.100)
        w.livekit.inject_latency(0.030)
        got = b.drive(driver.transfer_to_numbers, [call], [number], 0.0, True, None)
        if not got["transfers"]:
            problems.append(f"initiate failed: {got['errors']}")
            continue
        tr = got["transfers"][0]
        key = (tr["consult_room"], f"sip_{number}")
        deadline = time.monotonic() + 40 * max(scale, 0.25)
        while key not in w.livekit.joins and time.monotonic() < deadline:
            time.sleep(0.02)
        w.clear()
        if key not in w.livekit.joins:
            problems.append(f"B never joined {tr['consult_room']}")
            continue
        t0 = tr["t0"]
        b_call = next(c for c in w.twilio.calls() if c.to == number and c.direction == "outbound-api")
        entries = b.drive(driver.timeline, tr["call_id"], tr["agent"])
        ready = next((e for e in entries if e["kind"] == "summary_ready" and e["transfer_id"] == tr["id"]), None)
        t_summary = t0 + (iso_epoch(ready["at"]) - tr["wall0"]) if ready else float("nan")
        whisper = " ".join(str(e[1]) for e in b_call.events if e[0] == "say")
        run = {
            "total": w.livekit.joins[key] - t0,
            "dialled": w.twilio.call_arrivals[number] - t0,
            "answered": b_call._answered_at - t0 if b_call._answered_at else float("nan"),
            "summary": t_summary - t0,
            "summary_source": ready["detail"].get("source") if ready else None,
            "summary_elapsed_ms": ready["detail"].get("elapsed_ms") if ready else None,
            "carrier_after_answer": _carrier_after_answer(b_call, scale),
            "whisper_has_summary": "preparing the summary" not in whisper and bool(ready),
            "whisper": whisper[:300],
        }
        run["critical"] = run["total"] - run["carrier_after_answer"]
        runs.append(run)
        sid = b.caller_sid(tr["call_id"])
        if sid:
            with contextlib.suppress(KeyError):
                w.twilio.call(sid).hangup()
    w.twilio.time_scale = 1.0
    llm, ring = p.llm_s, p.ring_s * scale
    bound = max(llm, ring) + 0.4
    sequential = llm + ring + 0.100 + 0.030
    if not runs:
        return {
            "id": 3,
            "title": "Overlap",
            "target": "",
            "figure": "no run completed",
            "passed": False,
            "details": {"problems": problems},
            "notes": problems,
        }
    worst = max(r["critical"] for r in runs)
    delivered = all(r["summary"] <= r["answered"] and r["whisper_has_summary"] for r in runs)
    passed = worst <= bound and delivered and not problems
    med = statistics.median(r["critical"] for r in runs)
    carrier = statistics.median(r["carrier_after_answer"] for r in runs)
    notes = [
        f"injected: OpenAI {llm:.1f} s, B rings {ring:.1f} s, Twilio REST 100 ms, LiveKit 30 ms"
        + (f" (smoke: simulator time_scale {scale})" if scale != 1.0 else ""),
        f"initiate -> B's SIP leg joins the consult room: median {statistics.median(r['total'] for r in runs):.2f} s, of which "
        f"{carrier:.2f} s is the simulated phone after it answers (answering-machine detection "
        f"{twiml_exec.AMD_SECONDS['human'] * scale:.1f} s, then the whisper spoken at {twiml_exec.SAY_SECONDS_PER_WORD * scale * 1000:.1f} ms/word); "
        f"that carrier time is the same in any design and is subtracted",
        f"summary ready at {statistics.median(r['summary'] for r in runs):.2f} s (source "
        f"{runs[0]['summary_source']}), B answered at {statistics.median(r['answered'] for r in runs):.2f} s, "
        f"B's leg requested {statistics.median(r['dialled'] for r in runs) * 1000:.0f} ms after initiate; "
        f"B heard the summary in the whisper: {all(r['whisper_has_summary'] for r in runs)}",
    ] + problems
    return {
        "id": 3,
        "title": "Overlap (summary while B's phone rings)",
        "target": f"initiate -> B in consult room with summary delivered <= max(LLM, ring) + 0.4 s = {bound:.2f} s",
        "figure": f"{med:.2f} s (worst {worst:.2f} s, n={len(runs)}) vs sequential {sequential:.2f} s",
        "passed": passed,
        "details": {"runs": runs, "bound": bound, "sequential": sequential},
        "notes": notes,
    }


def target_deadline(b: Bench, calls: list[dict]) -> dict:
    p = b.profile
    w = b.world
    w.clear()
    w.openai.hang(True)
    deadline_s = p.summary_deadline_s if p.summary_deadline_s is not None else 3.0
    try:
        numbers = b.new_numbers(len(calls))
        got = b.drive(driver.transfer_to_numbers, calls, numbers, 0.3, False, None)
        items = [{"call_id": t["call_id"], "agent": t["agent"], "transfer_id": t["id"]} for t in got["transfers"]]
        found = b.drive(driver.wait_summaries, items, deadline_s + 10)["entries"]
    finally:
        w.openai.hang(False)
    late = [e["detail"]["elapsed_ms"] - deadline_s * 1000 for e in found.values()]
    sources = Counter(e["detail"].get("source") for e in found.values())
    missing = len(items) - len(found)
    worst = max(late) if late else float("nan")
    passed = bool(late) and worst <= 150 and missing == 0 and set(sources) == {"fallback"}
    return {
        "id": 4,
        "title": "Deadline (OpenAI hangs -> fallback summary)",
        "target": f"summary_ready at SUMMARY_DEADLINE_S ({deadline_s:g} s) + <= 150 ms",
        "figure": f"deadline + {statistics.median(late):.0f} ms median, + {worst:.0f} ms worst (n={len(late)})"
        if late
        else "no summary",
        "passed": passed,
        "details": {"late_ms": late, "sources": dict(sources), "missing": missing, "deadline_s": deadline_s},
        "notes": [
            f"summary_ready.detail.elapsed_ms read from GET /api/calls/<id>/timeline as agent A; sources {dict(sources)}"
            + (f"; {missing} transfers got no summary" if missing else "")
        ],
    }


# ------------------------------------------------------------------------------ 5. scale
def target_scale(b: Bench) -> dict:
    p = b.profile
    w = b.world
    if p.separate_instances or b.gateway is None:
        b.start_gateway("scale")
    gw = b.gateway
    w.clear()
    H.scale_mode(True)
    pool_size = max(40, int(p.rate * 8))
    try:
        t = time.monotonic()
        calls = b.connect("s", p.calls, p.connect_rate)
        b.log(
            f"5: {len(calls)} calls connected in {time.monotonic() - t:.1f}s "
            f"({b.setup_failures} placed again after the gateway failed to route them)"
        )
        pool = b.new_agents("p", pool_size, "available")
        time.sleep(p.drain_s)
        failed_jobs_before = H.sql("SELECT count(*) FROM jobs WHERE state = 'failed'")[0][0]
        provider_errors_before = H.sql("SELECT count(*) FROM timeline WHERE kind = 'provider_error'")[0][0]
        off = gw.log_offset()
        sent0, lk0, lklog0 = len(w.twilio.sent), len(w.livekit.deliveries), len(w.livekit.webhook_log())
        stale0 = w.twilio.stale_retries
        rss_start = gw.rss_mb()
        sampler = H.RssSampler(gw).start()
        cpu_meter = H.CpuMeter(gw.workers(), b.helper_pids())
        pg = H.PgActivitySampler().start()
        t_start = time.monotonic()
        got = b.drive(driver.scale_transfers, calls, pool, p.rate, p.duration)
        t_end = time.monotonic()
        cpu = cpu_meter.stop()
        pg_activity = pg.stop()
        time.sleep(p.drain_s)  # let the last webhooks land
        rss = sampler.stop()
        in_progress = H.sql("SELECT count(*) FROM calls WHERE state IN ('connected', 'on_hold', 'bridging')")[0][0]
    finally:
        H.scale_mode(False)

    mine = [x for x in w.twilio.sent[sent0:] if x[5].startswith(gw.url)]  # not calls left from earlier targets
    sent = [x for x in mine if t_start <= x[0] <= t_end]
    lk = [x for x in w.livekit.deliveries[lk0:] if t_start <= x[0] <= t_end]
    client_lat = [x[1] for x in sent] + [x[1] for x in lk]
    access = gw.access(off)
    hooks = [a for a in access if a[1].startswith("/twilio/") or a[1].startswith("/livekit/")]
    server_lat = [a[3] for a in hooks]
    api = [a for a in access if a[1].startswith("/api/")]

    errors = Counter()
    errors["driver"] = got["error_count"]
    twilio_failed = [x for x in mine if x[4] or not x[3] or x[3] >= 300]
    errors["twilio webhooks non-2xx"] = len(twilio_failed)
    errors["livekit webhooks non-2xx"] = sum(
        1 for e in w.livekit.webhook_log()[lklog0:] if not e["status"] or e["status"] >= 300
    )
    errors["http 5xx"] = sum(1 for a in access if a[2] >= 500)
    errors["failed jobs"] = H.sql("SELECT count(*) FROM jobs WHERE state = 'failed'")[0][0] - failed_jobs_before
    errors["provider errors"] = (
        H.sql("SELECT count(*) FROM timeline WHERE kind = 'provider_error'")[0][0] - provider_errors_before
    )
    errors["server log"] = len(gw.problems(off))
    errors["transfers not completed"] = sum(1 for r in got["records"] if not r["ok"])
    total_errors = sum(errors.values())
    c_p99, s_p99 = pct(client_lat, 99), pct(server_lat, 99)
    worst_rss = max(rss.values()) if rss else float("nan")
    achieved = got["started"] / p.duration
    passed_rate = got["skipped"] == 0
    passed_errors = total_errors == 0
    passed_p99 = c_p99 <= 0.050
    passed_rss = worst_rss <= 150
    by_path = Counter()
    slow = Counter()
    for a in hooks:
        path = "/".join(a[1].split("/")[:3])
        by_path[path] += 1
        if a[3] > 0.050:
            slow[path] += 1
    complete_s = [r["complete_s"] for r in got["records"] if "complete_s" in r]
    return {
        "id": 5,
        "title": f"Scale ({p.calls} calls in progress, {p.rate:g} warm transfers/s for {p.duration:g} s)",
        "target": "no errors; webhook p99 <= 50 ms; RSS per worker <= 150 MB",
        "figure": f"{achieved:.1f} transfers/s sustained, {total_errors} errors; webhook p99 {ms(c_p99)} "
        f"(server-side {ms(s_p99)}); RSS max {worst_rss:.0f} MB/worker",
        "passed": passed_errors and passed_rate and passed_p99 and passed_rss,
        "parts": {"rate": passed_rate, "no errors": passed_errors, "webhook p99": passed_p99, "RSS": passed_rss},
        "details": {
            "errors": dict(errors),
            "driver_errors": got["errors"][:10],
            "stuck": got["stuck"],
            "skipped": got["skipped"],
            "server_problems": gw.problems(off)[:10],
            "stale_keepalive_retries": w.twilio.stale_retries - stale0,
            "twilio_failures": Counter(f"{x[2]}: {x[4] or x[3]}"[:160] for x in twilio_failed).most_common(5),
            "twilio_client_log_lines": sum(
                1 for line in open(gw.log_path, errors="replace") if "twilio.http_client" in line
            ),
            "webhooks": len(client_lat),
            "webhook_p50": pct(client_lat, 50),
            "webhook_p99": c_p99,
            "server_p50": pct(server_lat, 50),
            "server_p99": s_p99,
            "api_requests": len(api),
            "api_p50": pct([a[3] for a in api], 50),
            "api_p99": pct([a[3] for a in api], 99),
            "initiate_p50": pct([r["initiate_s"] for r in got["records"]], 50),
            "initiate_p99": pct([r["initiate_s"] for r in got["records"]], 99),
            "complete_p50": pct(complete_s, 50),
            "rss_mb": rss,
            "rss_start": rss_start,
            "cpu": cpu,
            "fallbacks": sum(1 for a in access if a[1] == "/twilio/fallback"),
            "pg_activity": pg_activity,
            "started": got["started"],
            "completed": sum(1 for r in got["records"] if r["ok"]),
            "in_progress_after": in_progress,
            "expected_409": got["expected_409"],
            "by_path": dict(by_path),
            "slow_by_path": dict(slow),
        },
        "notes": [
            f"{got['started']} warm transfers started ({achieved:.1f}/s of {p.rate:g}/s offered; {got['skipped']} could not "
            f"start because every call or free agent was still tied up in an earlier transfer), "
            f"{sum(1 for r in got['records'] if r['ok'])} completed (initiate, A and B join the consult room, B accepts "
            f"after 0.5 s, A connects the caller once B is there, A leaves 1 s later); a transfer took "
            f"{pct([r['done_s'] for r in got['records'] if r['ok']], 50):.1f} s median end to end "
            f"(POST initiate p50 {ms(pct([r['initiate_s'] for r in got['records']], 50))}); "
            f"{in_progress} calls in progress at the end",
            f"webhook latency as the doubles saw it ({len(client_lat)} Twilio + LiveKit webhooks): p50 {ms(pct(client_lat, 50))}, "
            f"p99 {ms(c_p99)}; gunicorn's own request time: p50 {ms(pct(server_lat, 50))}, p99 {ms(s_p99)}"
            + (
                f"; {w.twilio.stale_retries - stale0} Twilio webhooks were sent again on a fresh connection after "
                f"gunicorn closed an idle keep-alive one under them"
                if w.twilio.stale_retries - stale0
                else ""
            ),
            f"errors by kind: {dict((k, v) for k, v in errors.items() if v) or 'none'}",
            f"RSS per worker (max over the run): {', '.join(f'{v:.0f} MB' for v in rss.values())}",
            H.describe_cpu(cpu),
            "gateway's PostgreSQL sessions on average: " + ", ".join(f"{v} {k}" for k, v in pg_activity.items()),
        ],
    }


# ----------------------------------------------------------------------- verdict helpers
def broken(result: dict) -> list[str]:
    """Failures that mean something does not work (as opposed to a missed performance goal)."""
    d = result.get("details") or {}
    out = []
    if result["id"] == 1 and d.get("floor_errors"):
        out.append(
            f"the durable floor app answered {d['floor_errors']} requests with an error "
            f"({', '.join(str(r['kinds']) for r in d.get('floor_runs', []) if r['errors'])}); see bench/.runs/floor.log"
        )
    if result["id"] == 2 and (d.get("missing") or d.get("driver_errors")):
        out.append("transfers did not dial B")
    if result["id"] == 3:
        runs = d.get("runs") or []
        if d.get("problems") or not runs or not all(r["whisper_has_summary"] for r in runs):
            out.append("B did not get the summary / did not join")
    if result["id"] == 4 and (d.get("missing") or set(d.get("sources", {})) - {"fallback"}):
        out.append("no fallback summary")
    if result["id"] == 5:
        errors = dict(d.get("errors") or {})
        if sum(errors.values()):
            out.append(f"errors under load: { {k: v for k, v in errors.items() if v} }")
    return out


def _floor_text(t1: dict) -> str:
    """What the durable floor measured in this run says about the 60% goal (empty when it was not measured)."""
    floor, bare, gw = t1.get("floor_max"), t1.get("bare_max"), t1.get("gw_max")
    if not floor or not bare or t1.get("floor_errors"):
        return ""
    runs = [r for r in t1.get("floor_runs", []) if r["concurrency"] == t1.get("floor_c")]
    share = ((max(runs, key=lambda r: r["goodput"]) if runs else {}).get("cpu") or {}).get("share", {})
    cpu = (
        (
            f" (its workers' CPU per call {share.get('gateway workers', 0) / floor * 1000:.2f} ms, PostgreSQL "
            f"{share.get('PostgreSQL', 0):.2f} cores at that rate)"
        )
        if share
        else ""
    )
    text = (
        f" The durable floor measured alongside (bench/floor_app.py: the signature check, ONE `INSERT … ON CONFLICT "
        f"DO NOTHING` with raw psycopg, the TwiML; nothing else) reached {floor:.0f}/s = {floor / bare:.1%} of bare"
        f"{cpu}; the gateway reaches {gw / floor:.1%} of that floor."
    )
    if floor < 0.6 * bare:
        text += (
            f" So a design that commits one row before answering reaches only {floor / bare:.1%} of bare here: on "
            f"this stack and machine the 60% goal is out of reach for any handler that commits the call before it "
            f"answers. Restate it as an absolute rate at a p99 (or against the floor), or accept a non-durable "
            f"answer path."
        )
    else:
        text += (
            " A design that commits one row before answering can meet the 60% goal here: the gap is the "
            "gateway's own work per call."
        )
    return text


def findings(results: list[dict]) -> list[str]:
    """The gateway problems the figures point at, each with where, the measured numbers and a fix.

    Written from this run's measurements: a finding appears only when its symptom was measured."""
    by_id = {r["id"]: r for r in results}
    out = []
    t1 = (by_id.get(1) or {}).get("details") or {}
    t2 = (by_id.get(2) or {}).get("details") or {}
    t5 = (by_id.get(5) or {}).get("details") or {}

    best_gw = next((r for r in t1.get("gw_runs", []) if r["concurrency"] == t1.get("gw_c")), None)
    churn = [
        (name, cpu["new_pg_sessions_per_s"], rate)
        for name, cpu, rate in (
            ("target 1 at max load", (best_gw or {}).get("cpu"), (best_gw or {}).get("goodput")),
            ("target 5", t5.get("cpu"), None),
        )
        if cpu and (cpu.get("new_pg_sessions_per_s") or 0) > 5
    ]
    if churn:
        out.append(
            "**PostgreSQL connection churn** (gateway/adapters/store/db.py, `Store.__init__`: `pool_size=40, "
            f"max_overflow=10`). Each worker runs GUNICORN_THREADS request threads ({report.gunicorn_threads()}) plus "
            "the job threads and the poller; every checkout beyond the pool opens a new connection and closes it "
            "on return: "
            + "; ".join(f"{n}: {v:g} new connections/s" + (f" at {r:.0f} webhooks/s" if r else "") for n, v, r in churn)
            + ". Each one is a PostgreSQL backend fork plus authentication (their CPU shows as 'processes that "
            "ended in the window'). Fix: a pool as large as the threads that use it, or fewer threads."
        )

    sk = (t1.get("scarce") or {}).get("kinds") or {}
    if sk.get("apology") or sk.get("error_twiml"):
        out.append(
            f"**Free agents hidden from concurrent calls** (gateway/services/calls.py, `ring_next_agent`: candidates "
            f"read with `LIMIT 5 ... FOR UPDATE SKIP LOCKED`). Every routed call locks up to five available agents "
            f"until it commits, so simultaneous calls skip agents another call will not take. Measured: "
            f"{t1['scarce']['calls']} simultaneous calls with {t1['scarce']['free_agents']} free agents: "
            f"{sk.get('bridge', 0)} bridged, {sk.get('apology', 0)} were told no one is available, "
            f"{sk.get('error_twiml', 0)} got the technical apology. Fix: order in SQL by the routing rule "
            f"(`idle_since NULLS FIRST, id`) and lock one row: `LIMIT 1 FOR UPDATE SKIP LOCKED`."
        )

    stale = sum((r["kinds"].get("error_twiml", 0)) for r in t1.get("gw_runs", []))
    if stale:
        worst = max(t1["gw_runs"], key=lambda r: r["kinds"].get("error_twiml", 0))
        out.append(
            f"**Routing gives up under concurrency** (gateway/adapters/store/db.py `Store.run`: 8 attempts, then "
            f"`StaleState`; the voice webhook answers the technical apology). {stale} of the closed-loop answers in "
            f"target 1 were the technical apology (worst: {worst['kinds'].get('error_twiml', 0)} of {worst['n']} "
            f"with {worst['concurrency']} concurrent calls). Each retry reruns the whole unit of work."
        )

    probe = t1.get("directory_probe") or []
    if len(probe) >= 2 and probe[-1]["p50"] > 2 * probe[0]["p50"] + 0.002:
        out.append(
            "**Inbound cost grows with the agent directory**: p50 of POST /twilio/voice at "
            f"{probe[0]['rate']:g}/s was "
            + ", ".join(f"{ms(x['p50'])} with {x['agents']} agents" for x in probe)
            + ". Routing must not read the whole agents table per call (index agents(status, idle_since))."
        )

    if t1.get("gw_max") and t1.get("bare_max") and t1["gw_max"] < 0.6 * t1["bare_max"] and best_gw:
        share = (best_gw.get("cpu") or {}).get("share", {})
        best_bare = next((r for r in t1.get("bare_runs", []) if r["concurrency"] == t1.get("bare_c")), None)
        bare_share = ((best_bare or {}).get("cpu") or {}).get("share", {})
        gw_cpu = share.get("gateway workers", 0)
        bare_ms = bare_share.get("gateway workers", 0) / t1["bare_max"] * 1000 if bare_share else float("nan")
        out.append(
            f"**Inbound webhook throughput** {t1['gw_max']:.0f}/s vs {t1['bare_max']:.0f}/s for the bare app "
            f"({t1['gw_max'] / t1['bare_max']:.1%}). CPU per call in the gateway's workers alone at the maximum: "
            f"{gw_cpu / t1['gw_max'] * 1000:.1f} ms ({gw_cpu:.2f} cores), against {bare_ms:.2f} ms for the bare "
            f"answer; PostgreSQL took another {share.get('PostgreSQL', 0):.2f} cores plus "
            f"{share.get('processes that ended in the window', 0):.2f} in processes that ended (mostly the "
            f"short-lived backends). Per call: the webhook's transaction (six statements: the call, the routing "
            f"pick with its row lock, the agent's compare-and-set, the leg, then the timeline entries and the two "
            f"timers with one INSERT each; no LiveKit call: the dispatch rule makes the caller's room). The bridge TwiML could be built from the CallSid alone, "
            f"but the answer also says whether anyone is free (bridge or apology), which needs the store."
            + _floor_text(t1)
        )

    to_dial = t2.get("to_dial") or []
    if to_dial and pct(to_dial, 50) > 0.020:
        out.append(
            f"**Initiate -> B dialled takes p50 {ms(pct(to_dial, 50))}, p99 {ms(pct(to_dial, 99))}** (goal 20/50 ms). "
            "Path (gateway/services/transfers.py + jobs.py + work.py): the initiate transaction (one query for the "
            "call, A's leg and any active transfer; the hold transition; then the transfer, timeline entries, six "
            "jobs (one Core INSERT) and B's leg inserted at commit) commits; `dial_leg` was stored leased to this process, so an "
            "urgent-lane thread places B's call from its payload with no claim and no read. What is left is the "
            "ORM's CPU in that transaction and the GIL shared with hold_caller, summarize and create_room, which "
            "start at the same moment."
        )

    lookups = (t5.get("cpu") or {}).get("job_key_lookups_per_job")
    if lookups and lookups > 5:
        out.append(
            f"**Jobs claimed more than once** (gateway/services/jobs.py `_poll_loop`): in target 5 each job was read by "
            f"key {lookups:g} times (2 when claimed once: the claim's UPDATE … RETURNING and finish). A process "
            "never queues an id twice, so the extra claims come from the other workers' pollers taking the same due "
            "ids: claim due jobs in one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING` so two "
            "workers never race for one job."
        )

    log_lines = t5.get("twilio_client_log_lines") or 0
    if log_lines > 100:
        out.append(
            f"**Twilio client logs every REST request at INFO** ({log_lines} lines in the target 5 server log, "
            "about ten JSON lines per request: method, URL, each header, status). Set the `twilio.http_client` "
            "logger to WARNING in the JSON logging setup (gateway/ops/observability.py)."
        )

    act = t5.get("pg_activity") or {}
    idle_tx = act.get("idle in transaction (app busy)", 0)
    running = act.get("running a statement", 0)
    if idle_tx > 3 * max(running, 0.5):
        out.append(
            f"**Transactions held open while threads wait for the GIL** (target 5): on average {idle_tx:g} of the "
            f"gateway's PostgreSQL sessions were idle inside a transaction and {running:g} running a statement, "
            f"with server-side webhook p50 {ms(t5.get('server_p50', float('nan')))} / p99 {ms(t5.get('server_p99', float('nan')))}. "
            "Two workers each run ~42 threads (32 request + 8 job + poller + LiveKit loop) on 2 cores; a thread "
            "that gets its rows back waits for the GIL while its transaction stays open. Try fewer threads per "
            "worker (GUNICORN_THREADS=8, job_threads=4: `python -m bench all --only 5 --env GUNICORN_THREADS=8`), "
            "and keep long-lived console streams off the request threads."
        )

    late_moves = sum(1 for e in t5.get("driver_errors") or [] if e.startswith("rooms/join: HTTP 403"))
    if late_moves:
        out.append(
            f"**A waits for the hold under overload** (target 5): {late_moves} of the driver's errors are agent A "
            "still refused the consult room after 15 s. A moves only once the caller is really on hold "
            "(gateway/services/transfers.py `on_caller_held`, after the `hold_caller` job's Twilio redirect), and "
            "the machine was saturated (see the CPU line). The caller is never left alone (A stays with them "
            "meanwhile); the transfer is merely late."
        )

    rss = t5.get("rss_mb") or {}
    if rss and max(rss.values()) > 150:
        start = t5.get("rss_start") or {}
        out.append(
            f"**Worker memory {max(rss.values()):.0f} MB** (goal 150; {max(start.values()):.0f} MB before the load)"
            if start
            else f"**Worker memory {max(rss.values()):.0f} MB** (goal 150)"
        )
        out[-1] += (
            ". Imports alone are ~115 MB per worker (measured in a fresh interpreter: SQLAlchemy ~28 MB, "
            "openai ~22 MB, livekit-api ~15 MB, alembic ~10 MB, psycopg ~9 MB, Flask ~7 MB, twilio ~6 MB). "
            "Fixes: do not run migrations in web workers (the release phase does; saves alembic and boot "
            "time), import openai lazily or call the one endpoint with httpx, fewer threads per worker, and "
            "`preload_app = True` so workers share the imported pages (RSS still counts them; PSS halves)."
        )

    if t5.get("fallbacks"):
        out.append(
            f"**Twilio used the fallback URL {t5['fallbacks']} times in target 5**: webhooks slower than "
            "Twilio's 15 s budget; the caller hears the apology while the gateway may still route the call."
        )
    problems = " ".join(t5.get("server_problems") or []) + " ".join(t1.get("server_problems") or [])
    if "UniqueViolation" in problems and "webhook_receipts" in problems:
        out.append(
            "**Duplicate LiveKit webhook -> HTTP 500**: a retried event arrives while the first is still in "
            "flight and the receipt INSERT hits the primary key (gateway/adapters/store/db.py `first_time`). "
            "Use `INSERT ... ON CONFLICT DO NOTHING` and treat 0 rows as a duplicate."
        )
    return out
