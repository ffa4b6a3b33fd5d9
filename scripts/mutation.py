"""Mutation test: how much of the code could be broken without a test noticing.

    .venv/bin/python scripts/mutation.py                      # every target (about 30 minutes on 2 cores)
    .venv/bin/python scripts/mutation.py domain rows twiml    # some targets
    .venv/bin/python scripts/mutation.py services --sample 120 --seed 19 --children 2
    .venv/bin/python scripts/mutation.py summary --sample 180 --seed 11   # a reproducible sample

mutmut (requirements-dev.txt) makes one small change to the code at a time and runs the tests that
reach the changed function; a change that no test notices "survives". Each target runs in a scratch
copy of the working tree, so the checkout stays clean. mutmut only mutates code inside functions, so
the state machines' transition tables (module-level data) get a target of their own: every row is
deleted in turn, and the same tests run against each machine without it.

`--sample N --seed S` runs a random sample of N of the target's mutants instead of all of them:
mutmut first makes every mutant and maps tests to functions, then the script draws N mutant names
with random.Random(S) from the sorted list and hands them to `mutmut run <names>`, so the same seed
on the same code picks the same mutants. `--children` is the number of mutants tested at once
(mutmut's --max-children; 1 by default, the machine is shared).

The score is killed / reached (mutants in functions no selected test calls are "not reached").
Last figures and the survivors kept on purpose: tests/MUTATION.md. Not part of CI: it is too slow.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", "node_modules", "mutants", "__pycache__", ".hypothesis", ".pytest_cache", "artifacts", ".runs"}
DOMAIN_TESTS = ["tests/unit/", "tests/faults/test_state_properties.py"]
SERVICES = ["transfers", "transfer_events", "transfer_moves", "caller", "agent_legs", "legs", "routing", "queues"]


@dataclass
class Target:
    name: str
    mutate: list[str]  # mutmut only_mutate globs
    tests: list[str]  # the pytest selection run against each mutant
    sample: int = 0  # 0: every mutant; otherwise a random sample of this size
    notes: str = ""
    per_file: bool = True


TARGETS = {
    "domain": Target("gateway/domain/*", ["gateway/domain/*"], DOMAIN_TESTS),
    "twiml": Target(
        "twiml/documents.py",
        ["twiml/documents.py"],
        ["tests/unit/", "tests/integration/", "tests/faults/test_bad_input.py"],
    ),
    "summary": Target("gateway/domain/summary.py", ["gateway/domain/summary.py"], ["tests/unit/", "tests/summary/"]),
    # The transfer and call use cases that read and write through the unit of work, so the service
    # tests (no database on the in-memory twin) reach them; room_events.py still works on a
    # session and is only reached end to end.
    "services": Target(
        "transfer and call services",
        [f"gateway/services/{name}.py" for name in SERVICES],
        ["tests/services/", "tests/unit/"],
        sample=120,
        per_file=False,
    ),
}
ROWS_TARGET = "rows"
MACHINES = {
    "call": "gateway.domain.calls:CALL",
    "leg": "gateway.domain.legs:LEG",
    "transfer": "gateway.domain.transfers:TRANSFER",
}


def scratch_copy(into: Path) -> None:
    """The working tree as it is (uncommitted tests included), without caches, databases and dependencies."""

    def ignore(directory, names):
        return [n for n in names if n in SKIP or n.endswith((".db", ".db-wal", ".db-shm", ".pyc"))]

    for entry in ROOT.iterdir():
        if entry.name in SKIP or entry.is_symlink() or entry.name.endswith(".db"):
            continue
        if entry.is_dir():
            shutil.copytree(entry, into / entry.name, ignore=ignore)
        else:
            shutil.copy2(entry, into / entry.name)


def mutmut(work: Path, *args: str, children: int, log) -> int:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", str(children), *args],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        check=False,
    ).returncode


def statuses(work: Path) -> dict[str, tuple[str, str]]:
    """mutant name -> (source file, status), read from mutmut's per-file results."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in (work / "mutants").rglob("*.py.meta"):
        source = str(meta.relative_to(work / "mutants"))[: -len(".meta")]
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = (source, status_by_exit_code[code])
    return out


