-- A trade's two clocks (issue 20). `timestamp` stays the exchange's time of the trade (now from
-- LastTrade.source_*, which the collector reads first), truncated to the microsecond
-- timestamptz keeps; beside it:
--   timestamp_ns  the same exchange time in nanoseconds since the Unix epoch, exact; NULL when the
--                 message carried no nanoseconds (rows stored before this migration, backfilled
--                 trades: the history plant's replay has microseconds only)
--   gateway_at    when Rithmic's ticker plant stamped the trade (LastTrade.ssboe/usecs); NULL for
--                 older rows and backfilled trades
-- and the collector's heartbeat carries its exchange-to-collector latency per symbol.
--
-- Nullable columns without a default are a catalog change only: no partition is rewritten and
-- existing rows read as NULL in them, at any table size.
ALTER TABLE tick_data ADD COLUMN IF NOT EXISTS timestamp_ns bigint;
ALTER TABLE tick_data ADD COLUMN IF NOT EXISTS gateway_at timestamptz;

COMMENT ON COLUMN tick_data."timestamp" IS
    'exchange time of the trade (LastTrade source_ssboe/source_usecs, else ssboe/usecs), microseconds';
COMMENT ON COLUMN tick_data.timestamp_ns IS
    'exchange time of the trade in nanoseconds since the Unix epoch (source_ssboe/source_nsecs); NULL when not carried';
COMMENT ON COLUMN tick_data.gateway_at IS
    'when Rithmic''s ticker plant stamped the trade (LastTrade ssboe/usecs); NULL when not carried';

-- {"<symbol>": {"p50_ms": .., "p99_ms": .., "samples": .., "as_of": ".."}}: received_at minus the
-- trade's exchange time, over the trades of the last heartbeat interval.
ALTER TABLE collector_heartbeat ADD COLUMN IF NOT EXISTS latency jsonb;
