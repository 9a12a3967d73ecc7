"""The live snapshot of a symbol (last trade, best bid/offer, top of the book, last trades) that the
collector publishes to Redis at most every 250 ms (collector_ecs/live.py), with its age on the clock.

Read from Redis only, never PostgreSQL: the web console polls it several times a second while it is
open. Locally that is `make run`'s Redis; in AWS the API's ElastiCache, through the same client.
"""

from __future__ import annotations

import datetime as dt
import json

from chalice import Blueprint

from . import params
from .config import get_settings
from .db import RedisUnavailable, get_redis
from .errors import NotFound, ServiceUnavailable
from .middleware import api_view

bp = Blueprint(__name__)

# The collector's key (collector_ecs.live.KEY_PREFIX); the two must agree.
KEY_PREFIX = "rdc:live:"


@bp.route("/api/live/{symbol}", methods=["GET"])
@api_view
def live(symbol):
    symbol = params.parse_symbol(symbol)
    try:
        raw = get_redis().get(KEY_PREFIX + symbol)
    except RedisUnavailable as exc:
        raise ServiceUnavailable("Redis is not answering, so there is no live data right now; retry in a few "
                                 "seconds (see /health)", title="Live data unavailable", detail=str(exc)) from None
    if raw is None:
        raise NotFound(f"no live snapshot of {symbol}: the collector publishes one for each symbol it records once "
                       f"its market sends data (see /api/subscriptions), unless it runs with LIVE_SNAPSHOTS=0",
                       title="No live data")
    doc = json.loads(raw)
    published = dt.datetime.fromisoformat(doc["published_at"])
    doc["age_s"] = round((get_settings().clock.now_dt() - published).total_seconds(), 3)
    return doc
