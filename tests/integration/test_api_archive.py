"""GET /api/archive/<symbol>: the archived files of a symbol with download links, over a real
PostgreSQL and a real archive: local links (NGINX's /archive/ location) and presigned S3 links that a
client downloads from an S3 endpoint (moto's server) and reads as the rows PostgreSQL held."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import urllib.request

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from collector_ecs.archive.archiver import Archiver
from devstack.services import free_port
from rdc_common.archive_layout import file_key

from .archive_helpers import DAYS, assert_same_rows, parquet_rows, pg_rows, record, settings
from .test_api_support import api_client, get_json, schema_errors

pytestmark = pytest.mark.integration


@pytest.fixture
async def archived(database_url, tmp_path):
    recorded = await record(database_url)
    await Archiver(settings(database_url, tmp_path / "archive"), tty=False).run()
    return recorded


@pytest.fixture
def http(database_url, redis_url, tmp_path, monkeypatch):
    with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url,
                    ARCHIVE_URL=str(tmp_path / "archive"),
                    ARCHIVE_DOWNLOAD_URL="http://127.0.0.1:8080/archive/") as client:
        yield client


def test_lists_each_days_files_with_links_through_nginx(archived, http, tmp_path):
    doc = get_json(http, "/api/archive/esz6?start=2026-11-16&end=2026-11-18")
    assert schema_errors({"$ref": "#/components/schemas/ArchiveFiles"}, doc) == []
    assert (doc["symbol"], doc["start"], doc["end"], doc["expires_in"]) == ("ESZ6", "2026-11-16", "2026-11-18", None)
    assert [(f["date"], f["table"]) for f in doc["data"]] == [
        (d.isoformat(), t) for d in DAYS[:2] for t in ("level2", "quotes", "ticks")]
    tick = next(f for f in doc["data"] if (f["date"], f["table"]) == ("2026-11-16", "ticks"))
    path = file_key("tick_data", DAYS[0], "ESZ6")
    assert tick["url"] == f"http://127.0.0.1:8080/archive/{path}"
    assert tick["rows"] == len(parquet_rows(tmp_path / "archive" / path, "tick_data"))
    assert tick["bytes"] == (tmp_path / "archive" / path).stat().st_size
    assert tick["first_timestamp"].startswith("2026-11-16T14:59") or tick["first_timestamp"].startswith("2026-11-16T15")

    only = get_json(http, "/api/archive/ESZ6?table=quotes&start=2026-11-18T00:00:00Z&end=2026-11-18T00:00:01Z")
    assert [(f["date"], f["table"]) for f in only["data"]] == [("2026-11-18", "quotes")]
    assert get_json(http, "/api/archive/GCG7?start=2026-11-16")["data"] == []
    alone = get_json(http, "/api/archive/ESZ6?start=2026-11-17&table=ticks")  # 31 days from it
    assert (alone["end"], [f["date"] for f in alone["data"]]) == ("2026-12-18", ["2026-11-17", "2026-11-18"])
    edge = get_json(http, "/api/archive/ESZ6?end=9999-12-31T23:59:59Z")
    assert (edge["end"], edge["data"]) == ("9999-12-31", [])
    for bad, word in (("table=bars", "table must be one of"), ("start=2026-11-20&end=2026-11-16", "before end"),
                      ("start=2025-01-01&end=2026-11-20", "366 days"), ("start=2026-02-30", "calendar date"),
                      ("start=yesterday", "ISO-8601"), ("start=", "ISO-8601"), ("table=", "table must be")):
        err = get_json(http, f"/api/archive/ESZ6?{bad}", status=400)
        assert word in err["message"], (bad, err)


def test_only_complete_verified_days_are_listed(archived, http, database_url):
    import asyncpg

    async def forget():
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("DELETE FROM archive_manifests WHERE table_name = 'tick_data' AND day = $1", DAYS[1])
        finally:
            await conn.close()

    asyncio.run(forget())  # as while a run is (re)writing that day
    doc = get_json(http, "/api/archive/ESZ6?table=ticks&start=2026-11-16&end=2026-11-19")
    assert [f["date"] for f in doc["data"]] == ["2026-11-16", "2026-11-18"]


async def test_presigned_s3_links_download_the_archived_rows(database_url, redis_url, monkeypatch):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for k, v in {"AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                     "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket="rdc-archive")
        await record(database_url, days=DAYS[:1])
        await Archiver(settings(database_url, "s3://rdc-archive/data"), tty=False).run()
        from chalicelib import archive_links

        archive_links.forget_client()
        with api_client(monkeypatch, DATABASE_URL=database_url, REDIS_URL=redis_url,
                        ARCHIVE_URL="s3://rdc-archive/data", ARCHIVE_URL_EXPIRES_S="600") as client:
            doc = get_json(client, "/api/archive/CLF7?table=level2&start=2026-11-16&end=2026-11-17")
        assert doc["expires_in"] == 600 and doc["count"] == 1
        url = doc["data"][0]["url"]
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        frame = pd.read_parquet(io.BytesIO(body))
        assert len(frame) == doc["data"][0]["rows"] and str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
        rows = await pg_rows(database_url, "level2_data", dt.date(2026, 11, 16), "CLF7")
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(body))
        archived_rows = list(zip(*[table.column(i).to_pylist() for i in range(table.num_columns)], strict=True))
        assert_same_rows(rows, archived_rows, url)
    finally:
        server.stop()
