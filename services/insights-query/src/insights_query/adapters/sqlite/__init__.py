"""The embedded store: raw events per message and per user, and rows recomputed from them.

Tables are prefixed q_ in the SQLite file the services share. A batch is applied in one
transaction: its events are stored (deduplicated by (app_id, event_id)), then every message and
user it touches is recomputed from all of its stored events with the pure domain rules. Lists
of ids go to SQLite as one JSON array (json_each), so every statement is a fixed string.
"""

from insights_query.adapters.sqlite.store import SqliteInsightsStore

__all__ = ["SqliteInsightsStore"]
