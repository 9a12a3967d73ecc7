"""Benchmarks: ingest, freshness, API latency and scale, measured side by side in one run
(`python -m bench`, `make bench`); results go to bench/results/latest.{json,md}."""
