"""Rows of the API's JSON into pandas DataFrames with proper dtypes (pure: no I/O).

Timestamps become tz-aware UTC (`datetime64[us, UTC]`: the data's own precision), text columns
pandas' nullable `string`, counts `int64` (nullable `Int64` where the API may send null), prices
`float64` (NaN where absent). An empty answer gives an empty frame with the same columns and dtypes,
so code written against a full day works on a quiet one too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

TIMESTAMP = "datetime64[us, UTC]"


@dataclass(frozen=True)
class Shape:
    """The columns of one kind of row, in order, with their dtypes (JSON name -> dtype)."""

    columns: Mapping[str, str]
    # Columns holding lists (order-book levels): kept as Python lists, object dtype.
    nested: tuple[str, ...] = ()


TICKS = Shape({"timestamp": TIMESTAMP, "symbol": "string", "price": "float64", "volume": "int64",
               "direction": "string", "trade_type": "string", "exchange": "string", "backfilled": "bool"})
QUOTES = Shape({"timestamp": TIMESTAMP, "symbol": "string", "exchange": "string", "bid_price": "float64",
                "bid_size": "Int64", "bid_orders": "Int64", "ask_price": "float64", "ask_size": "Int64",
                "ask_orders": "Int64"})
LEVEL2 = Shape({"timestamp": TIMESTAMP, "symbol": "string", "exchange": "string", "update_type": "string",
                "bids": "object", "asks": "object", "depth": "int64"}, nested=("bids", "asks"))
BARS = Shape({"timestamp": TIMESTAMP, "open": "float64", "high": "float64", "low": "float64", "close": "float64",
              "volume": "int64", "trades": "int64", "buy_volume": "int64", "sell_volume": "int64",
              "vwap": "float64"})
LEVELS = Shape({"price": "float64", "size": "int64", "orders": "Int64"})
GAPS = Shape({"start": TIMESTAMP, "end": TIMESTAMP, "cause": "string", "dropped_rows": "int64",
              "backfilled": "bool", "backfilled_rows": "int64", "recorded_at": TIMESTAMP})
SYMBOLS = Shape({"symbol": "string", "exchange": "string", "tick_count": "int64", "last_tick_update": TIMESTAMP,
                 "level2_count": "int64", "last_level2_update": TIMESTAMP})
SUBSCRIPTIONS = Shape({"symbol": "string", "exchange": "string", "desired": "bool", "status": "string",
                       "reason": "string", "requested_at": TIMESTAMP, "status_since": TIMESTAMP})

# The row kinds the range methods page through, by the API's path segment.
ROW_SHAPES: dict[str, Shape] = {"ticks": TICKS, "quotes": QUOTES, "level2": LEVEL2}


def frame(rows: Sequence[Mapping[str, Any]], shape: Shape) -> pd.DataFrame:
    """One DataFrame from JSON rows; fields the shape does not know are left out."""
    data: dict[str, Any] = {}
    for name, dtype in shape.columns.items():
        values = [row.get(name) for row in rows]
        data[name] = _column(values, dtype)
    return pd.DataFrame(data, columns=list(shape.columns))


def _column(values: list[Any], dtype: str) -> pd.Series | pd.Index | list:
    if dtype == TIMESTAMP:
        return pd.to_datetime(pd.Series(values, dtype="object"), utc=True, format="ISO8601").astype(TIMESTAMP)
    if dtype == "object":
        return pd.Series(values, dtype="object")
    if dtype == "float64":
        return pd.Series([float("nan") if v is None else v for v in values], dtype="float64")
    return pd.Series(values, dtype=dtype)


def concat(frames: Iterable[pd.DataFrame], shape: Shape) -> pd.DataFrame:
    """Pages into one frame, keeping the dtypes when there are none or some are empty."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return frame([], shape)
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    return pd.concat(parts, ignore_index=True)


def levels(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Price levels ({price, size, orders}) of one side of a book."""
    return frame(rows, LEVELS)
