"""Plumbing shared by the services: the event bus port, SQLite, API keys, HTTP conventions."""
