"""The store: SQLAlchemy engine, units of work, compare-and-set transitions, jobs, timeline.

Every state change is ``UPDATE … SET state=:new, version=version+1 WHERE id=:id AND
version=:seen``. If another worker got there first the update touches no row, the unit
of work is rolled back and run again on fresh data, where the event usually turns out
to be a duplicate. SQLite transactions start with BEGIN IMMEDIATE so two writers never
deadlock on a lock upgrade.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy import CursorResult, Table, bindparam, create_engine, event, insert, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Mapper, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from gateway.adapters.store import models
from gateway.adapters.store.models import Job, TimelineEntry, WebhookReceipt, utcnow
from gateway.domain.machine import Outcome, StateMachine

if TYPE_CHECKING:
    from gateway.adapters.store.uow import SqlUnitOfWork

log = logging.getLogger(__name__)
T = TypeVar("T")
_O = TypeVar("_O")


def _table(model: type[models.Base]) -> Table:
    """A model's Table: declarative mapping types ``__table__`` as any FromClause, which has no
    columns by name nor a primary key constraint; every model here is mapped to a plain Table."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a Table")
    return table


RECONNECTS = 2  # fresh connections tried after a dead one, before the error reaches the caller
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# The newest Alembic revision (tests/integration/test_schema.py keeps it equal to Alembic's head).
SCHEMA_HEAD = "0012"
# SQLite: how long one statement waits for another writer's lock, and how long a unit of work keeps
# trying in all. Twilio gives the voice URL 15 s: a locked database must end in the apology well
# inside that (2 s + at most 6 s of retries), not in Twilio's generic error after 30 s a statement.
SQLITE_BUSY_S = 2.0
LOCKED_BUDGET_S = 6.0


class ClaimedJob(NamedTuple):
    """A job this process holds the lease of, with what it needs to run it."""

    id: int
    kind: str
    payload: dict
    attempts: int
    locked_until: datetime | None = None


class OutboxJob(Protocol):
    """A job as the outbox stores it: its kind and a JSON payload (services/job_types.py)."""

    @property
    def kind(self) -> str: ...
    def payload(self) -> dict[str, Any]: ...


@dataclass
class NewJob:
    """A job added to a unit of work: written with one Core INSERT at commit (``id`` is set
    then); ``cancel_timers`` in the same unit can still withdraw it before it is written."""

    kind: str
    payload: dict
    run_at: datetime
    dedupe_key: str | None = None
    state: str = "pending"
    attempts: int = 0
    locked_until: datetime | None = None
    id: int | None = None


