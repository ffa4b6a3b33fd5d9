"""The domain: calls, agent legs and transfers as explicit state machines.

Plain Python — no Flask, no database, no network — so every rule is testable in
microseconds and the same rules hold in every worker process.
"""
