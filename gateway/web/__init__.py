"""Flask blueprints: translate HTTP to service calls and domain errors to status codes."""
