"""Recorded outages of the market-data stream, and whether each was backfilled."""

from __future__ import annotations

from chalice import Blueprint

from . import context, params, queries
from .config import get_settings
from .db import get_db
from .middleware import api_view

bp = Blueprint(__name__)
MAX_GAPS = 1000


def gap_json(r) -> dict:
    return {"start": params.iso(r["gap_start"]), "end": params.iso(r["gap_end"]) if r["gap_end"] else None,
            "cause": r["cause"], "dropped_rows": r["dropped_rows"], "backfilled": r["backfilled"],
            "backfilled_rows": r["backfilled_rows"], "recorded_at": params.iso(r["recorded_at"])}


@bp.route("/api/gaps/{symbol}", methods=["GET"])
@api_view
def gaps(symbol: str):
    symbol = params.parse_symbol(symbol)
    q = context.current_request().query_params or {}
    start, end = params.resolve_window(q.get("start"), q.get("end"), get_settings().max_range, "gaps")
    if start is None:
        end = get_settings().clock.now_dt()
        start = end - get_settings().max_range
    rows = get_db().fetch(queries.GAPS_OVERLAPPING, symbol, start, end, MAX_GAPS)
    return {"symbol": symbol, "start": params.iso(start), "end": params.iso(end), "count": len(rows),
            "data": [gap_json(r) for r in rows]}
