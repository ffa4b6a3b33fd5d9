"""Use cases: inbound calls, routing, agent legs, transfers, summaries, and the job runner."""
