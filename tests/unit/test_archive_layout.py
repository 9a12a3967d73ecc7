"""The archive's pure parts: paths, manifest, schema guard, the row checksum (value by value and over
Arrow, which must agree), the archiver's settings and `make run`'s archive schedule."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pytest

from collector_ecs.archive.checksum import RowChecksum
from collector_ecs.archive.config import load_archive_settings
from collector_ecs.archive.parquet import arrow_schema
from collector_ecs.config import ConfigError
from devstack.plan import make_plan, next_archive_run
from rdc_common.archive_layout import (
    SCHEMAS,
    Column,
    FileEntry,
    LayoutError,
    Manifest,
    file_key,
    load_manifest,
    manifest_key,
    parse_file_key,
    reference_checksum,
    schema_mismatch,
    table_name,
)

pytestmark = pytest.mark.unit
UTC = dt.UTC
DAY = dt.date(2026, 11, 16)


def test_hive_paths_and_back():
    assert file_key("tick_data", DAY, "ESZ6") == "tick_data/date=2026-11-16/symbol=ESZ6/part-0.parquet"
    assert manifest_key("level2_data", DAY) == "level2_data/date=2026-11-16/_manifest.json"
    assert parse_file_key(file_key("quote_data", DAY, "ES.c/0")) == ("quote_data", DAY, "ES.c/0")
    assert "/" not in file_key("quote_data", DAY, "ES.c/0").split("symbol=")[1].removesuffix("/part-0.parquet")
    with pytest.raises(LayoutError):
        parse_file_key("tick_data/date=2026-11-16/part-0.parquet")
    assert table_name("ticks") == "tick_data" and table_name("LEVEL2") == "level2_data"
    with pytest.raises(LayoutError, match="unknown table 'bars'"):
        table_name("bars")


def test_manifest_round_trips():
    t = dt.datetime(2026, 11, 16, 15, 0, 0, 123456, tzinfo=UTC)
    entry = FileEntry("ESZ6", file_key("tick_data", DAY, "ESZ6"), 10, 999, "ab" * 32, "cd" * 32, t, t, 1, 10)
    m = Manifest("tick_data", DAY, (entry,), t)
    back = load_manifest(m.dumps())
    assert back.files == (entry,) and back.rows == 10 and back.bytes == 999 and back.columns == SCHEMAS["tick_data"]
    with pytest.raises(LayoutError):
        load_manifest(b'{"format": "something else"}')


def test_every_database_column_must_be_declared():
    catalog = {c.name: c.pg_type for c in SCHEMAS["tick_data"]}
    assert schema_mismatch("tick_data", catalog) == []
    problems = schema_mismatch("tick_data", {**catalog, "venue_at": "timestamp with time zone"})
    assert len(problems) == 1 and "tick_data.venue_at" in problems[0] and "archive_layout.py" in problems[0]
    assert "bigint in the database" in schema_mismatch("tick_data", {**catalog, "size": "bigint"})[0]


EDGE_COLUMNS = (Column("ts", "timestamp[us, UTC]", True), Column("x", "float64", True), Column("s", "string", True),
                Column("b", "bool", True), Column("l", "list<int32>", True), Column("n", "int64"))


def _edge_rows():
    t = dt.datetime(2026, 11, 16, 23, 59, 59, 999999, tzinfo=UTC)
    return [
        (t, -0.0, "ESZ6", True, [1, None, 3], 1),
        (None, float("nan"), None, None, None, -(2**63)),
        (dt.datetime(1970, 1, 1, tzinfo=UTC), math.inf, "é€", False, [], 2**63 - 1),
        (t, 0.0, "", False, [None], 0),
    ]


def test_the_arrow_checksum_is_the_reference_checksum_however_rows_are_chunked():
    rows = _edge_rows()
    expected = reference_checksum(EDGE_COLUMNS, rows)
    schema = pa.schema([pa.field("ts", pa.timestamp("us", tz="UTC")), pa.field("x", pa.float64()),
                        pa.field("s", pa.string()), pa.field("b", pa.bool_()), pa.field("l", pa.list_(pa.int32())),
                        pa.field("n", pa.int64())])
    table = pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)
    for chunk in (1, 2, 4):
        c = RowChecksum(EDGE_COLUMNS)
        for batch in table.to_batches(max_chunksize=chunk):
            c.update(batch)
        assert c.hexdigest() == expected
    # Sliced arrays (a batch that starts mid-buffer) hash the same.
    c = RowChecksum(EDGE_COLUMNS)
    c.update(table.slice(0, 1).to_batches()[0])
    c.update(table.slice(1).combine_chunks().to_batches()[0])
    assert c.hexdigest() == expected


def test_the_checksum_sees_every_difference():
    rows = _edge_rows()
    base = reference_checksum(EDGE_COLUMNS, rows)
    variants = [
        [(rows[0][0], 0.0, *rows[0][2:])] + rows[1:],  # -0.0 -> 0.0
        [rows[0][:4] + ([1, 0, 3], 1)] + rows[1:],  # a NULL element -> 0
        [rows[0][:4] + ([1, 3], 1)] + rows[1:],  # an element gone
        rows[1:] + rows[:1],  # order
        [rows[0][:2] + (None,) + rows[0][3:]] + rows[1:],  # a value -> NULL
        rows[:3] + [rows[3][:2] + (None,) + rows[3][3:]],  # "" -> NULL
    ]
    assert len({reference_checksum(EDGE_COLUMNS, v) for v in variants} | {base}) == len(variants) + 1


def test_the_arrow_schema_is_exact():
    s = arrow_schema("level2_data")
    assert s.field("timestamp").type == pa.timestamp("us", tz="UTC") and not s.field("timestamp").nullable
    assert s.field("bid_orders").type == pa.list_(pa.int32())
    assert arrow_schema("tick_data").field("cumulative_volume").nullable


def test_archive_settings():
    env = {"DATABASE_URL": "postgresql://u@h/db", "ARCHIVE_URL": "s3://bucket/prefix",
           "RDC_CLOCK_START": "2026-11-24T00:59:00Z", "RDC_CLOCK_SPEED": "1", "RDC_CLOCK_ANCHOR": "0"}
    s = load_archive_settings({**env, "RDC_CLOCK_ANCHOR": str(__import__("time").time())})
    assert s.retention_days == {"tick_data": 90, "quote_data": 30, "level2_data": 14}
    # 00:59 is inside the hour's margin after 2026-11-23 ends: the last closed day is the 22nd.
    assert s.closed_through() == dt.date(2026, 11, 22)
    assert load_archive_settings({**env, "RETENTION_DAYS_LEVEL2": "0"}).retention_days["level2_data"] == 0
    with pytest.raises(ConfigError, match="ARCHIVE_URL is not set"):
        load_archive_settings({k: v for k, v in env.items() if k != "ARCHIVE_URL"})
    with pytest.raises(ConfigError, match="RETENTION_DAYS_TICKS must be a whole number"):
        load_archive_settings({**env, "RETENTION_DAYS_TICKS": "-1"})


def test_make_run_archives_daily_after_each_utc_day_closes():
    assert next_archive_run(dt.datetime(2026, 11, 24, 0, 30, tzinfo=UTC)) == dt.datetime(2026, 11, 24, 1, 5,
                                                                                          tzinfo=UTC)
    assert next_archive_run(dt.datetime(2026, 11, 24, 1, 5, tzinfo=UTC)) == dt.datetime(2026, 11, 25, 1, 5, tzinfo=UTC)
    plan = make_plan({"RDC_LOCAL_DIR": "/tmp/x"}, Path("/repo"), python="/venv/bin/python")
    assert plan.archive_dir == Path("/tmp/x/archive") and plan.envs["archive"]["ARCHIVE_URL"] == "/tmp/x/archive"
    assert plan.commands["archive"] == ["/venv/bin/python", "-m", "collector_ecs", "archive"]
    assert plan.envs["api"]["ARCHIVE_DOWNLOAD_URL"] == "http://127.0.0.1:8080/archive"
    assert "RITHMIC_PASSWORD" not in plan.envs["archive"]
    s3 = make_plan({"ARCHIVE_URL": "s3://b/p"}, Path("/repo"))
    assert s3.archive_dir is None and s3.envs["api"]["ARCHIVE_DOWNLOAD_URL"] == ""
