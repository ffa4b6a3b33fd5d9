"""Adapters: the store (SQLAlchemy), Twilio, LiveKit and OpenAI, each behind a small port."""
