-- Core schema: the three market-data tables (partitioned by day on the exchange's
-- timestamp), the desired subscription set, and the collector's bookkeeping.
-- Every statement is idempotent: the compose init, the migration runner and a
-- second `make run` may all apply this file.

CREATE SEQUENCE IF NOT EXISTS tick_data_id_seq;
CREATE SEQUENCE IF NOT EXISTS quote_data_id_seq;
CREATE SEQUENCE IF NOT EXISTS level2_data_id_seq;

-- Trades. `timestamp` is the exchange's event time (ssboe/usecs), never the local clock;
-- `received_at` is when the collector read it. `id` breaks ties between rows with the
-- same timestamp so cursor paging is exact.
CREATE TABLE IF NOT EXISTS tick_data (
    id                bigint           NOT NULL DEFAULT nextval('tick_data_id_seq'),
    "timestamp"       timestamptz      NOT NULL,
    symbol            text             NOT NULL,
    exchange          text             NOT NULL,
    price             double precision NOT NULL,
    size              integer          NOT NULL,
    aggressor         text,            -- 'BUY' | 'SELL' | NULL when the exchange did not say
    cumulative_volume bigint,
    received_at       timestamptz      NOT NULL,
    backfilled        boolean          NOT NULL DEFAULT false
) PARTITION BY RANGE ("timestamp");

-- Best bid/offer.
CREATE TABLE IF NOT EXISTS quote_data (
    id          bigint           NOT NULL DEFAULT nextval('quote_data_id_seq'),
    "timestamp" timestamptz      NOT NULL,
    symbol      text             NOT NULL,
    exchange    text             NOT NULL,
    bid_price   double precision,
    bid_size    integer,
    bid_orders  integer,
    ask_price   double precision,
    ask_size    integer,
    ask_orders  integer,
    received_at timestamptz      NOT NULL
) PARTITION BY RANGE ("timestamp");

-- One row per OrderBook message, levels kept as parallel arrays as Rithmic sends them.
CREATE TABLE IF NOT EXISTS level2_data (
    id          bigint             NOT NULL DEFAULT nextval('level2_data_id_seq'),
    "timestamp" timestamptz        NOT NULL,
    symbol      text               NOT NULL,
    exchange    text               NOT NULL,
    update_type text               NOT NULL,
    bid_price   double precision[] NOT NULL,
    bid_size    integer[]          NOT NULL,
    bid_orders  integer[]          NOT NULL,
    ask_price   double precision[] NOT NULL,
    ask_size    integer[]          NOT NULL,
    ask_orders  integer[]          NOT NULL,
    received_at timestamptz        NOT NULL
) PARTITION BY RANGE ("timestamp");

-- Rows whose timestamp falls outside every daily partition land here instead of failing
-- the whole batch.
CREATE TABLE IF NOT EXISTS tick_data_default PARTITION OF tick_data DEFAULT;
CREATE TABLE IF NOT EXISTS quote_data_default PARTITION OF quote_data DEFAULT;
CREATE TABLE IF NOT EXISTS level2_data_default PARTITION OF level2_data DEFAULT;

-- The API's reads are "one symbol, a time range, newest or oldest first"; nothing else
-- is indexed because every index is paid for on the ingest path.
CREATE INDEX IF NOT EXISTS tick_data_symbol_ts_idx   ON tick_data   (symbol, "timestamp", id);
CREATE INDEX IF NOT EXISTS quote_data_symbol_ts_idx  ON quote_data  (symbol, "timestamp", id);
CREATE INDEX IF NOT EXISTS level2_data_symbol_ts_idx ON level2_data (symbol, "timestamp", id);

-- Creates the daily partitions of the three data tables from `from_day` for `days` days.
-- A day whose rows already sit in the default partition is skipped: attaching it would
-- fail, and those rows stay readable where they are.
CREATE OR REPLACE FUNCTION rdc_ensure_partitions(from_day date, days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    t text;
    d date;
    part text;
    created integer := 0;
    has_rows boolean;
BEGIN
    FOREACH t IN ARRAY ARRAY['tick_data', 'quote_data', 'level2_data'] LOOP
        FOR i IN 0..days - 1 LOOP
            d := from_day + i;
            part := format('%s_%s', t, to_char(d, 'YYYYMMDD'));
            IF to_regclass(part) IS NULL THEN
                EXECUTE format(
                    'SELECT EXISTS (SELECT 1 FROM %I WHERE "timestamp" >= %L AND "timestamp" < %L)',
                    t || '_default', d::timestamptz AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC')
                    INTO has_rows;
                IF NOT has_rows THEN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        part, t, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
                    created := created + 1;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;

-- The desired subscription set. The API writes it, the collector reconciles with it at
-- start-up and records the outcome, so a request survives a restart of anything.
CREATE TABLE IF NOT EXISTS subscriptions (
    symbol       text        PRIMARY KEY,
    exchange     text        NOT NULL,
    desired      boolean     NOT NULL DEFAULT true,
    status       text        NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'active', 'failed', 'unsubscribed')),
    reason       text,
    requested_at timestamptz NOT NULL DEFAULT now(),
    status_since timestamptz NOT NULL DEFAULT now()
);

-- Connects and disconnects of the Rithmic session.
CREATE TABLE IF NOT EXISTS collector_sessions (
    id              bigserial   PRIMARY KEY,
    collector_id    text        NOT NULL,
    event           text        NOT NULL,   -- connected | disconnected | forced_logout | login_failed
    plant           text,
    detail          text,
    at              timestamptz NOT NULL DEFAULT now()
);

-- Every batch the writer commits, so a batch replayed from the spool after an
-- ambiguous failure is recognised and not written twice.
CREATE TABLE IF NOT EXISTS ingest_batches (
    batch_id     uuid        PRIMARY KEY,
    table_name   text        NOT NULL,
    row_count    integer     NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);

-- Maintained row counters, so /api/stats answers in milliseconds at any table size.
-- Updated by the writer in the same transaction as each batch (one row per table and
-- symbol, so concurrent writers of different symbols do not contend).
CREATE TABLE IF NOT EXISTS ingest_counters (
    table_name  text        NOT NULL,
    symbol      text        NOT NULL,
    exchange    text        NOT NULL,
    row_count   bigint      NOT NULL DEFAULT 0,
    first_ts    timestamptz,
    last_ts     timestamptz,
    PRIMARY KEY (table_name, symbol)
);

-- Outages of the market-data stream: what was missed, why, and whether trades were
-- recovered from the history plant afterwards.
CREATE TABLE IF NOT EXISTS gaps (
    id               bigserial   PRIMARY KEY,
    symbol           text        NOT NULL,
    exchange         text        NOT NULL,
    gap_start        timestamptz NOT NULL,
    gap_end          timestamptz,
    cause            text        NOT NULL,
    dropped_rows     bigint      NOT NULL DEFAULT 0,
    backfilled       boolean     NOT NULL DEFAULT false,
    backfilled_rows  bigint      NOT NULL DEFAULT 0,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS gaps_symbol_start_idx ON gaps (symbol, gap_start);

-- The collector's heartbeat, read by the API's /health and /api/stats.
CREATE TABLE IF NOT EXISTS collector_heartbeat (
    collector_id     text        PRIMARY KEY,
    connected        boolean     NOT NULL,
    last_message_at  timestamptz,
    messages_per_s   double precision NOT NULL DEFAULT 0,
    queue_depth      integer     NOT NULL DEFAULT 0,
    spool_bytes      bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

SELECT rdc_ensure_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9);
