"""insights-query: projects the contract events into a queryable store and answers the query API."""
