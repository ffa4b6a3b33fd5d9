"""The composition root: builds the store, adapters, services and job runner from Settings.

The one place that decides between real providers and the sandbox doubles (which sit
behind the very same adapters, reached over loopback HTTP): ``for_environment`` runs the
doubles in this process when no provider credential is set (``run_settings`` says with which
settings), and ``build`` adds the console's sandbox controls whenever the settings are a
sandbox's (``create_app`` registers their routes only then).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from gateway.adapters.event_http import EventPoster
from gateway.adapters.livekit_rooms import LiveKitRooms
from gateway.adapters.openai_summarizer import OpenAISummarizer
from gateway.adapters.store import Store
from gateway.adapters.twilio_client import TwilioTelephony
from gateway.config import Settings
from gateway.metrics import Metrics
from gateway.sandbox.controls import SandboxControls
from gateway.services.agent_legs import AgentLegs
from gateway.services.agents import AgentService
from gateway.services.answers import Answers
from gateway.services.api_keys import ApiKeys
from gateway.services.board import Board
from gateway.services.callbacks import Callbacks
from gateway.services.caller import Caller
from gateway.services.event_webhooks import EventWebhooks
from gateway.services.jobs import JobRunner
from gateway.services.legs import Legs
from gateway.services.listen_in import ListenIn
from gateway.services.ports import Gateway, LiveKitHealth
from gateway.services.queues import Queues
from gateway.services.records import Records
from gateway.services.room_events import RoomEvents
from gateway.services.routing import Routing
from gateway.services.summaries import Summaries
from gateway.services.teams import TeamService
from gateway.services.transfer_events import TransferEvents
from gateway.services.transfer_moves import TransferMoves
from gateway.services.transfers import TransferService
from gateway.services.views import Views
from gateway.services.web_calls import WebCallers
from gateway.services.work import ProviderWork
from gateway.web.urls import PublicUrls

if TYPE_CHECKING:
    from gateway.sandbox.runtime import Sandbox

log = logging.getLogger(__name__)
_start_lock = threading.Lock()


@dataclass
class Services:
    """What the web layer and the CLI use."""

    gw: Gateway
    answers: Answers
    caller: Caller
    callbacks: Callbacks
    legs: AgentLegs
    room_events: RoomEvents
    records: Records
    transfers: TransferService
    summaries: Summaries
    agents: AgentService
    teams: TeamService
    views: Views
    runner: JobRunner
    metrics: Metrics
    sandbox: Sandbox | None = None  # the doubles this process runs (python -m gateway with nothing configured)
    sandbox_controls: SandboxControls | None = None  # the console's sandbox controls: sandbox mode only
    startup_error: str | None = None  # set when the app was built but cannot serve (database down)
    event_webhooks: EventWebhooks | None = None
    api_keys: ApiKeys | None = None
    board: Board | None = None
    listen_in: ListenIn | None = None
    web_callers: WebCallers | None = None
    _started_pid: int | None = None

    @property
    def livekit_client_url(self) -> str:
        url = self.gw.settings.livekit_url
        return url.replace("https://", "wss://").replace("http://", "ws://")

    def start(self) -> None:
        """Start background work in this process (idempotent; after gunicorn forks)."""
        if self.startup_error:
            # One clear line and a non-zero exit (gunicorn: a worker that fails to boot stops the
            # server with status 3), instead of workers dying with a driver traceback.
            log.critical(self.startup_error)
            raise SystemExit(3)
        pid = os.getpid()
        with _start_lock:
            if self._started_pid == pid:
                return
            self._started_pid = pid
            if self.sandbox is not None:
                self.sandbox.start()
            if self.gw.settings.run_jobs:
                self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.gw.rooms.close()
        if self.sandbox is not None:
            self.sandbox.stop()


def build(settings: Settings, *, store: Store | None = None, migrate: bool = True) -> Services:
    store = store or Store(settings.database_url)
    if migrate:
        store.ensure_schema()
    metrics = Metrics()
    gw = _gateway(settings, store)
    calls = _call_services(gw, metrics)
    agents = AgentService(store)
    # Free agents take the next caller at once: when their call ends (legs) and when they sign in
    # or set themselves available (agents).
    calls.legs.agent_free = calls.queues.offer_next_to
    agents.on_available = calls.queues.offer_next_to
    callbacks = Callbacks(gw, calls.queues, calls.answers, calls.caller.hangup)
    event_webhooks = EventWebhooks(store, settings, EventPoster())
    runner = _job_runner(gw, metrics, calls, callbacks, event_webhooks)
    return Services(
        sandbox_controls=SandboxControls(settings) if settings.sandbox else None,
        gw=gw,
        answers=calls.answers,
        caller=calls.caller,
        callbacks=callbacks,
        legs=calls.agent_legs,
        room_events=calls.room_events,
        records=Records(store),
        transfers=calls.transfers,
        summaries=calls.summaries,
        agents=agents,
        teams=TeamService(store),
        views=Views(store),
        runner=runner,
        metrics=metrics,
        event_webhooks=event_webhooks,
        api_keys=ApiKeys(store),
        board=Board(store, settings.service_level_s, settings.board_timezone),
        listen_in=ListenIn(
            store, gw.rooms, settings.livekit_url.replace("https://", "wss://").replace("http://", "ws://")
        ),
        web_callers=calls.web_callers,
    )


def _gateway(settings: Settings, store: Store) -> Gateway:
    """The adapters: Twilio, LiveKit, OpenAI (when a key is set), the store and the public URLs."""
    telephony = TwilioTelephony(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_phone_number,
        base_url=settings.twilio_api_base_url,
        timeout_s=settings.provider_timeout_s,
    )
    rooms = LiveKitRooms(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret,
        timeout_s=settings.provider_timeout_s,
    )
    summarizer = (
        OpenAISummarizer(settings.openai_api_key, settings.openai_model, base_url=settings.openai_base_url)
        if settings.openai_api_key
        else None
    )
    return Gateway(
        settings=settings,
        store=store,
        telephony=telephony,
        rooms=rooms,
        summarizer=summarizer,
        urls=PublicUrls(settings.public_origin),
    )


@dataclass(frozen=True)
class _CallServices:
    livekit: LiveKitHealth
    answers: Answers
    legs: Legs
    queues: Queues
    routing: Routing
    summaries: Summaries
    transfers: TransferService
    transfer_events: TransferEvents
    agent_legs: AgentLegs
    caller: Caller
    room_events: RoomEvents
    web_callers: WebCallers


def _call_services(gw: Gateway, metrics: Metrics) -> _CallServices:
    """The services that handle calls, leaves first: each is handed the collaborators it names, so
    every dependency is a constructor argument here. The leg, caller and room services report to
    the transfer process manager only through the LegOutcomes port it implements."""
    livekit = LiveKitHealth()
    answers = Answers(gw)
    legs = Legs(gw)
    queues = Queues(gw, legs)
    routing = Routing(gw, legs, queues)
    summaries = Summaries(gw, metrics.provider_error)
    moves = TransferMoves(gw, legs, routing)
    transfers = TransferService(gw, moves, queues)
    transfer_events = TransferEvents(gw.store, legs, moves)
    agent_legs = AgentLegs(gw, legs, routing, answers, summaries, transfer_events)
    caller = Caller(gw, legs, routing, answers, transfer_events, livekit)
    room_events = RoomEvents(
        gw.store,
        legs,
        agent_legs,
        routing,
        transfer_events,
        rooms=gw.rooms,
        transcribe=gw.settings.transcription_enabled,
        end_call=caller.hangup,
        web_rejoin_s=gw.settings.web_call_rejoin_s,
    )
    web_callers = WebCallers(gw, routing, caller)
    return _CallServices(
        livekit=livekit,
        answers=answers,
        legs=legs,
        queues=queues,
        routing=routing,
        summaries=summaries,
        transfers=transfers,
        transfer_events=transfer_events,
        agent_legs=agent_legs,
        caller=caller,
        room_events=room_events,
        web_callers=web_callers,
    )


def _job_runner(
    gw: Gateway, metrics: Metrics, calls: _CallServices, callbacks: Callbacks, event_webhooks: EventWebhooks
) -> JobRunner:
    """The job runner, with a handler for every kind of job."""
    runner = JobRunner(gw.store, threads=gw.settings.job_threads, lease_s=gw.settings.job_lease_s)
    ProviderWork(
        gw,
        legs=calls.legs,
        routing=calls.routing,
        caller=calls.caller,
        agent_legs=calls.agent_legs,
        transfer_events=calls.transfer_events,
        summaries=calls.summaries,
        livekit=calls.livekit,
        provider_errors=metrics.provider_error,
        room_events=calls.room_events,
        web_callers=calls.web_callers,
    ).register(runner)
    callbacks.register(runner)
    calls.queues.register(runner)
    event_webhooks.register(runner)
    return runner


def run_settings(settings: Settings) -> Settings:
    """The settings the app runs with: in sandbox mode (no provider credentials at all), the
    doubles' loopback ports and credentials (what ``doctor`` checks, too)."""
    if not settings.sandbox:
        return settings
    from gateway.sandbox.runtime import Sandbox  # (the doubles' code is loaded in sandbox mode only)

    return Sandbox(settings).settings


def for_environment(settings: Settings) -> Services:
    """The services ``create_app`` serves for settings read from the environment: the real
    providers, or in sandbox mode the loopback doubles, run by this process once it starts."""
    sandbox = None
    if settings.sandbox:
        from gateway.sandbox.runtime import Sandbox

        sandbox = Sandbox(settings)
        settings = sandbox.settings
    try:
        services = build(settings)
    except DBAPIError as exc:
        # Built without touching the database, so `flask doctor` (the tool for this moment)
        # still runs; serving (gunicorn, python -m gateway) stops at start with this one line.
        services = build(settings, migrate=False)
        services.startup_error = database_unreachable(settings.database_url, exc)
    if sandbox is not None:
        services.sandbox = sandbox
        services.sandbox_controls = SandboxControls(settings, sandbox)
    return services


def database_unreachable(url: str, exc: BaseException) -> str:
    """One line an operator can act on (no SQL, no traceback, no password)."""
    from gateway.ops.checks import database_error

    shown = make_url(url).render_as_string(hide_password=True)
    return (
        f"cannot start: the database {shown} is unreachable ({database_error(exc)}); check DATABASE_URL and that "
        "the database runs, then `flask --app gateway doctor`"
    )
