"""rdc_common.book: rebuilding an order book from OrderBook messages, stored (the API's replay) or
live (the collector applying each decoded message), with the same semantics."""

from __future__ import annotations

import random

import pytest

from rdc_common.book import BookRow, OrderBook, replay

pytestmark = pytest.mark.unit


def row(kind, bids=(), asks=()):
    """bids/asks as (price, size, orders) triples."""
    return BookRow(kind, [b[0] for b in bids], [b[1] for b in bids], [b[2] for b in bids],
                   [a[0] for a in asks], [a[1] for a in asks], [a[2] for a in asks])


SNAP = row("SNAPSHOT_IMAGE", bids=[(100.0, 5, 2), (99.75, 7, 3)], asks=[(100.25, 4, 1), (100.5, 9, 4)])


def test_snapshot_is_the_whole_book_sorted_best_first():
    bids, asks = replay([SNAP]).levels(10)
    assert bids == [{"price": 100.0, "size": 5, "orders": 2}, {"price": 99.75, "size": 7, "orders": 3}]
    assert asks == [{"price": 100.25, "size": 4, "orders": 1}, {"price": 100.5, "size": 9, "orders": 4}]


def test_updates_set_and_delete_levels():
    book = replay([
        SNAP,
        row("BEGIN", bids=[(100.0, 6, 3)]),                  # changes a level
        row("MIDDLE", asks=[(100.25, 0, 0)]),                # size 0 removes it
        row("END", bids=[(99.5, 1, 1)], asks=[(100.75, 2, 1)]),
        row("SOLO", bids=[(99.75, 3, 0)]),                   # orders 0 removes it too
    ])
    bids, asks = book.levels(10)
    assert [(b["price"], b["size"]) for b in bids] == [(100.0, 6), (99.5, 1)]
    assert [(a["price"], a["size"]) for a in asks] == [(100.5, 9), (100.75, 2)]


def test_clear_and_no_book_empty_it_and_a_later_snapshot_replaces_everything():
    assert replay([SNAP, row("CLEAR_ORDER_BOOK")]).levels(10) == ([], [])
    assert replay([SNAP, row("NO_BOOK")]).levels(10) == ([], [])
    fresh = row("SNAPSHOT_IMAGE", bids=[(98.0, 1, 1)])
    bids, asks = replay([SNAP, row("SOLO", bids=[(97.0, 1, 1)]), fresh]).levels(10)
    assert bids == [{"price": 98.0, "size": 1, "orders": 1}] and asks == []


def test_consecutive_snapshot_rows_are_one_image():
    part1 = row("SNAPSHOT_IMAGE", bids=[(100.0, 5, 2)])
    part2 = row("SNAPSHOT_IMAGE", asks=[(100.25, 4, 1)])
    bids, asks = replay([part1, part2]).levels(10)
    assert len(bids) == 1 and len(asks) == 1


def test_depth_limits_levels_per_side():
    bids, asks = replay([SNAP]).levels(1)
    assert bids == [{"price": 100.0, "size": 5, "orders": 2}]
    assert asks == [{"price": 100.25, "size": 4, "orders": 1}]


def test_replay_matches_a_plain_model_on_random_updates():
    rng = random.Random(7)
    model = {"b": {}, "a": {}}
    rows = []
    for i in range(2000):
        if i % 500 == 0:
            model = {"b": {99.0 - k * 0.25: (rng.randint(1, 50), rng.randint(1, 9)) for k in range(10)},
                     "a": {99.25 + k * 0.25: (rng.randint(1, 50), rng.randint(1, 9)) for k in range(10)}}
            rows.append(row("SNAPSHOT_IMAGE", bids=[(p, s, o) for p, (s, o) in model["b"].items()],
                            asks=[(p, s, o) for p, (s, o) in model["a"].items()]))
            continue
        side = rng.choice("ba")
        price = (99.0 - rng.randint(0, 14) * 0.25) if side == "b" else (99.25 + rng.randint(0, 14) * 0.25)
        size = rng.choice([0, rng.randint(1, 80)])
        orders = rng.randint(1, 9) if size else 0
        if size:
            model[side][price] = (size, orders)
        else:
            model[side].pop(price, None)
        level = [(price, size, orders)]
        rows.append(row(rng.choice(["BEGIN", "MIDDLE", "END", "SOLO"]),
                        bids=level if side == "b" else (), asks=level if side == "a" else ()))
    bids, asks = replay(rows).levels(100)
    assert [(b["price"], b["size"], b["orders"]) for b in bids] == \
        sorted(((p, s, o) for p, (s, o) in model["b"].items()), reverse=True)
    assert [(a["price"], a["size"], a["orders"]) for a in asks] == sorted((p, s, o) for p, (s, o) in model["a"].items())


def test_live_messages_applied_one_by_one_give_the_replayed_book():
    """The collector applies decoded rows (tuples, in the order they arrive) to one OrderBook per
    symbol; the API replays stored rows. Both must agree after any sequence, including a snapshot
    in several parts and a clear in the middle."""
    rng = random.Random(11)
    rows = [row("SNAPSHOT_IMAGE", bids=[(100.0, 5, 2)]), row("SNAPSHOT_IMAGE", asks=[(100.25, 4, 1)])]
    for i in range(500):
        if i == 250:
            rows.append(row("CLEAR_ORDER_BOOK"))
        price = 100.0 - rng.randint(0, 8) * 0.25 if i % 2 else 100.25 + rng.randint(0, 8) * 0.25
        size = rng.choice([0, rng.randint(1, 30)])
        level = [(price, size, rng.randint(1, 5) if size else 0)]
        rows.append(row("SOLO", bids=level if i % 2 else (), asks=() if i % 2 else level))
    live = OrderBook()
    for r in rows:
        # As decoded: tuples, empty tuples for an absent side.
        live.apply(r.update_type, tuple(r.bid_price), tuple(r.bid_size), tuple(r.bid_orders), tuple(r.ask_price),
                   tuple(r.ask_size), tuple(r.ask_orders))
    assert live.levels(100) == replay(rows).levels(100)


def test_a_snapshot_after_updates_starts_a_new_image():
    book = OrderBook()
    for r in (SNAP, row("SOLO", bids=[(99.5, 1, 1)]), row("SNAPSHOT_IMAGE", asks=[(101.0, 2, 1)])):
        book.apply(r.update_type, r.bid_price, r.bid_size, r.bid_orders, r.ask_price, r.ask_size, r.ask_orders)
    assert book.levels(10) == ([], [{"price": 101.0, "size": 2, "orders": 1}])


def test_stored_nulls_and_short_arrays_are_tolerated():
    """A NULL price in a stored array is skipped; a missing order count is None, not a deletion."""
    book = replay([BookRow("SNAPSHOT_IMAGE", [None, 100.0], [3, 5], [], [100.25], [4], None)])
    assert book.levels(10) == ([{"price": 100.0, "size": 5, "orders": None}],
                               [{"price": 100.25, "size": 4, "orders": None}])


@pytest.mark.parametrize("kind", ["CLEAR_ORDER_BOOK", "NO_BOOK"])
def test_clear_then_updates_build_from_nothing(kind):
    book = replay([SNAP, row(kind), row("SOLO", bids=[(98.0, 2, 1)])])
    assert book.levels(10) == ([{"price": 98.0, "size": 2, "orders": 1}], [])
