from gateway.adapters.store.db import StaleState, Store  # noqa: F401
