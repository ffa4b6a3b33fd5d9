"""Gunicorn settings for Heroku-style hosts: PORT and WEB_CONCURRENCY from the environment.

gthread workers: each worker serves many requests at once on threads, and the job runner's
threads share the worker's LiveKit event loop.

Console event streams (GET /api/events) hold no thread: once a stream's first events are
written, its socket goes to the worker's one stream notifier (gateway/web/streams.py), which
polls the store once per tick for every console of the worker and writes to all of them from
one selector loop. The request thread is free again at once, so hundreds of open consoles
leave the threads to Twilio's and LiveKit's webhooks. CONSOLE_STREAM_DETACH=0 turns that off:
streams then hold a thread each, at most threads - WEBHOOK_THREADS_RESERVED per worker, and
consoles beyond that are served brief streams (short polling, every ~4-6 s, holding nothing).
"""
import contextlib
import gc
import os
import sys

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# Threads a worker keeps for webhooks and API calls whatever the number of open consoles, when
# streams hold threads (CONSOLE_STREAM_DETACH=0, or a server that cannot hand a socket over): they
# get at most threads - this many; consoles beyond that are served brief streams (polling).
WEBHOOK_RESERVE = int(os.environ.get("WEBHOOK_THREADS_RESERVED", "8"))
# Hand console streams' sockets to the worker's notifier (no thread per open console).
STREAM_DETACH = os.environ.get("CONSOLE_STREAM_DETACH", "1").strip().lower() not in ("0", "false", "no", "off")
# A webhook takes the GIL back after each of its database round trips. While another thread of the
# worker computes (the stream notifier reading the board for open boards, a job), it waits up to
# Python's switch interval each time, some ten times per webhook: at the default 5 ms a 20 ms burst
# elsewhere added tens of ms to a webhook (p99 75-95 ms against 20-45 ms at 1 ms, ten round trips
# beside such bursts). 1 ms bounds that wait, at the cost of more frequent switches.
GIL_SWITCH_INTERVAL_S = 0.001
timeout = 30
graceful_timeout = 25  # platforms send SIGTERM then SIGKILL after 30 s
keepalive = 5
preload_app = False  # each worker builds its own app, event loop and job runner after the fork
accesslog = "-"
# X-Forwarded-Proto (the scheme) only from the proxies the app trusts too (gateway.ops).
forwarded_allow_ips = os.environ.get("TRUSTED_PROXY_ADDRESSES") or "127.0.0.1,::1"


def post_worker_init(worker):
    """Start background work right after the fork rather than on the first request."""
    console = worker.wsgi.extensions.get("console")  # bench's reference apps have no console
    if console is not None:
        console.max_open = max(1, threads - WEBHOOK_RESERVE)
        console.detach = STREAM_DETACH and worker_class == "gthread"
    worker.wsgi.extensions["gateway"].start()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # What exists now (modules, the app, clients, the pool) lives as long as the worker: keep it out
    # of the cyclic garbage collector, whose full passes over it (~180k objects) paused every thread
    # of the worker for 50-70 ms, the tail of the transfer-overhead figures.
    gc.freeze()


def _stop(worker):
    console = worker.wsgi.extensions.get("console")
    if console is not None:
        console.shutdown()  # open streams end; browsers reconnect to another worker
    worker.wsgi.extensions["gateway"].stop()


def worker_int(worker):
    _stop(worker)


def worker_exit(server, worker):
    with contextlib.suppress(Exception):  # stopped already by worker_int
        _stop(worker)
