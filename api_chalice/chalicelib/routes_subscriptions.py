"""Subscribe and unsubscribe symbols, and list the desired set with the collector's progress.

A symbol is a contract (ESZ6: recorded until it expires, never rolled) or a catalogue product (ES:
its front month, rolled by the collector for as long as it runs; the contracts it brings in are
listed with `product` set). Continuous symbols (ES.c.0) are read-only views of what was recorded.

PostgreSQL's `subscriptions` table is the durable record (the collector reconciles with it at
start-up and periodically); the command on the Redis stream `rdc:commands` only makes the
collector act at once. So a request is answered 200 once its row is written, Redis or not.
"""

from __future__ import annotations

import datetime as dt

from chalice import Blueprint

from . import context, params, queries
from .config import get_settings
from .db import RedisUnavailable, get_db, get_redis
from .errors import Conflict
from .middleware import api_view
from .observability import MetricUnit, logger, metrics

bp = Blueprint(__name__)

COMMAND_STREAM = "rdc:commands"
# Bodies are parsed as JSON whatever they are labelled (old scripts send curl -d without a type).
BODY_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain"]


def _ts(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds") if value is not None else None


def _notify(op: str, symbol: str, exchange: str, kind: str, requested_at: dt.datetime) -> None:
    # The collector tells a product (symbol=ES) from a contract by the symbol itself; `kind` says it too.
    command = {"op": op, "symbol": symbol, "exchange": exchange, "kind": kind, "requested_at": _ts(requested_at),
               "request_id": context.request_id()}
    try:
        get_redis().xadd(COMMAND_STREAM, command)
    except RedisUnavailable as exc:
        metrics.add_metric(name="RedisUnavailable", unit=MetricUnit.Count, value=1)
        logger.warning("redis unavailable: the collector will take the request from PostgreSQL when it "
                       "next reconciles", extra={"op": op, "symbol": symbol, "exchange": exchange,
                                                  "error": str(exc)})


@bp.route("/api/subscribe/{symbol}", methods=["POST"], content_types=BODY_TYPES)
@api_view
def subscribe(symbol):
    symbol, kind = params.parse_subscription_symbol(symbol)
    requested = params.parse_subscription_body(context.current_request().raw_body)
    exchange = params.subscription_exchange(symbol, requested)
    row = get_db().fetchrow(queries.SUBSCRIBE, symbol, exchange, get_settings().clock.now_dt(), kind)
    logger.info("subscription requested", extra={"symbol": symbol, "exchange": exchange, "kind": kind})
    _notify("subscribe", symbol, exchange, kind, row["requested_at"])
    what = f"{symbol} (its front month, rolled as it expires)" if kind == "product" else symbol
    return {"status": "subscribed", "symbol": symbol, "exchange": exchange,
            "message": f"Subscription request for {what} has been queued"}


@bp.route("/api/subscribe/{symbol}", methods=["DELETE"], content_types=BODY_TYPES)
@api_view
def unsubscribe(symbol):
    symbol, kind = params.parse_subscription_symbol(symbol)
    requested = params.parse_subscription_body(context.current_request().raw_body)
    db = get_db()
    row = db.fetchrow(queries.UNSUBSCRIBE_KNOWN, symbol, requested, get_settings().clock.now_dt())
    if row is None:
        stored = db.fetchval(queries.SUBSCRIPTION_EXCHANGE, symbol)
        if stored is not None:
            # Well-formed, and right for another subscription: a conflict with what is stored (left
            # unchanged), not a bad request.
            raise Conflict(f"{symbol} is subscribed on {stored}, not {requested}; leave the exchange out or "
                           f"send {stored}", title="Exchange conflict")
        # Not in the table (perhaps subscribed from the collector's SYMBOLS): record the wish anyway.
        row = db.fetchrow(queries.UNSUBSCRIBE_NEW, symbol, params.subscription_exchange(symbol, requested),
                          get_settings().clock.now_dt(), kind)
    exchange = row["exchange"]
    logger.info("unsubscription requested", extra={"symbol": symbol, "exchange": exchange, "kind": kind})
    _notify("unsubscribe", symbol, exchange, kind, row["requested_at"])
    return {"status": "unsubscribed", "symbol": symbol, "exchange": exchange,
            "message": f"Unsubscription request for {symbol} has been queued"}


@bp.route("/api/subscriptions", methods=["GET"])
@api_view
def subscriptions():
    rows = get_db().fetch(queries.LIST_SUBSCRIPTIONS)
    data = [{"symbol": r["symbol"], "exchange": r["exchange"], "desired": r["desired"], "status": r["status"],
             "reason": r["reason"], "requested_at": _ts(r["requested_at"]), "status_since": _ts(r["status_since"]),
             "kind": r["kind"], "product": r["product"]}
            for r in rows]
    return {"count": len(data), "subscriptions": data}
