"""Array literals for PostgreSQL array parameters (treasury.bulk.array_literal)."""
import datetime as dt

import pytest
from django.db import connection

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


def test_a_copied_time_is_the_same_moment_and_a_naive_one_is_refused():
    moment = dt.datetime(2026, 11, 27, 14, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with pytest.raises(ValueError, match="timezone-aware"):
        bulk.copy_time(moment.replace(tzinfo=None))
    assert bulk.copy_time(None) is None
    if connection.vendor == "postgresql":
        assert bulk.copy_time(moment) == "2026-11-27T14:00:00.123456+08:00"
        assert bulk.copy_time(dt.date(2026, 11, 27)) == "2026-11-27"
    else:
        assert bulk.copy_time(moment) == bulk.datetime_param(moment)
