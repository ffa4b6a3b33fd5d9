"""One gateway process for the crash tests: ``python -m tests.faults.gateway_process PORT [--standby]``.

Configured only by environment variables (real-credential mode, pointing at the loopback
doubles the test process runs), built by the real application factory, served by a
threaded werkzeug server; background work (the job runner) starts before the first request,
as gunicorn's post_worker_init does. The test SIGKILLs it at will.

``--standby``: build the app (imports, schema check) and then wait for a line on stdin before
binding the port and starting background work — the replacement for a killed process is warm
and takes over in milliseconds instead of the ~2 s a cold Python start costs. It holds nothing
the killed process had: everything it knows comes from the database after ``go``.
"""

from __future__ import annotations

import logging
import sys

from werkzeug.serving import WSGIRequestHandler, make_server


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1])
    standby = "--standby" in sys.argv[2:]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    from gateway import create_app

    app = create_app()
    if standby:
        print("STANDBY", flush=True)
        if not sys.stdin.readline():  # the test went away
            return
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=_Quiet)
    app.extensions["gateway"].start()
    print(f"READY {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
