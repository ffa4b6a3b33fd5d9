"""RESULTS.md and latency_vs_load.png."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

PACKAGES = ("gunicorn", "Flask", "Werkzeug", "SQLAlchemy", "psycopg", "twilio", "livekit-api", "openai", "aiohttp")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram": ram,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg": loadavg(),
    }


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "-"
    try:
        from bench import harness

        out["PostgreSQL"] = harness.sql("SHOW server_version")[0][0]
    except Exception:
        out["PostgreSQL"] = "?"
    return out


def git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=Path(__file__).resolve().parents[1],
                timeout=5,
            ).stdout.strip()
            or "?"
        )
    except Exception:
        return "?"


def gunicorn_threads() -> str:
    """The thread count gunicorn.conf.py gives each worker (GUNICORN_THREADS or its default)."""
    import re

    text = (Path(__file__).resolve().parents[1] / "gunicorn.conf.py").read_text()
    match = re.search(r'GUNICORN_THREADS",\s*"(\d+)"', text)
    return os.environ.get("GUNICORN_THREADS") or (match.group(1) if match else "?")


def verdict(passed: bool | None) -> str:
    return "PASS" if passed else ("FAIL" if passed is False else "n/a")


FAULT_COUNTS = Path(__file__).resolve().parent / "fault-counts.json"


def fault_suite_section() -> list[str]:
    """The counts the fault suite (tests/faults) wrote at the end of its last whole run, per database."""
    try:
        runs = json.loads(FAULT_COUNTS.read_text())
    except (OSError, ValueError):
        return []
    lines = [
        "## Fault, crash and fuzz suite (tests/faults, in the test command)",
        "",
        "| Database | Faults injected | SIGKILLs survived | Bad inputs tried | Fuzz requests | "
        "State-machine sequences | Failures | Seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in sorted(runs.items()):
        lines.append(
            f"| {name} | {c.get('faults_injected')} | {c.get('crashes_survived')} | {c.get('bad_inputs_tried')} "
            f"| {c.get('fuzz_requests')} | {c.get('state_machine_sequences')} | {c.get('failures')} "
            f"| {c.get('seconds')} |"
        )
    return lines + [""]


def write_markdown(
    path: Path, mode: str, results: list[dict], info: dict, seconds: float, plot: str | None, findings: list[str]
) -> None:
    m, v = info["machine"], info["versions"]
    lines = [
        f"# Benchmark results ({mode})",
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} at commit {git_commit()} with "
        f"`python -m bench {mode}` in {seconds / 60:.1f} min.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM, Linux {m['kernel']}; "
        f"load average at start {info['load_start']}, at end {info['load_end']} "
        f"(a shared machine: other work ran alongside, so absolute numbers are noisy; every ratio is side by side in the same run)",
        f"- Python {m['python']}; " + ", ".join(f"{k} {val}" for k, val in v.items()),
        '- Gateway as deployed: `gunicorn --config gunicorn.conf.py "gateway:create_app()"`, WEB_CONCURRENCY=2 '
        f"(gthread, {gunicorn_threads()} threads each), PostgreSQL, real-credentials mode against the loopback doubles"
        + (f"; extra environment: {', '.join(info['extra_env'])}" if info.get("extra_env") else "")
        + (f"; profile changed with --set: {', '.join(info['overrides'])}" if info.get("overrides") else ""),
        "",
        "| # | Target | Goal | Measured | Result |",
        "|---|--------|------|----------|--------|",
    ]
    for r in results:
        parts = r.get("parts")
        result = verdict(r.get("passed"))
        if parts and not r.get("passed"):
            result += " (" + ", ".join(f"{k} {verdict(val).lower()}" for k, val in parts.items()) + ")"
        lines.append(f"| {r['id']} | {r['title']} | {r['target']} | {r['figure']} | **{result}** |")
    lines += [""]
    if plot:
        lines += [f"![p50/p99 latency of POST /twilio/voice against offered load]({plot})", ""]
    lines += ["## Notes per target", ""]
    for r in results:
        lines.append(f"**{r['id']}. {r['title']}**")
        lines.append("")
        for note in r.get("notes", []):
            lines.append(f"- {note}")
        lines.append("")
    if findings:
        lines += ["## Gateway performance problems found", ""] + [f"- {f}" for f in findings] + [""]
    lines += fault_suite_section()
    lines += [
        "## How measured",
        "",
        "- The bench process starts the three loopback doubles (gateway/sandbox: Twilio simulator, LiveKit, OpenAI), "
        "a fresh PostgreSQL schema (tables dropped, then migrated as the release phase does) and gunicorn with the "
        "production config, with every provider variable pointing at the doubles. Load and the agents' consoles run "
        "in two other processes (an asyncio HTTP/1.1 keep-alive load generator with pre-signed requests, and an aiohttp "
        "driver using the REST API and the LiveKit double's join endpoint like a browser).",
        "- 1: closed loop with 2, 8 and 32 connections for the maximum (bare app, durable floor and gateway alternated, "
        "median of the repetitions, best level; the bare app and the floor at the bare levels). The durable floor "
        "(bench/floor_app.py, same gunicorn config, same signed requests) checks the signature, INSERTs the call (one "
        "prepared `INSERT … ON CONFLICT DO NOTHING`, autocommit, one psycopg connection per request in flight) and answers the "
        "bridge TwiML built with twilio's VoiceResponse: the least a gateway that commits the call before answering "
        "does. For the gateway a call counts once the jobs and LiveKit webhooks it set off are done "
        "(sustained rate). Open loop at a fixed rate for latency, measured from when each request was due. Each request is a new call; "
        "between load steps every agent is set available again with one SQL UPDATE, and the ring/queue timers are "
        "600 s in this phase so that no timer fires during a measurement.",
        "- 2: one transfer at a time to a phone number; the time from just before `POST /api/transfer/initiate` is sent "
        "to the arrival of B's `Calls.json` POST at the simulator (both `time.monotonic()`, one clock on Linux).",
        "- 3: B's phone answers after the scripted ring; the time runs to B's SIP participant joining the consult "
        "room in the LiveKit double. The simulated phone's post-answer script (synchronous answering-machine detection "
        "and the whisper spoken word by word) is carrier time that any design pays and is reported and subtracted.",
        "- 4: OpenAI double hangs; `summary_ready.detail.elapsed_ms` (from the transfer's creation) minus the deadline.",
        "- 5: the calls are placed through the simulator and answered by browser agents first; then warm transfers "
        "start at a fixed rate, each one complete. Webhook latency is timed by the doubles around each webhook they "
        "send (what Twilio/LiveKit would see) and by gunicorn's access log (%(D)s). RSS is VmRSS of each worker, "
        "sampled every second. Errors: any non-2xx answer to the driver or to a double, 5xx in the access log, "
        "tracebacks in the server log, failed jobs, provider_error timeline entries, transfers not completed.",
        "- The doubles are observed, not changed, except two scale fixes in bench/harness.py: the simulator reaches "
        "the LiveKit double's SIP signalling by direct call instead of loopback HTTP (and polls each bridged call's "
        "SIP session every 0.5 s instead of 20 ms during target 5), and LiveKit webhooks are delivered in order per "
        "room but concurrently across rooms, as LiveKit does.",
        "",
    ]
    path.write_text("\n".join(lines))


def plot_sweep(
    path: Path, sweep: list[dict], max_rate: float, bare_max: float | None = None, floor_max: float | None = None
) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    xs = [s["offered"] for s in sweep]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    ax.plot(xs, [s["p50"] * 1000 for s in sweep], "o-", label="p50")
    ax.plot(xs, [s["p99"] * 1000 for s in sweep], "s-", label="p99")
    for s in sweep:
        if s["errors"]:
            ax.annotate(
                f"{s['errors']} err",
                (s["offered"], s["p99"] * 1000),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
                color="crimson",
            )
    ax.axhline(20, color="grey", linestyle=":", label="20 ms goal (p99 at half max)")
    ax.axvline(max_rate, color="tab:red", linestyle="--", label=f"gateway sustained max {max_rate:.0f}/s")
    ax.axvline(max_rate / 2, color="tab:green", linestyle="--", label=f"half max {max_rate / 2:.0f}/s")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if str(int(v))[0] in "25" and v >= 1 else ""))
    ax.set_xlabel("offered load, signed POST /twilio/voice per second (open loop)")
    ax.set_ylabel("latency (ms, log scale)")
    title = "Inbound webhook latency vs offered load (gunicorn, 2 workers)"
    if bare_max:
        title += f"\nbare Flask baseline max: {bare_max:.0f}/s"
        if floor_max:
            title += f"; durable floor (signature + 1 INSERT) max: {floor_max:.0f}/s"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
