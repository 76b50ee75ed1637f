"""The storage every sandbox ledger keeps: its own SQLite file through the stdlib `sqlite3` module.

Concurrency: every write runs under one process-wide lock inside `BEGIN IMMEDIATE`, so what one
write does is applied whole or not at all and no two writes interleave, whichever thread or
process they arrive on.
"""
from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import Iterable, Iterator

SQL_CHUNK = 900  # bound parameters per IN (...) list


def chunks(items: list, size: int = SQL_CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class SqliteStore:
    """One SQLite file (WAL) with `schema` applied, shared by the server's threads. Thread-safe."""

    def __init__(self, *, storage_path: str, schema: str):
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(storage_path, isolation_level=None, check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # Batches insert into indexes at random places (request ids, wallet ids): keep pages in memory.
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """The lock plus one IMMEDIATE transaction: committed on success, rolled back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn
