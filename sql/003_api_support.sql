-- Per-minute row counters, maintained by the writer in each batch's transaction, so the
-- API's last-hour and last-24-hours figures are exact and still cost milliseconds.
CREATE TABLE IF NOT EXISTS ingest_minute_counters (
    table_name text        NOT NULL,
    symbol     text        NOT NULL,
    minute     timestamptz NOT NULL,
    row_count  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (table_name, minute, symbol)
);
GRANT SELECT ON ingest_minute_counters TO rdc_api;

-- /api/book looks for the latest snapshot at or before a time; without this it walks
-- every update back to it.
CREATE INDEX IF NOT EXISTS level2_data_snapshot_idx
    ON level2_data (symbol, "timestamp", id) WHERE update_type = 'SNAPSHOT_IMAGE';

-- RDS Proxy pins connections that set startup parameters; the role default covers it.
ALTER ROLE rdc_api SET statement_timeout = '5s';
