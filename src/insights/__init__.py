"""User Insights: the `insights` command and the embedded (one-process) deployment."""
