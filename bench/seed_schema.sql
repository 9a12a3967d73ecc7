-- The old design, for the seed-style ingest figure only (created in the bench's own database,
-- never in sql/): unpartitioned tables with a serial key, six secondary indexes each, and two
-- per-row triggers each (a BEFORE trigger normalising the row and stamping it, an AFTER trigger
-- keeping per-symbol statistics current), written with one INSERT per row in autocommit.

CREATE TABLE seed_symbol_stats (
    table_name  text        NOT NULL,
    symbol      text        NOT NULL,
    row_count   bigint      NOT NULL DEFAULT 0,
    last_update timestamptz,
    PRIMARY KEY (table_name, symbol)
);

CREATE FUNCTION seed_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.symbol := upper(trim(NEW.symbol));
    NEW.exchange := upper(trim(NEW.exchange));
    NEW.created_at := now();
    RETURN NEW;
END;
$$;

CREATE FUNCTION seed_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seed_symbol_stats AS s (table_name, symbol, row_count, last_update)
    VALUES (TG_TABLE_NAME, NEW.symbol, 1, NEW."timestamp")
    ON CONFLICT (table_name, symbol) DO UPDATE
    SET row_count = s.row_count + 1, last_update = GREATEST(s.last_update, EXCLUDED.last_update);
    RETURN NULL;
END;
$$;

CREATE TABLE seed_tick_data (
    id                bigserial PRIMARY KEY,
    "timestamp"       timestamptz      NOT NULL,
    symbol            text             NOT NULL,
    exchange          text             NOT NULL,
    price             double precision NOT NULL,
    size              integer          NOT NULL,
    aggressor         text,
    cumulative_volume bigint,
    received_at       timestamptz      NOT NULL,
    backfilled        boolean          NOT NULL DEFAULT false,
    created_at        timestamptz
);
CREATE INDEX seed_tick_ts_idx ON seed_tick_data ("timestamp");
CREATE INDEX seed_tick_symbol_idx ON seed_tick_data (symbol);
CREATE INDEX seed_tick_symbol_ts_idx ON seed_tick_data (symbol, "timestamp" DESC);
CREATE INDEX seed_tick_exchange_idx ON seed_tick_data (exchange);
CREATE INDEX seed_tick_price_idx ON seed_tick_data (price);
CREATE INDEX seed_tick_created_idx ON seed_tick_data (created_at);
CREATE TRIGGER seed_tick_before BEFORE INSERT ON seed_tick_data FOR EACH ROW EXECUTE FUNCTION seed_before_insert();
CREATE TRIGGER seed_tick_after AFTER INSERT ON seed_tick_data FOR EACH ROW EXECUTE FUNCTION seed_after_insert();

CREATE TABLE seed_quote_data (
    id          bigserial PRIMARY KEY,
    "timestamp" timestamptz      NOT NULL,
    symbol      text             NOT NULL,
    exchange    text             NOT NULL,
    bid_price   double precision,
    bid_size    integer,
    bid_orders  integer,
    ask_price   double precision,
    ask_size    integer,
    ask_orders  integer,
    received_at timestamptz      NOT NULL,
    created_at  timestamptz
);
CREATE INDEX seed_quote_ts_idx ON seed_quote_data ("timestamp");
CREATE INDEX seed_quote_symbol_idx ON seed_quote_data (symbol);
CREATE INDEX seed_quote_symbol_ts_idx ON seed_quote_data (symbol, "timestamp" DESC);
CREATE INDEX seed_quote_exchange_idx ON seed_quote_data (exchange);
CREATE INDEX seed_quote_bid_idx ON seed_quote_data (bid_price);
CREATE INDEX seed_quote_created_idx ON seed_quote_data (created_at);
CREATE TRIGGER seed_quote_before BEFORE INSERT ON seed_quote_data FOR EACH ROW EXECUTE FUNCTION seed_before_insert();
CREATE TRIGGER seed_quote_after AFTER INSERT ON seed_quote_data FOR EACH ROW EXECUTE FUNCTION seed_after_insert();

CREATE TABLE seed_level2_data (
    id          bigserial PRIMARY KEY,
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
    received_at timestamptz        NOT NULL,
    created_at  timestamptz
);
CREATE INDEX seed_level2_ts_idx ON seed_level2_data ("timestamp");
CREATE INDEX seed_level2_symbol_idx ON seed_level2_data (symbol);
CREATE INDEX seed_level2_symbol_ts_idx ON seed_level2_data (symbol, "timestamp" DESC);
CREATE INDEX seed_level2_exchange_idx ON seed_level2_data (exchange);
CREATE INDEX seed_level2_type_idx ON seed_level2_data (update_type);
CREATE INDEX seed_level2_created_idx ON seed_level2_data (created_at);
CREATE TRIGGER seed_level2_before BEFORE INSERT ON seed_level2_data FOR EACH ROW EXECUTE FUNCTION seed_before_insert();
CREATE TRIGGER seed_level2_after AFTER INSERT ON seed_level2_data FOR EACH ROW EXECUTE FUNCTION seed_after_insert();
