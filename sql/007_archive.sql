-- The Parquet archive's bookkeeping (collector_ecs.archive, rdc_common.archive_layout): which
-- table x UTC day x symbol files exist and were verified, which days are complete, and which days'
-- rows retention has since removed from PostgreSQL. Idempotent, like every migration.

-- One row per archived file, written only after the file was read back from the archive and its row
-- count and row checksum matched the rows read from PostgreSQL.
CREATE TABLE IF NOT EXISTS archived_days (
    table_name  text        NOT NULL CHECK (table_name IN ('tick_data', 'quote_data', 'level2_data')),
    day         date        NOT NULL,          -- the UTC day of the rows' "timestamp"
    symbol      text        NOT NULL,
    rows        bigint      NOT NULL,
    bytes       bigint      NOT NULL,          -- size of the Parquet file
    checksum    text        NOT NULL,          -- rdc-rows-sha256-v1 of its rows (rdc_common/archive_layout.py)
    sha256      text        NOT NULL,          -- of the file's bytes
    path        text        NOT NULL,          -- relative to ARCHIVE_URL: <table>/date=YYYY-MM-DD/symbol=S/part-0.parquet
    min_ts      timestamptz,
    max_ts      timestamptz,
    min_id      bigint,
    max_id      bigint,
    archived_at timestamptz NOT NULL,
    verified_at timestamptz NOT NULL,
    PRIMARY KEY (table_name, day, symbol)
);
-- The API lists one symbol's files over a range of days.
CREATE INDEX IF NOT EXISTS archived_days_symbol_idx ON archived_days (symbol, table_name, day);

-- One row per (table, day) whose every symbol is archived and whose manifest
-- (<table>/date=YYYY-MM-DD/_manifest.json) was written after them. Retention drops a day's partition
-- only when this row exists and PostgreSQL's rows still match the archived counts, and then sets
-- pg_dropped_at: from that moment the archive is the only copy of the day.
CREATE TABLE IF NOT EXISTS archive_manifests (
    table_name    text        NOT NULL CHECK (table_name IN ('tick_data', 'quote_data', 'level2_data')),
    day           date        NOT NULL,
    symbols       integer     NOT NULL,
    rows          bigint      NOT NULL,
    bytes         bigint      NOT NULL,
    path          text        NOT NULL,
    written_at    timestamptz NOT NULL,
    pg_dropped_at timestamptz,
    PRIMARY KEY (table_name, day)
);

GRANT SELECT ON archived_days, archive_manifests TO rdc_api;