class StaleState(Exception):
    """Another worker changed the row between our read and our write: run again."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


class _Session(Session):
    """``get`` by a single-column primary key runs a select built once per model: the ORM's own
    ``get`` builds and keys a new statement on every call (a third of its CPU). Same semantics:
    an object already in the identity map is returned as is, unless ``populate_existing``."""

    def get(
        self, entity: type[_O] | Mapper[_O], ident: Any, *, populate_existing: bool | None = None, **kwargs: Any
    ) -> _O | None:
        if isinstance(entity, type) and not kwargs and not isinstance(ident, (tuple, dict)):
            statements = _GET_BY_PK.get(entity)
            if statements is not None and (populate_existing or (entity, (ident,), None) not in self.identity_map):
                found = self.execute(statements[bool(populate_existing)], {"pk": ident}).scalars().first()
                return cast("_O | None", found)
        return super().get(entity, ident, populate_existing=populate_existing, **kwargs)


class Store:
    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_S}
        else:
            # Enough for every request thread and job thread of a worker: no connection churn.
            # No pre-ping: it costs a round trip on every checkout. A connection that died (a
            # database restart or failover) fails its first statement instead; SQLAlchemy then
            # drops every pooled connection of that age, and the unit of work runs again.
            kwargs.update(pool_size=40, max_overflow=10, pool_recycle=300)
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._sqlite_pragmas()
        # One statement that stands alone (a look by key, a job's claim or finish) needs no
        # transaction around it: on Postgres it runs in autocommit, one round trip instead of
        # three (BEGIN, the statement, COMMIT), and a claim's row lock ends with the statement.
        # The same pool; SQLite keeps its BEGIN IMMEDIATE.
        self._direct = self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A unit of work is a session with the services' repositories (uow.py imports this module).
        from gateway.adapters.store.uow import SqlUnitOfWork

        self._sessions = sessionmaker(self.engine, class_=SqlUnitOfWork, expire_on_commit=False)
        # A read (``Store.read``) holds nothing together either: under READ COMMITTED each of its
        # statements sees what was committed when it began, in a transaction or not.
        self._reads = sessionmaker(self._direct, class_=SqlUnitOfWork, expire_on_commit=False)
        # Called with (id, kind, leased) of the due jobs a unit of work committed (the job runner
        # subscribes); ``leased`` is a ClaimedJob when the job was stored already leased to us.
        self.job_listeners: list[Callable[[list[tuple[int, str, ClaimedJob | None]]], None]] = []
        # Asked for each job due now as it is enqueued: the lease to store it with, so that this
        # process runs it straight after the commit with no claim; None stores it pending.
        self.lease_new_job: Callable[[str], float | None] | None = None
        self.commit_listeners: list[Callable[[], None]] = []
        # Called with the unit of work and its new timeline entries just before they are written,
        # so rows derived from them (integrator events) commit in the same transaction.
        self.entry_listeners: list[Callable[[Session, list[dict]], None]] = []

    def _sqlite_pragmas(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_S * 1000)}")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn):  # pragma: no cover - trivial
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # ---------------------------------------------------------------- schema
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def schema_is_current(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == SCHEMA_HEAD
        except Exception:  # no table yet (a fresh database)
            return False

    def ensure_schema(self) -> None:
        """Migrate only when behind: on a deploy the release phase already did, so web workers
        skip Alembic (its import and a lock round) and a fresh sandbox still works with no step."""
        if not self.schema_is_current():
            self.migrate()

    def drop_all(self) -> None:
        models.Base.metadata.drop_all(self.engine)
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")

    # ---------------------------------------------------------- units of work
    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[SqlUnitOfWork]:
        """One transaction; commits on success. Jobs added are handed to the runner after commit.
        ``read_only``: statements that change nothing, run without a transaction around them."""
        session = (self._reads if read_only else self._sessions)()
        session.info["new_jobs"] = []
        session.info["new_entries"] = []
        session.info["lease_new_job"] = self.lease_new_job
        try:
            yield session
            if session.info["new_entries"]:
                for on_entries in self.entry_listeners:
                    on_entries(session, session.info["new_entries"])
            self._write_new_rows(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        now = utcnow()
        jobs = [
            (
                j.id,
                j.kind,
                ClaimedJob(j.id, j.kind, j.payload, j.attempts, j.locked_until) if j.state == "running" else None,
            )
            for j in session.info["new_jobs"]
            if j.run_at <= now and j.state != "cancelled"
        ]  # timers wait for the poller
        for listener in self.commit_listeners:
            listener()
        if jobs:
            for on_jobs in self.job_listeners:
                on_jobs(jobs)

    @staticmethod
    def _write_new_rows(session: Session) -> None:
        """The unit of work's timeline entries and jobs, one Core INSERT per table: they are the
        most numerous rows and nothing reads them back in the same unit, so the ORM's per-object
        bookkeeping (a large share of a webhook's CPU) buys nothing for them."""
        entries = session.info["new_entries"]
        if entries:
            session.execute(insert(_timeline), entries)
        jobs = session.info["new_jobs"]
        if jobs:
            ids = (
                session.execute(
                    insert(_jobs).returning(_jobs.c.id, sort_by_parameter_order=True),
                    [
                        {
                            "kind": j.kind,
                            "payload": j.payload,
                            "run_at": j.run_at,
                            "dedupe_key": j.dedupe_key,
                            "state": j.state,
                            "attempts": j.attempts,
                            "locked_until": j.locked_until,
                        }
                        for j in jobs
                    ],
                )
                .scalars()
                .all()
            )
            for job, job_id in zip(jobs, ids, strict=False):
                job.id = job_id

    def run(self, work: Callable[[SqlUnitOfWork], T], attempts: int = 8) -> T:
        """Run ``work`` in a unit of work, again on fresh data when a compare-and-set lost."""
        started = time.monotonic()
        for attempt in range(attempts):
            try:
                with self.session() as session:
                    return work(session)
            except StaleState:
                continue
            except IntegrityError as exc:
                # Two units raced to set the same keyed job (a timer both an 'answered' status callback
                # and the answer webhook start): the loser runs again and sees the winner's row, as after
                # a lost compare-and-set. Other unique keys (webhook receipts) are the caller's to handle.
                if "dedupe_key" not in str(exc.orig) or attempt == attempts - 1:
                    raise
                continue
            except DBAPIError as exc:
                # SQLite "database is locked" under heavy contention, or a connection that died.
                locked = isinstance(exc, OperationalError) and "locked" in str(exc)
                retry = exc.connection_invalidated or (locked and time.monotonic() - started < LOCKED_BUDGET_S)
                if not retry or attempt == attempts - 1:
                    raise
        raise StaleState("gave up after repeated concurrent updates")

    def read(self, work: Callable[[SqlUnitOfWork], T]) -> T:
        return self.reconnecting(lambda: self._read_once(work))

    def _read_once(self, work: Callable[[SqlUnitOfWork], T]) -> T:
        with self.session(read_only=True) as session:
            return work(session)

    def peek(self, model: Any, key: Any) -> Any:
        """One row by primary key, read-only and without the ORM (a named tuple with the model's
        column attributes, or None): for hot paths that only look, such as authentication."""
        statement = _PEEK[model]

        def attempt():
            with self._direct.connect() as conn:
                return conn.execute(statement, {"pk": key}).first()

        return self.reconnecting(attempt)

    @staticmethod
    def reconnecting(action: Callable[[], T]) -> T:
        """Run ``action`` again on a fresh connection if its pooled one turned out to be dead."""
        for attempt in range(RECONNECTS + 1):
            try:
                return action()
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt == RECONNECTS:
                    raise
        raise AssertionError("unreachable")

    # ----------------------------------------------------------- transitions
    @staticmethod
    def transition(session: Session, row: Any, machine: StateMachine, event_name: str, **changes: Any) -> Outcome:
        """Offer ``event_name`` to ``row``; persist the new state with compare-and-set.

        Raises IllegalTransition (nothing changes) or StaleState (run the unit again).
        ``changes`` are written only when the state really changes.
        """
        outcome = machine.apply(row.state, event_name)
        if outcome.changed:
            Store.compare_and_set(session, row, state=outcome.state, **changes)
        return outcome

    @staticmethod
    def compare_and_set(session: Session, row: Any, **changes: Any) -> None:
        """Change fields of a versioned row without a state transition (same CAS rule)."""
        if inspect(row).pending:  # added in this unit of work: nobody else can have seen it
            for key, value in changes.items():
                setattr(row, key, value)
            return
        model = type(row)
        values = {"version": row.version + 1, **changes}
        with session.no_autoflush:  # new rows of this unit of work are inserted together at commit
            result = session.execute(
                _cas_statement(model, tuple(values)), {"cas_id": row.id, "cas_seen": row.version, **values}
            )
        if cast(CursorResult[Any], result).rowcount != 1:  # an UPDATE's result is a CursorResult
            raise StaleState(f"{model.__tablename__} {row.id} changed concurrently")
        for key, value in values.items():
            set_committed_value(row, key, value)  # already written: the ORM must not write it again

    # ---------------------------------------------------------------- timeline
    @staticmethod
    def record(
        session: Session,
        call_id: str,
        kind: str,
        *,
        transfer_id: str | None = None,
        agent_id: str | None = None,
        **detail: Any,
    ) -> None:
        Store.record_at(session, utcnow(), call_id, kind, transfer_id=transfer_id, agent_id=agent_id, **detail)

    @staticmethod
    def record_at(
        session: Session,
        at: datetime,
        call_id: str,
        kind: str,
        *,
        transfer_id: str | None = None,
        agent_id: str | None = None,
        **detail: Any,
    ) -> None:
        """``record`` of something that happened at ``at`` rather than now."""
        session.info["new_entries"].append(
            {
                "call_id": call_id,
                "transfer_id": transfer_id,
                "agent_id": agent_id,
                "kind": kind,
                "detail": detail,
                "at": at,
            }
        )

    # -------------------------------------------------------------- webhooks
    @staticmethod
    def first_time(session: Session, key: str) -> bool:
        """True the first time a provider event key is seen (the receipt commits with the effect)."""
        # One statement: the key goes in unless it is there; a copy handled concurrently by another
        # worker waits on the unique key here, then finds it taken.
        statement = _RECEIPT[session.get_bind().dialect.name]
        with session.no_autoflush:
            return session.execute(statement, {"key": key, "at": utcnow()}).first() is not None

    # -------------------------------------------------------------------- jobs
    @staticmethod
    def enqueue(
        session: Session,
        job: OutboxJob,
        *,
        delay_s: float = 0.0,
        dedupe_key: str | None = None,
        timer_of: str | None = None,
    ) -> NewJob | None:
        """Add a job to this unit of work. ``dedupe_key``: not if one with that key exists.
        ``timer_of``: a timer about that (freshly made, so unique) id, which ``cancel_timers``
        can withdraw once it is moot: a timer that fires for nothing still costs a claim, a
        read and a finish."""
        return Store.enqueue_payload(
            session, job.kind, job.payload(), delay_s=delay_s, dedupe_key=dedupe_key, timer_of=timer_of
        )

    @staticmethod
    def enqueue_payload(
        session: Session,
        kind: str,
        payload: dict,
        *,
        delay_s: float = 0.0,
        dedupe_key: str | None = None,
        timer_of: str | None = None,
    ) -> NewJob | None:
        """``enqueue`` of a kind and payload as stored, unchecked: what an earlier release may
        have left in the table (tests of old rows, of the runner itself). Services use ``enqueue``."""
        new_jobs: list[NewJob] = session.info["new_jobs"]
        if dedupe_key and (
            any(j.dedupe_key == dedupe_key for j in new_jobs)
            or session.execute(_JOB_BY_KEY, {"key": dedupe_key}).first()
        ):
            return None
        if timer_of:
            dedupe_key = timer_key(kind, timer_of)
        now = utcnow()
        job = NewJob(kind=kind, payload=payload, run_at=now + timedelta(seconds=delay_s), dedupe_key=dedupe_key)
        lease_for = session.info.get("lease_new_job")
        lease_s = lease_for(kind) if lease_for and delay_s <= 0 else None
        if lease_s:
            # Born claimed by this process: it runs right after the commit without a claim round
            # trip. Should this process die first, the lease runs out and any worker takes it.
            job.state, job.attempts, job.locked_until = "running", 1, now + timedelta(seconds=lease_s)
        new_jobs.append(job)  # inserted with the unit of work's other jobs at commit (one round trip)
        return job

    @staticmethod
    def cancel_timers(session: Session, kind: str, *subjects: str) -> None:
        """Withdraw pending ``kind`` timers of these subjects (see ``enqueue``'s ``timer_of``):
        part of this unit of work; one that already fired or was never set is left as it is."""
        keys = [timer_key(kind, subject) for subject in subjects if subject]
        if not keys:
            return
        for job in session.info.get("new_jobs", ()):
            if job.dedupe_key in keys and job.state == "pending":
                job.state = "cancelled"  # set in this same unit of work: never inserted as due
        with session.no_autoflush:
            session.execute(_CANCEL_TIMERS, {"keys": keys, "cancelled": "cancelled", "pending": "pending"})

    @staticmethod
    def timers_set(session: Session, kind: str, *subjects: str) -> set[str]:
        """Which of these subjects ever had a ``kind`` timer (pending, fired or withdrawn),
        this unit of work's new ones included: a timer set is also a record that a phase began."""
        keys = {timer_key(kind, subject): subject for subject in subjects if subject}
        found = {job.dedupe_key for job in session.info.get("new_jobs", ()) if job.dedupe_key in keys}
        with session.no_autoflush:
            found |= set(session.execute(_TIMERS_BY_KEY, {"keys": list(keys)}).scalars())
        return {keys[key] for key in found}

    def claim(self, job_id: int, lease_s: float) -> ClaimedJob | None:
        """Take a due job (or one whose runner died) with compare-and-set; None if someone else has it."""
        now = utcnow()
        params = {"job_id": job_id, "now": now, "until": now + timedelta(seconds=lease_s)}

        def attempt() -> ClaimedJob | None:
            # One statement (Core, not the ORM: this runs for every job): the row lock makes
            # concurrent claimers of the same job wait and then find it taken.
            with self._direct.begin() as conn:
                row = conn.execute(_CLAIM, params).first()
            return ClaimedJob(row.id, row.kind, row.payload or {}, row.attempts, row.locked_until) if row else None

        return self.reconnecting(attempt)

    def renew(self, job: ClaimedJob, lease_s: float) -> ClaimedJob | None:
        """Extend the lease of a job we hold; None if it ran out and another worker took it."""
        jobs = _table(Job)
        locked_until = utcnow() + timedelta(seconds=lease_s)

        def attempt() -> bool:
            with self._direct.begin() as conn:
                return (
                    conn.execute(
                        update(jobs)
                        .where(
                            jobs.c.id == job.id,
                            jobs.c.state == "running",
                            jobs.c.attempts == job.attempts,
                            jobs.c.locked_until == job.locked_until,
                        )
                        .values(locked_until=locked_until)
                    ).rowcount
                    == 1
                )

        return job._replace(locked_until=locked_until) if self.reconnecting(attempt) else None

    def due_job_ids(self, limit: int = 50) -> list[int]:
        return [job_id for job_id, _ in self.due_jobs(limit)]

    def due_jobs(self, limit: int = 50) -> list[tuple[int, str]]:
        """(id, kind) of jobs due now, and of jobs whose runner's lease expired."""
        return self.poll(limit)[0]

    def poll(self, limit: int) -> tuple[list[tuple[int, str]], float | None]:
        """The job runner's poll, on one connection: up to ``limit`` due (id, kind), and the
        seconds until the next pending job falls due (None if there is none)."""
        now = utcnow()

        def attempt():
            with self._direct.begin() as conn:  # two reads: nothing to hold together
                due = []
                if limit:
                    due = [(row.id, row.kind) for row in conn.execute(_DUE, {"now": now, "limit": limit})]
                run_at = conn.execute(_NEXT_DUE).scalar()
            return due, (None if run_at is None else max(0.0, (run_at - utcnow()).total_seconds()))

        return self.reconnecting(attempt)

    def finish_job(self, job_id: int, *, error: str | None = None, retry_in_s: float | None = None) -> None:
        if retry_in_s is not None:
            statement = _RETRY
            params = {"job_id": job_id, "error": error, "due_at": utcnow() + timedelta(seconds=retry_in_s)}
        else:
            statement, params = _FINISH, {"job_id": job_id, "error": error, "outcome": "failed" if error else "done"}

        def attempt() -> None:
            with self._direct.begin() as conn:
                conn.execute(statement, params)

        self.reconnecting(attempt)


def timer_key(kind: str, subject: str) -> str:
    return f"timer:{kind}:{subject}"


# Statements on hot paths are built once: a statement object keeps its cache key, so running it
# again skips building and keying the SQL expression (most of SQLAlchemy's cost per statement).
_jobs = _table(Job)
_timeline = _table(TimelineEntry)
_JOB_BY_KEY = select(_jobs.c.id).where(_jobs.c.dedupe_key == bindparam("key"))
_TIMERS_BY_KEY = select(_jobs.c.dedupe_key).where(_jobs.c.dedupe_key.in_(bindparam("keys", expanding=True)))
_CANCEL_TIMERS = (
    update(_jobs)
    .where(_jobs.c.dedupe_key.in_(bindparam("keys", expanding=True)), _jobs.c.state == bindparam("pending"))
    .values(state=bindparam("cancelled"), locked_until=None)
)
_DUE_NOW = ((_jobs.c.state == "pending") & (_jobs.c.run_at <= bindparam("now"))) | (
    (_jobs.c.state == "running") & (_jobs.c.locked_until < bindparam("now"))
)
_CLAIM = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"), _DUE_NOW)
    .values(state="running", attempts=_jobs.c.attempts + 1, locked_until=bindparam("until"))
    .returning(_jobs.c.id, _jobs.c.kind, _jobs.c.payload, _jobs.c.attempts, _jobs.c.locked_until)
)
_DUE = select(_jobs.c.id, _jobs.c.kind).where(_DUE_NOW).order_by(_jobs.c.run_at).limit(bindparam("limit"))
_NEXT_DUE = select(_jobs.c.run_at).where(_jobs.c.state == "pending").order_by(_jobs.c.run_at).limit(1)
_FINISH = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"))
    .values(state=bindparam("outcome"), locked_until=None, last_error=bindparam("error"))
)
_RETRY = (
    update(_jobs)
    .where(_jobs.c.id == bindparam("job_id"))
    .values(state="pending", run_at=bindparam("due_at"), locked_until=None, last_error=bindparam("error"))
)


