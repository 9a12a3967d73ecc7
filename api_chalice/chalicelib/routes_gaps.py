"""Recorded outages of the market-data stream, and whether each was backfilled (each names its contract:
a continuous symbol lists the gaps of the contract it stood for at each instant)."""

from __future__ import annotations

from chalice import Blueprint

from . import context, params, store
from .config import get_settings
from .middleware import api_view

bp = Blueprint(__name__)
MAX_GAPS = 1000


def gap_json(symbol: str, r) -> dict:
    return {"symbol": symbol, "start": params.iso(r["gap_start"]),
            "end": params.iso(r["gap_end"]) if r["gap_end"] else None,
            "cause": r["cause"], "dropped_rows": r["dropped_rows"], "backfilled": r["backfilled"],
            "backfilled_rows": r["backfilled_rows"], "recorded_at": params.iso(r["recorded_at"])}


@bp.route("/api/gaps/{symbol}", methods=["GET"])
@api_view
def gaps(symbol: str):
    symbol = params.parse_data_symbol(symbol)
    settings = get_settings()
    q = context.current_request().query_params or {}
    start, end = params.resolve_window(q.get("start"), q.get("end"), settings.max_range, "gaps")
    now = settings.clock.now_dt()
    if start is None:
        end = now
        start = end - settings.max_range
    found = store.gaps(symbol, start, end, MAX_GAPS, now)
    return {"symbol": symbol, "start": params.iso(start), "end": params.iso(end), "count": len(found),
            "data": [gap_json(contract, r) for contract, r in found]}
