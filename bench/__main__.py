"""``python -m bench all`` (the figures, ~10 min) or ``python -m bench smoke`` (CI, < 30 s);
``python -m bench summary`` measures transfer summaries on the evaluation corpus (seconds, no gateway);
``python -m bench consoles`` opens 500 consoles and 5 boards against the call path (~2 min; its own
options, see ``python -m bench consoles --help``).

Options: ``--only 1,3`` runs some targets; ``--strict`` makes smoke fail on a missed performance goal
too (by default smoke fails only when something is broken: an error, a crash, a summary not delivered).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _ensure_matplotlib(log) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("installing bench/requirements.txt (matplotlib, for the plot)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(HERE / "requirements.txt"),
            ],
            check=False,
        )


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["consoles"]:
        from bench import streams

        return streams.main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["all", "smoke", "summary", "consoles"])
    parser.add_argument("--only", default="", help="comma-separated target numbers (1-5)")
    parser.add_argument("--strict", action="store_true", help="smoke: a missed goal fails the run too")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the gateway (e.g. to try MALLOC_ARENA_MAX=2); repeatable",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        dest="overrides",
        help="change one field of the profile for an experiment (e.g. rate=5 calls=200); "
        "the results then go to bench/.runs/; repeatable",
    )
    parser.add_argument("--out", default=None, help="results file (default bench/RESULTS.md; smoke: bench/.runs/)")
    args = parser.parse_args(argv)
    if args.mode == "summary":
        from bench import summary_quality

        return summary_quality.main()

    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[bench {time.monotonic() - started:6.1f}s] {message}", flush=True)

    if args.mode == "all":
        _ensure_matplotlib(log)

    from bench import harness as H
    from bench import loadgen, report, targets

    profile = targets.with_overrides(targets.ALL if args.mode == "all" else targets.SMOKE, args.overrides)
    only = {int(x) for x in args.only.split(",") if x.strip()} or {1, 2, 3, 4, 5}
    info = {
        "machine": report.machine(),
        "load_start": report.loadavg(),
        "extra_env": args.env,
        "overrides": args.overrides,
    }
    ctx = mp.get_context("spawn")
    driver_pool = ProcessPoolExecutor(1, mp_context=ctx)
    load_pool = ProcessPoolExecutor(1, mp_context=ctx)
    warm = [driver_pool.submit(int), load_pool.submit(int)]  # spawn both while the gateway boots
    world = H.World()
    bench = targets.Bench(
        profile=profile,
        world=world,
        log=log,
        drive=lambda fn, *a: driver_pool.submit(fn, *a).result(),
        load=lambda build, spec: load_pool.submit(loadgen.build_and_run, build, spec).result(),
        extra_env=dict(item.split("=", 1) for item in args.env),
        helper_pids=lambda: [p.pid for pool in (driver_pool, load_pool) for p in (pool._processes or {}).values()],
    )
    results: list[dict] = []
    crashed: list[str] = []

    def attempt(number: int, title: str, fn, *a):
        try:
            result = fn(*a)
        except Exception as exc:
            traceback.print_exc()
            crashed.append(f"{number}: {exc}")
            result = {
                "id": number,
                "title": title,
                "target": "",
                "figure": f"crashed: {exc}"[:200],
                "passed": False,
                "notes": [traceback.format_exc(limit=3)[-600:]],
            }
        results.append(result)
        log(f"target {number}: {'PASS' if result.get('passed') else 'FAIL'} — {result['figure']}")
        return result

    try:
        for w in warm:
            w.result()
        if 1 in only:
            attempt(1, "Inbound webhook", targets.target_webhook, bench)
        if only & {2, 3, 4}:
            try:
                calls = targets.transfer_calls(bench)
            except Exception as exc:
                traceback.print_exc()
                calls = None
                for n in sorted(only & {2, 3, 4}):
                    crashed.append(f"{n}: setup: {exc}")
                    results.append(
                        {
                            "id": n,
                            "title": f"target {n}",
                            "target": "",
                            "figure": f"setup crashed: {exc}",
                            "passed": False,
                            "notes": [],
                        }
                    )
            if calls is not None:
                k2, k3 = profile.overhead_samples, profile.overlap_reps
                if 2 in only:
                    attempt(2, "Transfer overhead", targets.target_overhead, bench, calls[:k2])
                if 3 in only:
                    attempt(3, "Overlap", targets.target_overlap, bench, calls[k2 : k2 + k3])
                if 4 in only:
                    attempt(4, "Deadline", targets.target_deadline, bench, calls[k2 + k3 :])
        if 5 in only:
            attempt(5, "Scale", targets.target_scale, bench)
    finally:
        for server in bench.instances:
            server.stop(wait=False)
        for server in bench.instances:  # smoke: no need to wait for a graceful drain at the very end
            server.stop(timeout=20.0 if args.mode == "all" else 1.5)
        world.stop()
        driver_pool.shutdown(cancel_futures=True)
        load_pool.shutdown(cancel_futures=True)

    info["load_end"] = report.loadavg()
    info["versions"] = report.versions()
    results.sort(key=lambda r: r["id"])
    out = (
        Path(args.out)
        if args.out
        else (
            HERE / "RESULTS.md"
            if args.mode == "all" and len(only) == 5 and not args.overrides
            else H.RUNS / f"RESULTS-{args.mode}.md"
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    plot = None
    webhook = next((r for r in results if r["id"] == 1 and r.get("details", {}).get("sweep")), None)
    if webhook:
        png = out.parent / "latency_vs_load.png"
        if report.plot_sweep(
            png,
            webhook["details"]["sweep"],
            webhook["details"]["gw_max"],
            webhook["details"].get("bare_max"),
            webhook["details"].get("floor_max"),
        ):
            plot = png.name
    findings = targets.findings(results)
    report.write_markdown(out, args.mode, results, info, time.monotonic() - started, plot, findings)
    (out.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str))
    log(f"wrote {out}" + (f" and {plot}" if plot else ""))

    passed = sum(1 for r in results if r.get("passed"))
    failed = len(results) - passed
    for r in results:
        print(f"  {r['id']}. {'PASS' if r.get('passed') else 'FAIL'}  {r['title']}: {r['figure']}")
    broken = crashed + [f"{r['id']}: {n}" for r in results for n in targets.broken(r)]
    if broken:
        print("broken: " + "; ".join(broken))
    # Not in the "N passed, N failed" form: CI reads that line as a test count, and a missed goal is no failed test.
    print(
        f"bench {args.mode}: {passed} of {len(results)} goals met; "
        + ("something is broken (see above)" if broken else "nothing broken")
    )
    if args.mode == "smoke" and not args.strict:
        return 1 if broken else 0
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main())
