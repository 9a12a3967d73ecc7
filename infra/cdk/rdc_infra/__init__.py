"""Constructs and stacks for RithmicDataCollector on AWS (network, data, collector, API, monitoring)."""
