"""Writing the trace: appending events (inside the transaction that makes the change they
describe) and signing checkpoints over every stream head. Verification is in `verification.py`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery

from treasury import bulk, keys

from .merkle import MerkleBuilder
from .models import TraceCheckpoint, TraceCheckpointHead, TraceEvent, TraceStream
from .ordering import key_order

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class EventSpec:
    kind: str
    subject_type: str
    subject_id: str
    actor: str = "system"
    amount_fen: int | None = None
    source_ref: str = ""
    data: dict = field(default_factory=dict)


_EVENT_COLUMNS = ["stream_key", "seq", "kind", "subject_type", "subject_id", "source_ref", "actor", "amount_fen",
                  "data", "occurred_at", "prev_hash", "hash"]


def _canonical(stream_key, seq, kind, subject_type, subject_id, source_ref, actor, amount_fen, occurred_at,
               data_json, prev_hash) -> bytes:
    occurred = occurred_at.isoformat(timespec="microseconds") if isinstance(occurred_at, datetime) else str(occurred_at)
    fields = (stream_key, str(seq), kind, subject_type, str(subject_id), source_ref, actor,
              "" if amount_fen is None else str(amount_fen), occurred, data_json, prev_hash)
    return "\x1f".join(fields).encode("utf-8")


# json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False), and the same text: that
# encoder's C core, made once (JSONEncoder.encode makes it anew on every call, most of the cost of an event's
# small dict; the bulk paths serialise every event). No check for circular references: event data is plain.
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_encode_in_c = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, _JSON.default, json.encoder.encode_basestring, None, ":", ",", True, False, True)


def _encode_data(data: dict) -> str:
    return "".join(_encode_in_c(data, 0)) if _encode_in_c else _JSON.encode(data)


def canonical_event_bytes(
    *, stream_key, seq, kind, subject_type, subject_id, source_ref, actor, amount_fen, data, occurred_at, prev_hash
) -> bytes:
    """The exact bytes an event's hash covers. Changing this breaks every stored chain: don't.

    `data` is the dict the event was written with ({} for none, as `encode_event_data` writes it); anything else
    read back from a row (a list, null, false, 0, "": stored data is always an object) hashes as its own JSON text,
    so it can never pass for an event written without data."""
    payload = _encode_data(data) if data or not isinstance(data, dict) else "{}"
    return _canonical(stream_key, seq, kind, subject_type, subject_id, source_ref, actor, amount_fen, occurred_at,
                      payload, prev_hash)


def event_hash(**fields) -> str:
    return hashlib.sha256(canonical_event_bytes(**fields)).hexdigest()


def encode_event_data(data: dict | None) -> str:
    """An event's data as the text its hash covers (and `append_event_rows` takes)."""
    return _encode_data(data) if data else "{}"


def append_events(*, stream_key: str, events: list[EventSpec], now: datetime) -> int:
    """Append events to one stream, chained to its head, in one bulk insert.

    Must run inside transaction.atomic(): the stream head is row-locked until commit, so two
    writers of the same stream queue up while writers of other streams run in parallel.
    """
    return append_event_rows(
        stream_key=stream_key,
        rows=[(e.kind, e.subject_type, str(e.subject_id), e.actor, e.amount_fen, e.source_ref,
               encode_event_data(e.data)) for e in events],
        now=now,
    )


def append_event_rows(*, stream_key: str, rows: list[tuple], now: datetime) -> int:
    """`append_events` for bulk paths: each row is a plain tuple (kind, subject_type, subject_id
    as str, actor, amount_fen or None, source_ref, data as `encode_event_data` gives it), so that
    thousands of events cost no object each. Same rules: inside transaction.atomic()."""
    if not rows:
        return 0
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("append_events must run inside transaction.atomic()")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # UTC, as the database gives it back, so a hash recomputed from the stored row matches.
    now = now.astimezone(dt_timezone.utc)
    stored_at = bulk.datetime_param(now)
    stream_pk, seq, prev = _lock_stream_head(stream_key, stored_at)
    # The same bytes as _canonical(), in one f-string per event ("\x1f" between the fields).
    occurred = now.isoformat(timespec="microseconds")
    stored_row = bulk.copy_time(now)  # the same moment, written once for every row
    head = [seq, prev]

    def chained():
        # A generator, so on PostgreSQL the rows stream into COPY as they are hashed: the server
        # stores one part while this process hashes the next.
        seq, prev = head
        sha256 = hashlib.sha256
        for kind, subject_type, subject_id, actor, amount_fen, source_ref, data_json in rows:
            seq += 1
            amount = "" if amount_fen is None else amount_fen
            digest = sha256(
                f"{stream_key}\x1f{seq}\x1f{kind}\x1f{subject_type}\x1f{subject_id}\x1f{source_ref}\x1f{actor}\x1f"
                f"{amount}\x1f{occurred}\x1f{data_json}\x1f{prev}".encode()
            ).hexdigest()
            yield (stream_key, seq, kind, subject_type, subject_id, source_ref, actor, amount_fen, data_json, stored_row,
                   prev, digest)
            prev = digest
        head[:] = [seq, prev]

    # COPY on PostgreSQL: the trace must not be what slows a bulk path down.
    bulk.insert_rows(table=TraceEvent._meta.db_table, columns=_EVENT_COLUMNS, rows=chained())
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TraceStream._meta.db_table} SET head_seq = %s, head_hash = %s, updated_at = %s "
                       "WHERE id = %s", [head[0], head[1], stored_at, stream_pk])
    return len(rows)


