"""Array literals for PostgreSQL array parameters (treasury.bulk.array_literal)."""
import datetime as dt

from treasury import bulk


def test_strings_ints_times_and_nulls_are_written_as_postgresql_reads_them():
    assert bulk.array_literal([3, 1, 2]) == "{3,1,2}"
    assert bulk.array_literal(["a", "b c"]) == '{"a","b c"}'
    assert bulk.array_literal(['say "hi"', "back\\slash", None, True]) == '{"say \\"hi\\"","back\\\\slash",NULL,t}'
    moment = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.timezone.utc)
    assert bulk.array_literal([moment, dt.date(2026, 11, 27)]) == '{"2026-11-27T06:00:00+00:00","2026-11-27"}'
    assert bulk.array_literal([]) == "{}"
    assert bulk.array_literal([object()]) is None


def test_plain_strings_are_quoted_all_at_once(monkeypatch):
    """Keys with nothing to escape (the common case: idempotency keys, wallet ids) are joined in one go; the
    element-by-element path had been taken for every list of two or more."""
    quoted = []
    monkeypatch.setattr(bulk, "_quoted", lambda value: quoted.append(value) or value)
    keys = [f"tax:13701000000:20261127:{n:08d}" for n in range(1000)]
    assert bulk.array_literal(keys) == '{"' + '","'.join(keys) + '"}'
    assert quoted == []
