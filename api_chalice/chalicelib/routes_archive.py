"""The Parquet archive's files of one symbol, day by day, with links to download them."""

from __future__ import annotations

import datetime as dt
import re

from chalice import Blueprint

from rdc_common.archive_layout import TABLE_ALIASES, TABLES

from . import context, params, queries
from .archive_links import download_url, expires_in
from .config import get_settings
from .db import get_db
from .errors import BadRequest
from .middleware import api_view

bp = Blueprint(__name__)

# The API's names for the tables, as its other routes use them.
KINDS = {v: k for k, v in TABLE_ALIASES.items()}
DEFAULT_DAYS = 31
MAX_DAYS = 366
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _tables(raw: str | None) -> list[str]:
    if raw is None:
        return list(TABLES)
    name = TABLE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if name not in TABLES:
        raise BadRequest(f"table must be one of {', '.join(TABLE_ALIASES)} (or {', '.join(TABLES)}), "
                         f"not {raw[:32]!r}", title="Invalid table")
    return [name]


def _add(day: dt.date, days: int) -> dt.date:
    """day + days, clamped to the dates Python holds (nothing was archived at either edge)."""
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def _day(raw: str, name: str, end: bool) -> dt.date:
    """A UTC date (YYYY-MM-DD) or a time; the days [start, end) cover every instant of [start, end)."""
    if _DATE.match(raw.strip()):
        try:
            return dt.date.fromisoformat(raw.strip())
        except ValueError:
            raise BadRequest(f"{name} {raw!r} is not a calendar date", title="Invalid date") from None
    t = params.parse_time(raw, name)
    if end:  # the day holding the instant just before `end`, and the day after it
        return _add(params.shift(t, -dt.timedelta(microseconds=1)).date(), 1)
    return t.date()


@bp.route("/api/archive/{symbol}", methods=["GET"])
@api_view
def archive_files(symbol: str):
    settings = get_settings()
    symbol = params.parse_symbol(symbol)
    q = context.current_request().query_params or {}
    tables = _tables(q.get("table"))
    start = _day(q["start"], "start", False) if q.get("start") is not None else None
    end = _day(q["end"], "end", True) if q.get("end") is not None else None
    # Like the other routes: one bound alone means the default span from it, neither the days up to now.
    if start is not None and end is not None:
        if start >= end:
            raise BadRequest(f"start ({start}) must be before end ({end}): start is inclusive, end exclusive",
                             title="Invalid range")
        if (end - start).days > MAX_DAYS:
            raise BadRequest(f"start to end spans more than {MAX_DAYS} days; ask for a shorter range",
                             title="Range too long")
    elif start is not None:
        end = _add(start, DEFAULT_DAYS)
    else:
        end = end or _add(settings.clock.today(), 1)
        start = _add(end, -DEFAULT_DAYS)
    rows = get_db().fetch(queries.ARCHIVE_FILES, symbol, tables, start, end)
    data = [{"date": r["day"].isoformat(), "table": KINDS[r["table_name"]], "rows": r["rows"], "bytes": r["bytes"],
             "sha256": r["sha256"], "first_timestamp": params.iso(r["min_ts"]) if r["min_ts"] else None,
             "last_timestamp": params.iso(r["max_ts"]) if r["max_ts"] else None,
             "url": download_url(settings, r["path"])} for r in rows]
    return {"symbol": symbol, "start": start.isoformat(), "end": end.isoformat(), "count": len(data),
            "expires_in": expires_in(settings), "data": data}
