"""Benchmarks of the warm-transfer gateway, run as deployed (gunicorn + Postgres) against loopback doubles.

``python -m bench all`` (about 10 minutes) or ``python -m bench smoke`` (under 30 s, for CI). Not part of pytest.
"""