def _lock_stream_head(stream_key: str, stored_at) -> tuple[int, int, str]:
    """(id, head seq, head hash) of the stream, created empty if new, row-locked until commit.

    One statement when the stream exists (the usual case on the bulk paths); a new stream is inserted
    with ON CONFLICT DO NOTHING, so two first writers of one stream need no savepoint: the second
    waits for the first's row and then queues on its lock.
    """
    table = TraceStream._meta.db_table
    lock = " FOR UPDATE" if bulk.is_postgresql() else ""  # SQLite's write transaction is the lock there
    with connection.cursor() as cursor:
        select = f"SELECT id, head_seq, head_hash FROM {table} WHERE key = %s{lock}"
        cursor.execute(select, [stream_key])
        row = cursor.fetchone()
        if row is None:
            cursor.execute(
                f"INSERT INTO {table} (key, head_seq, head_hash, updated_at) VALUES (%s, 0, %s, %s) "
                "ON CONFLICT (key) DO NOTHING",
                [stream_key, GENESIS_HASH, stored_at],
            )
            cursor.execute(select, [stream_key])
            row = cursor.fetchone()
    return row


class TraceIntegrityError(RuntimeError):
    """The trace is not in a state a checkpoint may sign (run `manage.py verify_trace`)."""

    code = "trace_integrity"


# Any constant; identifies the checkpoint writer's PostgreSQL advisory lock.
_CHECKPOINT_LOCK_ID = 0x7472616365  # "trace"


def checkpoint_body(
    *, number, created_at, stream_count, event_count, merkle_root, changed_count, changed_root, prev_body_hash, key_id
) -> bytes:
    """The exact bytes a checkpoint's signature covers. Changing this breaks every stored signature."""
    created = created_at.astimezone(dt_timezone.utc).isoformat(timespec="microseconds")
    lines = (
        "ecny-trace-checkpoint/1",
        f"number={number}",
        f"created_at={created}",
        f"stream_count={stream_count}",
        f"event_count={event_count}",
        f"merkle_root={merkle_root}",
        f"changed_count={changed_count}",
        f"changed_root={changed_root}",
        f"prev_body_hash={prev_body_hash}",
        f"key_id={key_id}",
    )
    return "\n".join(lines).encode("ascii")


def checkpoint_body_of(checkpoint: TraceCheckpoint) -> bytes:
    return checkpoint_body(
        number=checkpoint.number, created_at=checkpoint.created_at, stream_count=checkpoint.stream_count,
        event_count=checkpoint.event_count, merkle_root=checkpoint.merkle_root,
        changed_count=checkpoint.changed_count, changed_root=checkpoint.changed_root,
        prev_body_hash=checkpoint.prev_body_hash, key_id=checkpoint.key_id,
    )


def make_checkpoint(*, now: datetime) -> TraceCheckpoint | None:
    """Sign a Merkle root over every stream head; store the heads that moved since the last checkpoint.

    One pass over the stream table in key order (O(log n) memory for the root); the heads that
    changed are written as rows, so the cost of a checkpoint grows with the activity since the
    previous one, not with everything ever traced. Returns None, writing nothing, when no head has
    moved since the previous checkpoint. Checkpoint writers are serialized (an advisory lock on
    PostgreSQL, the write lock on SQLite); appenders are never blocked on PostgreSQL.

    Raises:
        TraceIntegrityError: a stream head is behind what an earlier checkpoint recorded.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(dt_timezone.utc)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHECKPOINT_LOCK_ID])
        previous = TraceCheckpoint.objects.order_by("-number").first()
        checkpointed_seq = Subquery(
            TraceCheckpointHead.objects.filter(stream_key=OuterRef("key")).order_by("-seq").values("seq")[:1]
        )
        rows = (
            TraceStream.objects.filter(head_seq__gt=0)
            .annotate(checkpointed_seq=checkpointed_seq)
            .order_by(key_order("key"))
            .values_list("key", "head_seq", "head_hash", "checkpointed_seq")
        )
        all_heads, changed_heads = MerkleBuilder(), MerkleBuilder()
        changed: list[tuple[str, int, str]] = []
        event_count = 0
        for key, head_seq, head_hash, done_seq in rows.iterator(chunk_size=5000):
            if done_seq is not None and head_seq < done_seq:
                raise TraceIntegrityError(
                    f"stream {key!r}: head seq {head_seq} is behind checkpointed seq {done_seq}"
                )
            all_heads.add_head(stream_key=key, seq=head_seq, head_hash=head_hash)
            event_count += head_seq
            if head_seq != done_seq:
                changed.append((key, head_seq, head_hash))
                changed_heads.add_head(stream_key=key, seq=head_seq, head_hash=head_hash)
        if not changed:
            return None
        number = previous.number + 1 if previous else 1
        prev_body_hash = hashlib.sha256(checkpoint_body_of(previous)).hexdigest() if previous else GENESIS_HASH
        checkpoint = TraceCheckpoint(
            number=number, created_at=now, stream_count=all_heads.count, event_count=event_count,
            merkle_root=all_heads.root(), changed_count=len(changed), changed_root=changed_heads.root(),
            prev_body_hash=prev_body_hash, key_id=keys.key_id(),
        )
        checkpoint.signature = keys.sign(checkpoint_body_of(checkpoint))
        checkpoint.save()
        TraceCheckpointHead.objects.bulk_create(
            (TraceCheckpointHead(checkpoint=checkpoint, stream_key=k, seq=s, hash=h) for k, s, h in changed),
            batch_size=2000,
        )
    return checkpoint
