"""The people and browsers around the gateway, run in a separate process: admins adding agents,
callers dialling in (through the Twilio simulator's control API), agents' consoles accepting calls
and transfers over the REST API, and their browsers joining LiveKit rooms.

Every function here is called through a ``ProcessPoolExecutor`` with one spawned worker, so the
state (agents' credentials) lives in this module between calls. Times are ``time.monotonic()``,
which on Linux is one clock for every process, so the bench process can line them up with the
doubles' observations.
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from gateway.sandbox.runtime import PHONE_NUMBER

ADMIN: dict = {}
CREDENTIALS: dict[str, str] = {}


def configure(gateway_url: str, sim_url: str, livekit_url: str, admin_token: str) -> None:
    ADMIN.update(gw=gateway_url, sim=sim_url, lk=livekit_url, token=admin_token)
    CREDENTIALS.clear()


def _session(limit: int = 64) -> aiohttp.ClientSession:
    # Idle connections are dropped after 2 s, before gunicorn's keepalive (5 s) closes them under us.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=2.0), timeout=aiohttp.ClientTimeout(total=30)
    )


class Log:
    """Every response the driver got, for the error count."""

    def __init__(self):
        self.requests = 0
        self.errors: list[str] = []
        self.expected_409 = 0

    def check(self, what: str, status: int, text: str, ok=(200, 201, 202)) -> bool:
        self.requests += 1
        if status in ok:
            return True
        self.errors.append(f"{what}: HTTP {status} {text[:160]}")
        return False


async def _json(http: aiohttp.ClientSession, method: str, url: str, *, token: str | None = None, body=None):
    """(status, parsed JSON or None, text); status 0 when no answer came (counted as an error by Log)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for _attempt in range(2 if method == "GET" else 1):
        try:
            async with http.request(method, url, json=body, headers=headers) as r:
                text = await r.text()
                try:
                    data = await r.json(content_type=None)
                except Exception:
                    data = None
                return r.status, data, text
        except (TimeoutError, aiohttp.ClientError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    return 0, None, error


# ------------------------------------------------------------------------------ agents
def add_agents(ids: list[str], status: str, phone: dict | None = None, concurrency: int = 8) -> dict:
    """POST /api/admin/agents for each id (browser agents); returns the number added and errors."""

    async def go():
        log = Log()
        sem = asyncio.Semaphore(concurrency)
        async with _session() as http:

            async def one(agent_id):
                async with sem:
                    body = {"id": agent_id, "name": agent_id.upper(), "browser": True, "status": status}
                    if phone and agent_id in phone:
                        body["phone"] = phone[agent_id]
                    s, data, text = await _json(
                        http, "POST", ADMIN["gw"] + "/api/admin/agents", token=ADMIN["token"], body=body
                    )
                    if log.check("add agent", s, text):
                        CREDENTIALS[agent_id] = data["credential"]

            await asyncio.gather(*(one(a) for a in ids))
        return {"added": len(ids) - len(log.errors), "errors": log.errors[:5]}

    return asyncio.run(go())


def set_status(ids: list[str], status: str, concurrency: int = 8) -> dict:
    async def go():
        log = Log()
        sem = asyncio.Semaphore(concurrency)
        async with _session() as http:

            async def one(agent_id):
                async with sem:
                    s, _, text = await _json(
                        http,
                        "POST",
                        ADMIN["gw"] + f"/api/admin/agents/{agent_id}/status",
                        token=ADMIN["token"],
                        body={"status": status},
                    )
                    log.check("set status", s, text)

            await asyncio.gather(*(one(a) for a in ids))
        return {"errors": log.errors[:5]}

    return asyncio.run(go())


# ------------------------------------------------------------------------------- calls
async def _accept_offer(http, log: Log, agent_id: str, timeout: float = 3.0) -> dict | None:
    """The agent's console: fetch its call offer, accept it, join the room with the token."""
    token = CREDENTIALS[agent_id]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s, data, text = await _json(http, "GET", ADMIN["gw"] + "/api/agents/me/offers", token=token)
        if not log.check("offers", s, text):
            return None
        offer = next((o for o in (data or {}).get("offers", []) if o["kind"] == "call"), None)
        if offer:
            s, data, text = await _json(
                http, "POST", ADMIN["gw"] + f"/api/calls/{offer['call_id']}/accept", token=token
            )
            if s == 409:
                return None  # the caller is gone (e.g. Twilio gave up on a slow voice webhook and used the fallback)
            if not log.check("accept call", s, text):
                return None
            s, joined, text = await _json(http, "POST", ADMIN["lk"] + "/_sim/rtc/join", body={"token": data["token"]})
            if not log.check("rtc join", s, text):
                return None
            return {"call_id": offer["call_id"], "agent": agent_id, "room": data["room"], "caller": offer["caller"]}
        await asyncio.sleep(0.1)
    return None


def connect_calls(
    agent_ids: list[str], rate: float, first_caller: int = 0, max_pending: int = 8, stall_s: float = 40.0
) -> dict:
    """Connect one inbound call per agent: callers dial in at up to ``rate`` per second, with at most
    ``max_pending`` calls not yet answered (so the set-up goes at the gateway's pace), and the agents'
    consoles accept them.

    An admin view (GET /api/admin/agents, about three times a second) shows which agents turned busy,
    i.e. are being offered a call; each such console fetches its offer, accepts and joins the room. A
    call the gateway failed to route (the caller heard the technical apology and the call ended, as the
    simulator shows) is counted and replaced by a new call at once."""

    async def go():
        log = Log()
        connected: list[dict] = []
        wanted = set(agent_ids)
        handling: set = set()
        calls: dict[str, dict] = {}  # caller number -> {"sid", "t", "state"}
        seq = {"next": first_caller, "failed": 0, "scheduled": 0}
        start = time.monotonic()
        async with _session(limit=128) as http:

            async def place() -> None:
                number = f"+1556{seq['next']:07d}"
                seq["next"] += 1
                calls[number] = {"sid": None, "t": time.monotonic(), "state": "pending", "checked": 0.0}
                s, data, text = await _json(
                    http, "POST", ADMIN["sim"] + "/_sim/calls", body={"from": number, "to": PHONE_NUMBER}
                )
                if log.check("place call", s, text):
                    calls[number]["sid"] = data["sid"]

            async def callers():
                next_at = start
                while seq["scheduled"] < len(agent_ids):
                    pending = sum(1 for c in calls.values() if c["state"] == "pending")
                    if pending >= max_pending or time.monotonic() < next_at:
                        await asyncio.sleep(0.02)
                        continue
                    next_at = max(next_at, time.monotonic() - 1.0) + 1.0 / rate
                    seq["scheduled"] += 1
                    await place()

            async def accept(agent_id):
                got = await _accept_offer(http, log, agent_id)
                if got:
                    connected.append(got)
                    if got["caller"] in calls:
                        calls[got["caller"]]["state"] = "connected"
                else:
                    handling.discard(agent_id)  # look again on the next pass

            async def check(number: str, info: dict):
                s, snap, _ = await _json(http, "GET", ADMIN["sim"] + f"/_sim/calls/{info['sid']}")
                if (
                    s == 200
                    and info["state"] == "pending"
                    and (
                        snap["status"] in ("completed", "failed", "busy", "no-answer", "canceled")
                        or any(e[0] == "say" and "sorry" in str(e[1]).lower() for e in snap["events"])
                    )
                ):  # an apology
                    info["state"] = "failed"
                    seq["failed"] += 1
                    await place()

            async def watcher():
                tasks = []
                progress = (0, time.monotonic())
                while len({c["agent"] for c in connected}) < len(wanted):
                    if len(connected) != progress[0]:
                        progress = (len(connected), time.monotonic())
                    elif time.monotonic() > progress[1] + stall_s:
                        break
                    s, data, text = await _json(http, "GET", ADMIN["gw"] + "/api/admin/agents", token=ADMIN["token"])
                    if log.check("list agents", s, text):
                        for a in data["agents"]:
                            if a["id"] in wanted and a["status"] == "busy" and a["id"] not in handling:
                                handling.add(a["id"])
                                tasks.append(asyncio.ensure_future(accept(a["id"])))
                    now = time.monotonic()
                    for number, info in list(calls.items()):
                        if (
                            info["state"] == "pending"
                            and info["sid"]
                            and now - info["t"] > 1.0
                            and now - info["checked"] > 1.0
                        ):
                            info["checked"] = now
                            tasks.append(asyncio.ensure_future(check(number, info)))
                    await asyncio.sleep(0.3)
                await asyncio.gather(*tasks)

            await asyncio.gather(callers(), watcher())
        return {
            "calls": connected,
            "seconds": time.monotonic() - start,
            "requests": log.requests,
            "errors": log.errors[:10],
            "error_count": len(log.errors),
            "failed": seq["failed"],
            "numbers_used": seq["next"] - first_caller,
        }

    return asyncio.run(go())


# --------------------------------------------------------------------------- transfers
async def _join_consult(http, log: Log, agent_id: str, room: str, wait_s: float = 15.0) -> bool:
    """A's console joins the consult room once the gateway has it ready for A (it may first put the
    caller on hold; until then rooms/join answers 403, and the console tries again)."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        s, data, text = await _json(
            http, "POST", ADMIN["gw"] + "/api/rooms/join", token=CREDENTIALS[agent_id], body={"room": room}
        )
        if s != 403 or time.monotonic() > deadline:
            break
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)
    if not log.check("rooms/join", s, text):
        return False
    s, _, text = await _json(http, "POST", ADMIN["lk"] + "/_sim/rtc/join", body={"token": data["token"]})
    return log.check("rtc join consult", s, text)


async def _initiate(http, log: Log, call: dict, target: dict) -> tuple[float, float, dict | None]:
    t0 = time.monotonic()
    wall0 = time.time()
    s, data, text = await _json(
        http,
        "POST",
        ADMIN["gw"] + "/api/transfer/initiate",
        token=CREDENTIALS[call["agent"]],
        body={"call_id": call["call_id"], "mode": "warm", **target},
    )
    t1 = time.monotonic()
    if not log.check("initiate", s, text):
        return t0, t1, None
    return t0, t1, dict(data["transfer"], t0=t0, wall0=wall0, t_response=t1)


def transfer_to_numbers(
    calls: list[dict], numbers: list[str], gap_s: float, join_a: bool = True, cancel_after_s: float | None = 0.4
) -> dict:
    """One warm transfer at a time, each to its own phone number (target 2); optionally cancelled after."""

    async def go():
        log = Log()
        out = []
        async with _session() as http:
            for call, number in zip(calls, numbers, strict=False):
                t0, t1, transfer = await _initiate(http, log, call, {"target_number": number})
                if transfer is None:
                    continue
                out.append(dict(transfer, number=number, call_id=call["call_id"], agent=call["agent"]))
                if join_a:
                    await _join_consult(http, log, call["agent"], transfer["consult_room"])
                if cancel_after_s is not None:
                    await asyncio.sleep(cancel_after_s)
                    s, _, text = await _json(
                        http,
                        "POST",
                        ADMIN["gw"] + f"/api/transfers/{transfer['id']}/cancel",
                        token=CREDENTIALS[call["agent"]],
                    )
                    log.check("cancel", s, text)
                await asyncio.sleep(gap_s)
        return {"transfers": out, "errors": log.errors[:10], "error_count": len(log.errors)}

    return asyncio.run(go())


def timeline(call_id: str, agent_id: str) -> list:
    async def go():
        async with _session() as http:
            s, data, text = await _json(
                http, "GET", ADMIN["gw"] + f"/api/calls/{call_id}/timeline", token=CREDENTIALS[agent_id]
            )
            return (data or {}).get("timeline", []) if s == 200 else []

    return asyncio.run(go())


def wait_summaries(items: list[dict], timeout: float = 15.0) -> dict:
    """Poll each call's timeline as its agent A until ``summary_ready`` shows; returns the entries."""

    async def go():
        found: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        async with _session() as http:
            while time.monotonic() < deadline and len(found) < len(items):
                for item in items:
                    if item["transfer_id"] in found:
                        continue
                    s, data, _ = await _json(
                        http,
                        "GET",
                        ADMIN["gw"] + f"/api/calls/{item['call_id']}/timeline",
                        token=CREDENTIALS[item["agent"]],
                    )
                    for e in (data or {}).get("timeline", []) if s == 200 else []:
                        if e["kind"] == "summary_ready" and e["transfer_id"] == item["transfer_id"]:
                            found[item["transfer_id"]] = e
                await asyncio.sleep(0.1)
        return {"entries": found}

    return asyncio.run(go())


def scale_transfers(
    calls: list[dict],
    idle_agents: list[str],
    rate: float,
    duration: float,
    b_delay_s: float = 0.5,
    intro_s: float = 1.0,
    seed: int = 7,
) -> dict:
    """Warm transfers at a fixed rate (open loop) on the connected calls, each one complete:

    A initiates to an available agent B and joins the consult room; B's console accepts after
    ``b_delay_s`` and joins; A connects the caller once B is there and the summary is ready (409 is
    retried); after ``intro_s`` A leaves. The call then belongs to B, and A is available again."""
    rng = random.Random(seed)

    async def go():
        log = Log()
        idle = list(idle_agents)
        rng.shuffle(idle)
        free_calls = list(calls)
        rng.shuffle(free_calls)
        done: list[dict] = []
        skipped = 0
        start = time.monotonic() + 0.2
        total = int(rate * duration)
        tasks = []
        async with _session(limit=256) as http:

            async def flow(call: dict, b: str):
                a = call["agent"]
                t0, t1, transfer = await _initiate(http, log, call, {"target_agent_id": b})
                rec = {"t0": t0, "initiate_s": t1 - t0, "ok": False}
                if transfer is None:
                    idle.append(b)
                    free_calls.append(call)
                    done.append(rec)
                    return
                tid = transfer["id"]
                joined = await _join_consult(http, log, a, transfer["consult_room"])
                await asyncio.sleep(b_delay_s)
                s, data, text = await _json(
                    http, "POST", ADMIN["gw"] + f"/api/transfers/{tid}/accept", token=CREDENTIALS[b]
                )
                if log.check("accept transfer", s, text):
                    s, _, text = await _json(
                        http, "POST", ADMIN["lk"] + "/_sim/rtc/join", body={"token": data["token"]}
                    )
                    log.check("rtc join B", s, text)
                # A presses "connect" once B shows up in the consult room; if the gateway says B is not there yet
                # (409), A looks again after a while (0.5 s, then 1 s, then every 2 s), as a person would.
                connected = False
                deadline = time.monotonic() + 20
                waits = iter([0.5, 1.0] + [2.0] * 20)
                await asyncio.sleep(0.3)
                while True:
                    s, _, text = await _json(
                        http, "POST", ADMIN["gw"] + f"/api/transfers/{tid}/complete", token=CREDENTIALS[a]
                    )
                    if s != 409:
                        connected = log.check("complete", s, text)
                        break
                    log.expected_409 += 1
                    if time.monotonic() > deadline:
                        rec["stuck"] = text[:160]  # B never showed up in the consult room for the gateway
                        break
                    await asyncio.sleep(next(waits))
                rec["complete_s"] = time.monotonic() - t0
                rec["a_joined"] = joined
                if not connected:
                    # A gives up and cancels: the caller goes back to A; only then is the call free again.
                    s, _, text = await _json(
                        http, "POST", ADMIN["gw"] + f"/api/transfers/{tid}/cancel", token=CREDENTIALS[a]
                    )
                    log.check("cancel", s, text, ok=(200, 409))
                    await asyncio.sleep(3.0)
                if connected:
                    await asyncio.sleep(intro_s)
                    s, _, text = await _json(
                        http, "POST", ADMIN["gw"] + f"/api/transfers/{tid}/leave", token=CREDENTIALS[a]
                    )
                    if log.check("leave", s, text):
                        rec["ok"] = True
                        call["agent"] = b
                        await asyncio.sleep(0.2)
                        idle.append(a)
                rec["done_s"] = time.monotonic() - t0
                free_calls.append(call)
                done.append(rec)

            for i in range(total):
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
                if not idle or not free_calls:
                    skipped += 1
                    continue
                call = free_calls.pop(0)
                b = idle.pop(0)
                tasks.append(asyncio.ensure_future(flow(call, b)))
            await asyncio.gather(*tasks)
        return {
            "started": len(tasks),
            "skipped": skipped,
            "records": done,
            "requests": log.requests,
            "stuck": [r["stuck"] for r in done if "stuck" in r][:5],
            "expected_409": log.expected_409,
            "errors": log.errors[:20],
            "error_count": len(log.errors),
            "calls": free_calls,
        }

    return asyncio.run(go())
