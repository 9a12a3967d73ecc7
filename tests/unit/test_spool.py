"""The spool keeps batches whole, in order, within its limit, across a restart."""

import datetime as dt

import pytest

from collector_ecs.spool import Spool
from collector_ecs.writer import Batch, counter_deltas

pytestmark = pytest.mark.unit
T = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)


def rows(n, sym="ESZ6"):
    return [(T + dt.timedelta(seconds=i), sym, "CME", 1.0, 1, "BUY", i, T, False) for i in range(n)]


def test_batches_come_back_oldest_first_after_reopen(tmp_path):
    s = Spool(tmp_path, 1 << 20)
    s.open()
    a, b = Batch("tick_data", rows(3)), Batch("quote_data", rows(2))
    assert s.put(a) and s.put(b)
    (tmp_path / "000000000099.tick_data.tmp").write_bytes(b"half-written")  # a crash mid-write
    s2 = Spool(tmp_path, 1 << 20)
    s2.open()
    assert len(s2) == 2 and s2.bytes == s.bytes
    path, got = s2.peek()
    assert (got.table, got.batch_id, got.rows) == ("tick_data", a.batch_id, a.rows)
    s2.remove(path)
    assert s2.peek()[1].batch_id == b.batch_id
    assert not list(tmp_path.glob("*.tmp"))


def test_put_refuses_beyond_the_limit_and_writes_nothing(tmp_path):
    s = Spool(tmp_path, 600)
    s.open()
    assert s.put(Batch("tick_data", rows(2)))
    before = s.bytes
    assert not s.put(Batch("tick_data", rows(50)))
    assert s.bytes == before and len(s) == 1


def test_counter_deltas_per_symbol():
    r = rows(3) + rows(2, "CLF7")
    syms, exch, n, first, last = counter_deltas(r)
    assert dict(zip(syms, n, strict=True)) == {"ESZ6": 3, "CLF7": 2}
    assert first[0] == T and last[0] == T + dt.timedelta(seconds=2)


def test_minute_deltas_match_a_naive_count_in_any_order():
    import random
    from collections import Counter

    from collector_ecs.writer import minute_deltas

    base = dt.datetime(2026, 11, 24, 14, 29, 58, tzinfo=dt.UTC)
    rows = [(base + dt.timedelta(milliseconds=37 * i), ("ESZ6", "CLF7")[i % 2], "CME") for i in range(5000)]
    for order in (rows, random.Random(1).sample(rows, len(rows))):
        got = Counter()
        for s, m, n in zip(*minute_deltas(order), strict=True):
            got[(s, m)] += n
        assert got == Counter((r[1], r[0].replace(second=0, microsecond=0)) for r in rows)
