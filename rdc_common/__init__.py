"""Pure code shared by the collector, the API and the simulator (no I/O)."""
