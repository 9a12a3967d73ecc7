"""The RithmicDataCollector HTTP API: routes, parameter rules and data access for the Chalice app."""