_receipts = _table(WebhookReceipt)
_RECEIPT = {
    dialect: insert_for(_receipts)
    .values(key=bindparam("key"), at=bindparam("at"))
    .on_conflict_do_nothing(index_elements=[_receipts.c.key])
    .returning(_receipts.c.key)
    for dialect, insert_for in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))
}
_CAS: dict[tuple, Any] = {}


def _cas_statement(model: Any, columns: tuple[str, ...]) -> Any:
    """``UPDATE … SET <columns> WHERE id = :cas_id AND version = :cas_seen``, built once per model
    and set of columns (Core: nothing for the ORM to synchronise, the caller sets the row's values)."""
    statement = _CAS.get((model, columns))
    if statement is None:
        table = _table(model)
        statement = (
            update(table)
            .where(table.c.id == bindparam("cas_id"), table.c.version == bindparam("cas_seen"))
            .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        )
        _CAS[(model, columns)] = statement
    return statement


def _by_pk(model):
    (pk,) = _table(model).primary_key.columns
    return pk == bindparam("pk")


# Core row by key (Store.peek) and ORM object by key, plain and refreshed (_Session.get).
_PEEK = {
    m.class_: select(m.local_table).where(_by_pk(m.class_))
    for m in models.Base.registry.mappers
    if len(_table(m.class_).primary_key.columns) == 1
}
_GET_BY_PK = {
    m.class_: (
        select(m.class_).where(_by_pk(m.class_)),
        select(m.class_).where(_by_pk(m.class_)).execution_options(populate_existing=True),
    )
    for m in models.Base.registry.mappers
    if len(_table(m.class_).primary_key.columns) == 1
}


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
