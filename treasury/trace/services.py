"""Appending to the trace. Call inside the transaction that makes the change the events describe."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import transaction

from .models import TraceEvent, TraceStream

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


def canonical_event_bytes(
    *, stream_key, seq, kind, subject_type, subject_id, source_ref, actor, amount_fen, data, occurred_at, prev_hash
) -> bytes:
    """The exact bytes an event's hash covers. Changing this breaks every stored chain: don't."""
    occurred = occurred_at.isoformat(timespec="microseconds") if isinstance(occurred_at, datetime) else str(occurred_at)
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) if data else "{}"
    fields = (stream_key, str(seq), kind, subject_type, str(subject_id), source_ref, actor,
              "" if amount_fen is None else str(amount_fen), occurred, payload, prev_hash)
    return "\x1f".join(fields).encode("utf-8")


def event_hash(**fields) -> str:
    return hashlib.sha256(canonical_event_bytes(**fields)).hexdigest()


def append_events(*, stream_key: str, events: list[EventSpec], now: datetime) -> list[TraceEvent]:
    """Append events to one stream, chained to its head, in one bulk insert.

    Must run inside transaction.atomic(): the stream head is row-locked until commit, so two
    writers of the same stream queue up while writers of other streams run in parallel.
    """
    if not events:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("append_events must run inside transaction.atomic()")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # UTC, as the database gives it back, so a hash recomputed from the stored row matches.
    now = now.astimezone(dt_timezone.utc)
    stream, _ = TraceStream.objects.get_or_create(key=stream_key, defaults={"updated_at": now})
    stream = TraceStream.objects.select_for_update().get(pk=stream.pk)
    seq, prev = stream.head_seq, stream.head_hash
    rows = []
    for spec in events:
        seq += 1
        fields = dict(
            stream_key=stream_key, seq=seq, kind=spec.kind, subject_type=spec.subject_type,
            subject_id=str(spec.subject_id), source_ref=spec.source_ref, actor=spec.actor,
            amount_fen=spec.amount_fen, data=spec.data, occurred_at=now, prev_hash=prev,
        )
        digest = event_hash(**fields)
        rows.append(TraceEvent(**fields, hash=digest))
        prev = digest
    TraceEvent.objects.bulk_create(rows, batch_size=2000)
    TraceStream.objects.filter(pk=stream.pk).update(head_seq=seq, head_hash=prev, updated_at=now)
    return rows
