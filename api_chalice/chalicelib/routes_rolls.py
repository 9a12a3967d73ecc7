"""The rolls of a followed product: those the collector recorded, and the next one the calendar schedules."""

from __future__ import annotations

from chalice import Blueprint

from rdc_common.products import PRODUCTS

from . import continuous, params, store
from .config import get_settings
from .middleware import api_view

bp = Blueprint(__name__)


@bp.route("/api/rolls/{product}", methods=["GET"])
@api_view
def get_rolls(product: str):
    code = params.parse_product(product)
    recorded = [{"from": r["from_symbol"], "to": r["to_symbol"], "at": params.iso(r["at"]),
                 "recorded_at": params.iso(r["recorded_at"])} for r in store.rolls(code)]
    front, after, at = continuous.next_roll(PRODUCTS[code], get_settings().clock.now_dt())
    return {"product": code, "exchange": PRODUCTS[code].exchange, "front_month": front.symbol,
            "count": len(recorded), "rolls": recorded,
            "next_roll": {"status": "scheduled", "from": front.symbol, "to": after.symbol, "at": params.iso(at)}}
