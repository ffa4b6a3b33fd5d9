from gateway.adapters.store.db import Store, StaleState  # noqa: F401
