"""How big each benchmark is in each mode: tiny (the test suite), quick (`make bench QUICK=1`)
and full (`make bench`). One object, chosen once from the command line and passed down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    mode: str
    # simulator send rate (issue 3): seconds measured after its own 2 s warm-up
    send_seconds: float
    # ingest: seconds of warm-up, then seconds measured, per process under test
    ingest_warmup_s: float
    ingest_window_s: float
    # raw COPY: rows copied (cycling through the rows the decoder produced)
    copy_rows: int
    # seed-style: seconds of one-INSERT-per-row
    seed_window_s: float
    # freshness: messages per second per symbol (4 symbols), warm-up and window
    fresh_rate_per_symbol: int
    fresh_warmup_s: float
    fresh_window_s: float
    # API: requests per endpoint and path at the base size, and at each scale tier
    api_requests: int
    scale_requests: int
    # stored data: rows per day (all three tables, four symbols); the base API data is one day
    day_rows: int
    # scale tiers: (key, rows stored in total)
    tiers: tuple[tuple[str, int], ...]
    # rdc_client: downloads of the stored day's ticks of one symbol (raw pages and the client, each)
    client_reps: int = 3
    # decoding cost before/after issue 20: messages decoded per round, interleaved rounds
    decode_frames: int = 300_000
    decode_rounds: int = 5
    # the web console: page loads in Chromium (cold and warm each), and collector runs with live
    # snapshots off then on (pairs) for their ingest cost
    console_reps: int = 3
    live_pairs: int = 1
    # archive: seconds of the simulator's market (4 symbols at make run's rate) archived as one day
    archive_seconds: int = 10


TINY = Sizes(mode="tiny", send_seconds=1.0, ingest_warmup_s=1.0, ingest_window_s=1.5, copy_rows=20_000,
             seed_window_s=1.0, fresh_rate_per_symbol=500, fresh_warmup_s=1.0, fresh_window_s=1.5,
             api_requests=10, scale_requests=5, day_rows=10_000,
             tiers=(("10M", 20_000), ("100M", 40_000)), client_reps=1, decode_frames=20_000, decode_rounds=2,
             console_reps=1, live_pairs=1, archive_seconds=10)

QUICK = Sizes(mode="quick", send_seconds=1.0, ingest_warmup_s=2.5, ingest_window_s=2.5, copy_rows=100_000,
              seed_window_s=1.5, fresh_rate_per_symbol=5000, fresh_warmup_s=1.0, fresh_window_s=2.0,
              api_requests=10, scale_requests=8, day_rows=100_000,
              tiers=(("10M", 200_000), ("100M", 400_000)), client_reps=2, decode_frames=100_000,
              decode_rounds=3, console_reps=3, live_pairs=1, archive_seconds=120)

FULL = Sizes(mode="full", send_seconds=10.0, ingest_warmup_s=8.0, ingest_window_s=20.0, copy_rows=2_000_000,
             seed_window_s=15.0, fresh_rate_per_symbol=5000, fresh_warmup_s=5.0, fresh_window_s=30.0,
             api_requests=150, scale_requests=100, day_rows=2_000_000,
             tiers=(("10M", 10_000_000), ("100M", 100_000_000)), client_reps=5, console_reps=7,
             live_pairs=3, archive_seconds=3000)

MODES = {s.mode: s for s in (TINY, QUICK, FULL)}
