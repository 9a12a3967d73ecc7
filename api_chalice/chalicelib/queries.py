"""Every SQL statement the API runs, as constant text with $n parameters (never built from input).

Raw-row queries page in (timestamp, id) keyset order on the (symbol, timestamp, id) indexes.
An absent bound is passed as -infinity/infinity so one statement serves every combination.
"""

# -- health and status ------------------------------------------------------------------

PING = "SELECT 1"

LATEST_HEARTBEAT = """
SELECT collector_id, connected, last_message_at, messages_per_s, queue_depth, spool_bytes, latency, updated_at,
       markets
FROM collector_heartbeat
ORDER BY updated_at DESC
LIMIT 1
"""

# Totals from the writer-maintained counters: milliseconds at any table size.
COUNTER_TOTALS = """
SELECT table_name,
       coalesce(sum(row_count), 0)::bigint AS total_records,
       count(DISTINCT symbol) FILTER (WHERE row_count > 0) AS unique_symbols,
       min(first_ts) AS earliest,
       max(last_ts) AS latest
FROM ingest_counters
GROUP BY table_name
"""

# Rows per table since $1, from the per-minute counters the writer maintains: the window
# starts at the whole minute containing $1, so it is exact to the minute and costs milliseconds.
RECENT_COUNTS = """
SELECT table_name, coalesce(sum(row_count), 0)::bigint AS n
FROM ingest_minute_counters
WHERE minute >= date_trunc('minute', $1::timestamptz)
GROUP BY table_name
"""
RECENT_SYMBOL_COUNTS = """
SELECT symbol, table_name, coalesce(sum(row_count), 0)::bigint AS n
FROM ingest_minute_counters
WHERE minute >= date_trunc('minute', $1::timestamptz) AND table_name IN ('tick_data', 'level2_data')
GROUP BY symbol, table_name
"""

# Symbols with any row since $1, from the counters.
RECENT_SYMBOLS = """
SELECT symbol,
       max(exchange) AS exchange,
       max(last_ts) FILTER (WHERE table_name = 'tick_data') AS last_tick,
       max(last_ts) FILTER (WHERE table_name = 'level2_data') AS last_level2
FROM ingest_counters
WHERE last_ts >= $1
GROUP BY symbol
ORDER BY symbol
"""

# -- raw rows ---------------------------------------------------------------------------
# $1 symbol, $2 start (inclusive), $3 end (exclusive), $4/$5 the (timestamp, id) to continue
# after, $6 limit.

TICKS_DESC = """
SELECT id, "timestamp", symbol, exchange, price, size, aggressor, backfilled, timestamp_ns, gateway_at
FROM tick_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND ("timestamp", id) < ($4, $5)
ORDER BY "timestamp" DESC, id DESC
LIMIT $6
"""

TICKS_ASC = """
SELECT id, "timestamp", symbol, exchange, price, size, aggressor, backfilled, timestamp_ns, gateway_at
FROM tick_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND ("timestamp", id) > ($4, $5)
ORDER BY "timestamp", id
LIMIT $6
"""

QUOTES_DESC = """
SELECT id, "timestamp", symbol, exchange, bid_price, bid_size, bid_orders, ask_price, ask_size, ask_orders
FROM quote_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND ("timestamp", id) < ($4, $5)
ORDER BY "timestamp" DESC, id DESC
LIMIT $6
"""

QUOTES_ASC = """
SELECT id, "timestamp", symbol, exchange, bid_price, bid_size, bid_orders, ask_price, ask_size, ask_orders
FROM quote_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND ("timestamp", id) > ($4, $5)
ORDER BY "timestamp", id
LIMIT $6
"""

LEVEL2_DESC = """
SELECT id, "timestamp", symbol, exchange, update_type,
       bid_price, bid_size, bid_orders, ask_price, ask_size, ask_orders
FROM level2_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND ("timestamp", id) < ($4, $5)
ORDER BY "timestamp" DESC, id DESC
LIMIT $6
"""

LEVEL2_ASC = """
SELECT id, "timestamp", symbol, exchange, update_type,
       bid_price, bid_size, bid_orders, ask_price, ask_size, ask_orders
FROM level2_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" < $3 AND ("timestamp", id) > ($4, $5)
ORDER BY "timestamp", id
LIMIT $6
"""

# -- bars -------------------------------------------------------------------------------
# $1 symbol, $2 bucket width, $3 start, $4 end. Buckets are aligned to midnight UTC; open and
# close are the first and last trade in (timestamp, id) order.

BARS = """
SELECT date_bin($2::interval, "timestamp", TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       (array_agg(price ORDER BY "timestamp", id))[1] AS open,
       max(price) AS high,
       min(price) AS low,
       (array_agg(price ORDER BY "timestamp" DESC, id DESC))[1] AS close,
       sum(size)::bigint AS volume,
       count(*) AS trades,
       coalesce(sum(size) FILTER (WHERE aggressor = 'BUY'), 0)::bigint AS buy_volume,
       coalesce(sum(size) FILTER (WHERE aggressor = 'SELL'), 0)::bigint AS sell_volume,
       sum(price * size) / nullif(sum(size), 0) AS vwap
FROM tick_data
WHERE symbol = $1 AND "timestamp" >= $3 AND "timestamp" < $4
GROUP BY bucket
ORDER BY bucket
"""

