"""Bounds every API request respects before it reaches the database.

An id is a 64-bit integer column (BigAutoField): a larger number from a client cannot name a row, and SQLite
refuses it as a query's parameter (OverflowError) where a foreign key or `pk__in` carries it, a 500. So a field
taking an id refuses one out of range (400), and a page holds at most `MAX_PAGE_LIMIT` rows whatever `?limit=`
asks (an unbounded limit is a whole table in one answer, and past 2**63 a 500).
"""
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination

MAX_ID = 2**63 - 1
MAX_PAGE_LIMIT = 1000


def IdField(**kwargs) -> serializers.IntegerField:  # noqa: N802 (a field, named like one)
    """An integer naming a row: 1 to 2**63 - 1."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


class ApiPagination(LimitOffsetPagination):
    """`?limit=` and `?offset=` as DRF reads them, the limit capped at `MAX_PAGE_LIMIT`."""

    max_limit = MAX_PAGE_LIMIT
