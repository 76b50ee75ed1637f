"""Stream keys are ordered by Unicode code point everywhere (Merkle leaves, verification merges).

SQLite compares text bytewise (BINARY), which for UTF-8 is code point order, as is Python's str
comparison. PostgreSQL orders by the database collation unless told otherwise: ask for "C".
"""
from django.db import connection
from django.db.models import F
from django.db.models.functions import Collate


def key_order(field: str):
    if connection.vendor == "postgresql":
        return Collate(field, "C")
    return F(field)
