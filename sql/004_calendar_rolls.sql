-- Recording for months: products followed as their front month, rolls, expiries, and the market
-- status the collector reports per symbol. Idempotent, like every migration.

-- A subscription ends as 'expired' when its contract stops trading.
ALTER TABLE subscriptions DROP CONSTRAINT IF EXISTS subscriptions_status_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_status_check
    CHECK (status IN ('pending', 'active', 'failed', 'unsubscribed', 'expired'));

-- kind 'product': the row stands for a product followed as its front month (symbol = the product
-- code, e.g. 'ES'); the collector keeps its current front contract subscribed and rolls it.
-- kind 'contract': a contract. `product` names the followed product that brought the contract in
-- (it is unsubscribed at expiry); NULL for a contract subscribed explicitly (never rolled).
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS kind text NOT NULL DEFAULT 'contract';
ALTER TABLE subscriptions DROP CONSTRAINT IF EXISTS subscriptions_kind_check;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_kind_check CHECK (kind IN ('contract', 'product'));
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS product text;

-- Every roll of a followed product: from the old front month to the new one, at the instant the
-- new one became front (the open of the roll date's session, on the collector's clock).
-- (product, to_symbol) is unique, so a collector restarted in the middle of a roll records it once.
CREATE TABLE IF NOT EXISTS rolls (
    id          bigserial   PRIMARY KEY,
    product     text        NOT NULL,
    exchange    text        NOT NULL,
    from_symbol text,       -- NULL for the first front month a product was followed with
    to_symbol   text        NOT NULL,
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product, to_symbol)
);
CREATE INDEX IF NOT EXISTS rolls_product_at_idx ON rolls (product, at);
GRANT SELECT ON rolls TO rdc_api;

-- Per symbol, what the collector's heartbeat says of its market: {"ESZ6": {"market": "open",
-- "next_close": "...", ...}, ...} (rdc_common.calendar.MarketState.as_json plus the last trade).
ALTER TABLE collector_heartbeat ADD COLUMN IF NOT EXISTS markets jsonb;
-- A gap record written from the on-disk pending file carries the id it was given there, so moving
-- the file into PostgreSQL twice (a flush interrupted after its INSERT committed) records it once.
ALTER TABLE gaps ADD COLUMN IF NOT EXISTS record_id uuid;
CREATE UNIQUE INDEX IF NOT EXISTS gaps_record_id_idx ON gaps (record_id);
-- The API may now subscribe products (kind) as well as contracts.
GRANT INSERT, UPDATE ON subscriptions TO rdc_api;