# Bars of a continuous symbol: $1/$2/$3 the segments (contract, start inclusive, end exclusive),
# disjoint in time; $4 the bucket width. Each segment is an index range scan of its own contract, and a
# bucket that spans a roll aggregates the trades of whichever contract was front at each trade.
BARS_SEGMENTS = """
SELECT date_bin($4::interval, t."timestamp", TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       (array_agg(t.price ORDER BY t."timestamp", t.id))[1] AS open,
       max(t.price) AS high,
       min(t.price) AS low,
       (array_agg(t.price ORDER BY t."timestamp" DESC, t.id DESC))[1] AS close,
       sum(t.size)::bigint AS volume,
       count(*) AS trades,
       coalesce(sum(t.size) FILTER (WHERE t.aggressor = 'BUY'), 0)::bigint AS buy_volume,
       coalesce(sum(t.size) FILTER (WHERE t.aggressor = 'SELL'), 0)::bigint AS sell_volume,
       sum(t.price * t.size) / nullif(sum(t.size), 0) AS vwap
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS seg(symbol, lo, hi)
CROSS JOIN LATERAL (
    SELECT id, "timestamp", price, size, aggressor
    FROM tick_data
    WHERE symbol = seg.symbol AND "timestamp" >= seg.lo AND "timestamp" < seg.hi
) AS t
GROUP BY bucket
ORDER BY bucket
"""

# -- continuous symbols -----------------------------------------------------------------

# First and last row of table $1 for each of the symbols $2 (a product's possible contracts), from
# the counters the writer maintains in the transaction of the rows: where a continuous symbol can
# have rows at all, in milliseconds.
EXTENTS = """
SELECT symbol, first_ts, last_ts
FROM ingest_counters
WHERE table_name = $1 AND symbol = ANY($2::text[]) AND row_count > 0 AND first_ts IS NOT NULL
"""

# The span the gaps of symbols $1 cover; an open gap reaches to $2 (now).
GAPS_EXTENT = """
SELECT min(gap_start) AS first, max(coalesce(gap_end, greatest(gap_start, $2::timestamptz))) AS last
FROM gaps
WHERE symbol = ANY($1::text[])
"""

# The rolls the collector recorded for product $1, oldest first.
ROLLS = """
SELECT product, exchange, from_symbol, to_symbol, at, recorded_at
FROM rolls
WHERE product = $1
ORDER BY at, id
"""

# -- order book -------------------------------------------------------------------------

# The latest snapshot at or before $2, looking back no further than $3.
BOOK_SNAPSHOT_TIME = """
SELECT "timestamp"
FROM level2_data
WHERE symbol = $1 AND update_type = 'SNAPSHOT_IMAGE' AND "timestamp" <= $2 AND "timestamp" >= $3
ORDER BY "timestamp" DESC, id DESC
LIMIT 1
"""

# Every message from the snapshot's instant to $3 inclusive, in the order they were sent.
BOOK_ROWS = """
SELECT "timestamp", id, update_type, bid_price, bid_size, bid_orders, ask_price, ask_size, ask_orders
FROM level2_data
WHERE symbol = $1 AND "timestamp" >= $2 AND "timestamp" <= $3
ORDER BY "timestamp", id
"""

# -- subscriptions ----------------------------------------------------------------------

# $4 kind: 'contract' or 'product'. A contract subscribed here is explicit (product NULL): the
# collector never rolls it, even when a followed product had brought it in.
SUBSCRIBE = """
INSERT INTO subscriptions AS s (symbol, exchange, desired, status, reason, requested_at, status_since, kind, product)
VALUES ($1, $2, true, 'pending', NULL, $3, $3, $4, NULL)
ON CONFLICT (symbol) DO UPDATE
SET exchange = EXCLUDED.exchange, desired = true, status = 'pending', reason = NULL,
    requested_at = $3, status_since = $3, kind = EXCLUDED.kind, product = NULL
RETURNING symbol, exchange, requested_at
"""

# Unsubscribing a symbol the table knows keeps its exchange; $2, when given, must be that exchange
# (otherwise nothing changes and the caller answers a conflict).
UNSUBSCRIBE_KNOWN = """
UPDATE subscriptions
SET desired = false, status = 'pending', reason = NULL, requested_at = $3, status_since = $3
WHERE symbol = $1 AND ($2::text IS NULL OR exchange = $2::text)
RETURNING symbol, exchange, requested_at
"""

SUBSCRIPTION_EXCHANGE = """
SELECT exchange FROM subscriptions WHERE symbol = $1
"""

UNSUBSCRIBE_NEW = """
INSERT INTO subscriptions AS s (symbol, exchange, desired, status, reason, requested_at, status_since, kind)
VALUES ($1, $2, false, 'pending', NULL, $3, $3, $4)
ON CONFLICT (symbol) DO UPDATE
SET desired = false, status = 'pending', reason = NULL, requested_at = $3, status_since = $3
RETURNING symbol, exchange, requested_at
"""

LIST_SUBSCRIPTIONS = """
SELECT symbol, exchange, desired, status, reason, requested_at, status_since, kind, product
FROM subscriptions
ORDER BY symbol
"""

# Gaps that overlap [$2, $3): an open gap (no end yet) overlaps everything after its start.
GAPS_OVERLAPPING = """
SELECT gap_start, gap_end, cause, dropped_rows, backfilled, backfilled_rows, recorded_at
FROM gaps
WHERE symbol = $1 AND gap_start < $3 AND coalesce(gap_end, 'infinity'::timestamptz) >= $2
ORDER BY gap_start, id
LIMIT $4
"""


# -- the Parquet archive ----------------------------------------------------------------
# $1 symbol, $2 tables, $3 first day, $4 day after the last. Only days whose manifest is written:
# every file of such a day was read back and verified (collector_ecs.archive).

ARCHIVE_FILES = """
SELECT f.table_name, f.day, f.rows, f.bytes, f.sha256, f.path, f.min_ts, f.max_ts
FROM archived_days f JOIN archive_manifests m USING (table_name, day)
WHERE f.symbol = $1 AND f.table_name = ANY($2::text[]) AND f.day >= $3 AND f.day < $4
ORDER BY f.day, f.table_name
"""
