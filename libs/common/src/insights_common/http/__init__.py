"""The HTTP side every service shares: problems, cursors and pages, guards, access, rate limits,
metrics, and the routers of members, the audit trail and the platforms' sources."""
