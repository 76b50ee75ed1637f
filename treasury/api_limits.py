"""Bounds every API request respects before it reaches the database.

An id is a 64-bit integer column (BigAutoField): a larger number from a client cannot name a row, and SQLite
refuses it as a query's parameter (OverflowError) where a foreign key or `pk__in` carries it, a 500. So a field
taking an id refuses one out of range (400), and a page holds at most `MAX_PAGE_LIMIT` rows whatever `?limit=`
asks (an unbounded limit is a whole table in one answer, and past 2**63 a 500); a `?limit=` or `?offset=` that is
not a whole number (`null`, `-5`, `2.5`, `true`) is a 400 naming it, where DRF quietly served the first page.
"""
import re

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination

MAX_ID = 2**63 - 1
MAX_PAGE_LIMIT = 1000


def IdField(**kwargs) -> serializers.IntegerField:  # noqa: N802 (a field, named like one)
    """An integer naming a row: 1 to 2**63 - 1."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


_WHOLE_NUMBER = re.compile(r"[0-9]{1,30}")


class ApiPagination(LimitOffsetPagination):
    """`?limit=` (1 or more, capped at `MAX_PAGE_LIMIT`) and `?offset=` (0 or more); absent or empty: the
    defaults. Anything else is refused (400, `details` naming the parameter)."""

    max_limit = MAX_PAGE_LIMIT

    def _number(self, request, name: str, minimum: int) -> int | None:
        raw = request.query_params.get(name, "")
        if raw == "":
            return None
        if not _WHOLE_NUMBER.fullmatch(raw) or int(raw) < minimum:
            raise serializers.ValidationError({name: [f"请填写不小于 {minimum} 的整数 (a whole number, {minimum} or more)"]})
        return int(raw)

    def get_limit(self, request):
        limit = self._number(request, self.limit_query_param, 1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        return self._number(request, self.offset_query_param, 0) or 0