def run_mutmut_target(target: Target, seed: int, keep: bool, children: int = 1) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    scratch_copy(work)
    top = sorted(p.name for p in work.iterdir() if p.name not in ("gateway", "twiml"))
    cfg = ["[mutmut]", "source_paths =", "    gateway/", "    twiml/", "only_mutate ="]
    cfg += [f"    {g}" for g in target.mutate]
    cfg += ["also_copy ="] + [f"    {p}" for p in top]
    cfg += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in target.tests]
    # pyproject.toml has no [tool.mutmut] table, so mutmut reads setup.cfg.
    (work / "setup.cfg").write_text("\n".join(cfg) + "\n")
    subprocess.run(["git", "init", "-q", "."], cwd=work, check=True)  # mutmut looks for a repository
    log = open(work / "mutmut.log", "w")  # noqa: SIM115 — kept open across both runs
    names: list[str] = []
    if target.sample:
        # First pass: make the mutants and map tests to functions, run none; then run a sample.
        mutmut(work, "no-such-mutant", children=children, log=log)
        every = sorted(n for n, (src, _) in statuses(work).items() if any(_match(src, g) for g in target.mutate))
        names = random.Random(seed).sample(every, min(target.sample, len(every)))
        print(f"  sampled {len(names)} of {len(every)} mutants (seed {seed})", flush=True)
    mutmut(work, *names, children=children, log=log)
    log.close()
    found = statuses(work)
    if names:
        found = {n: found[n] for n in names}
    if found and all(status == "not checked" for _, status in found.values()):
        # mutmut stops before the mutants when the tests fail without any (a flaky test, a broken tree).
        raise SystemExit(f"mutmut tested no mutant: the tests failed on the unchanged code, see {work}/mutmut.log")
    for name in sorted(n for n, (_, status) in found.items() if status in ("survived", "suspicious")):
        print(f"  survived: {name}  (mutmut show {name}, in the scratch copy)")
    rows: dict[str, Counter] = {}
    for source, status in found.values():
        key = source if target.per_file else target.name
        rows.setdefault(key, Counter())[status] += 1
    if keep:
        print(f"  scratch copy kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(rows.values(), Counter())
    result = [_row(target.name + (f" ({len(names)} sampled)" if names else ""), total, target.tests)]
    if target.per_file and len(rows) > 1:
        result += [_row("  " + src, c, target.tests) for src, c in sorted(rows.items())]
    return result


def _match(path: str, glob: str) -> bool:
    from fnmatch import fnmatch

    return fnmatch(path, glob)


def _row(name: str, c: Counter, tests: list[str]) -> dict:
    killed = c["killed"] + c["timeout"]
    survived = c["survived"] + c["suspicious"]
    reached = killed + survived
    return {
        "target": name,
        "tests": " + ".join(tests),
        "mutants": sum(c.values()),
        "killed": killed,
        "survived": survived,
        "not reached": c["no tests"],
        "score": f"{100 * killed / reached:.0f} %" if reached else "–",
    }


# ------------------------------------------------------------------ transition-table rows
def rows_of_machines() -> list[tuple[str, tuple[str, str]]]:
    sys.path.insert(0, str(ROOT))
    out = []
    for name, ref in MACHINES.items():
        module, attr = ref.split(":")
        machine = getattr(__import__(module, fromlist=[attr]), attr)
        out += [(name, key) for key in sorted(machine.transitions)]
    return out


def run_rows(tests: list[str], jobs: int) -> tuple[list[dict], list[str]]:
    """Delete each row of each machine in turn and run the tests; a row whose loss passes them survives."""
    rows = rows_of_machines()
    work = Path(tempfile.mkdtemp(prefix="mutation-rows-"))
    scratch_copy(work)

    def one(item):
        machine, (state, event) = item
        env = dict(os.environ, MUTATION_DROP_ROW=f"{machine}:{state}:{event}", PYTHONPATH=str(ROOT / "scripts"))
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "mutation_rows", *tests],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        return item, proc.returncode

    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(one, rows))
    shutil.rmtree(work, ignore_errors=True)
    survived = [f"{m}: ({s}, {e})" for (m, (s, e)), code in results if code == 0]
    broken = [f"{m}: ({s}, {e}) exit {code}" for (m, (s, e)), code in results if code not in (0, 1)]
    if broken:
        raise SystemExit("the tests could not run without a row (not a kill):\n" + "\n".join(broken))
    c = Counter(killed=len(rows) - len(survived), survived=len(survived))
    return [_row("transition-table rows, deleted one at a time", c, tests)], survived


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", default=[], help=f"any of: {', '.join([*TARGETS, ROWS_TARGET])}")
    parser.add_argument("--sample", type=int, help="test a random sample of this many mutants of each mutmut target")
    parser.add_argument("--seed", type=int, default=19, help="the sample's seed (same seed, same code: same mutants)")
    parser.add_argument("--children", type=int, default=1, help="mutants tested at once (mutmut --max-children)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel test runs for rows")
    parser.add_argument("--tests", nargs="+", help="run these tests against each mutant instead of the target's own")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies (to read survivors)")
    args = parser.parse_args()
    chosen = args.targets or ["domain", ROWS_TARGET, "twiml", "services"]  # summary.py is inside domain
    table: list[dict] = []
    for name in chosen:
        started = time.monotonic()
        print(f"{name}: running …", flush=True)
        if name == ROWS_TARGET:
            rows, survived = run_rows(args.tests or DOMAIN_TESTS, args.jobs)
            table += rows
            for s in survived:
                print(f"  survived: {s}")
        elif name in TARGETS:
            target = TARGETS[name]
            if args.tests:
                target.tests = args.tests
            if args.sample:
                target.sample = args.sample
            table += run_mutmut_target(target, args.seed, args.keep, args.children)
        else:
            parser.error(f"unknown target {name!r}")
        print(f"{name}: done in {time.monotonic() - started:.0f} s", flush=True)
    cols = ["target", "tests", "mutants", "killed", "survived", "not reached", "score"]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in table:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
