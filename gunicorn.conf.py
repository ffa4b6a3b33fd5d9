"""Gunicorn settings for Heroku-style hosts: PORT and WEB_CONCURRENCY from the environment.

gthread workers: each worker serves many requests at once on threads, so a long-lived
console event stream never blocks Twilio's webhooks, and the job runner's threads share
the worker's LiveKit event loop.
"""
import gc
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "32"))
# Threads a worker keeps for webhooks and API calls whatever the number of open consoles: a console
# event stream holds a thread while open, so streams get at most threads - this many; consoles
# beyond that are served brief streams (polling) that hold none.
WEBHOOK_RESERVE = int(os.environ.get("WEBHOOK_THREADS_RESERVED", "8"))
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
    worker.wsgi.extensions["gateway"].start()
    # What exists now (modules, the app, clients, the pool) lives as long as the worker: keep it out
    # of the cyclic garbage collector, whose full passes over it (~180k objects) paused every thread
    # of the worker for 50-70 ms, the tail of the transfer-overhead figures.
    gc.freeze()


def worker_int(worker):
    worker.wsgi.extensions["gateway"].stop()


def worker_exit(server, worker):
    try:
        worker.wsgi.extensions["gateway"].stop()
    except Exception:
        pass
