"""Verifying the trace: every event, every stream head, every checkpoint.

One streaming pass merges three ordered reads by stream key (code point order, see ordering.py):
the stream head rows, the events in (stream, seq) order, and the heads the checkpoints recorded.
Memory stays bounded by one stream's checkpointed heads, not by the size of the trace.

What is checked, and what each problem code means:

    event_altered        an event's stored content no longer hashes to its stored hash
    events_missing       a gap in a stream's seq numbers (events deleted from the middle)
    link_broken          an event's prev_hash is not the stored hash of the event before it
                         (events reordered or inserted, or the previous event rewritten with its hash)
    head_mismatch        the stream's head row disagrees with its last event (tail deleted or added)
    head_missing         events exist for a stream that has no head row
    stream_empty         a head row says the stream has events, but none exist (stream deleted)
    checkpoint_mismatch  an event a checkpoint recorded as a head now has another hash (stream rewritten)
    checkpoint_truncated an event a checkpoint recorded as a head no longer exists (stream cut or deleted)
    checkpoint_signature a checkpoint's signature does not verify (checkpoint altered) or its key is unknown
    checkpoint_chain     checkpoints missing from the numbered chain, or a link to the previous one broken
    checkpoint_heads     a checkpoint's stored heads do not match what it signed (rows added, altered, deleted)
    checkpoint_root      the latest checkpoint's root does not match the heads it and its predecessors recorded

Rows appended while the verification runs are not problems: a head row that disagrees with the
last event read is re-read once at the end before it is reported.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import TextField
from django.db.models.functions import Cast

from treasury import keys

from .merkle import MerkleBuilder
from .models import TraceCheckpoint, TraceCheckpointHead, TraceEvent, TraceStream
from .ordering import key_order
from .services import GENESIS_HASH, _canonical, canonical_event_bytes, checkpoint_body_of

CHUNK_SIZE = 5000

_EVENT_COLUMNS = (
    "stream_key", "seq", "id", "kind", "subject_type", "subject_id", "source_ref", "actor", "amount_fen",
    "data_text", "occurred_at", "prev_hash", "hash",
)


@dataclass(frozen=True)
class TraceProblem:
    code: str
    message: str
    stream_key: str = ""
    seq: int | None = None
    event_id: int | None = None
    checkpoint: int | None = None  # checkpoint number

    def __str__(self) -> str:
        where = []
        if self.checkpoint is not None:
            where.append(f"checkpoint #{self.checkpoint}")
        if self.stream_key:
            where.append(f"stream {self.stream_key!r}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.event_id is not None:
            where.append(f"event id {self.event_id}")
        return f"[{self.code}] {', '.join(where)}: {self.message}"

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "stream_key": self.stream_key, "seq": self.seq,
                "event_id": self.event_id, "checkpoint": self.checkpoint}


@dataclass
class VerificationReport:
    streams: int = 0
    events: int = 0
    checkpoints: int = 0
    checkpoint_heads: int = 0
    latest_checkpoint: int | None = None
    latest_root: str = ""
    stream_key: str | None = None  # set when only one stream was verified
    problems: list[TraceProblem] = field(default_factory=list)
    problem_count: int = 0
    max_problems: int = 1000

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: TraceProblem) -> None:
        self.problem_count += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(problem)

    def codes(self) -> set[str]:
        return {p.code for p in self.problems}

    def summary(self) -> str:
        scope = f"stream {self.stream_key!r}" if self.stream_key is not None else "trace"
        latest = (f", latest #{self.latest_checkpoint} root {self.latest_root[:16]}"
                  if self.latest_checkpoint is not None else "")
        counts = (f"{self.streams:,} streams, {self.events:,} events, {self.checkpoints:,} checkpoints "
                  f"({self.checkpoint_heads:,} recorded heads{latest})")
        if self.ok:
            return f"{scope} OK: {counts}"
        return f"{scope} FAILED: {self.problem_count:,} problems in {counts}"


def verify_trace(*, stream_key: str | None = None, max_problems: int = 1000) -> VerificationReport:
    """Verify the whole trace (or one stream) and return a report naming every problem found.

    Reads only; safe to run while the service appends. The latest checkpoint's Merkle root is
    recomputed from the recorded heads when the whole trace is verified; every checkpoint's
    signature, numbering, link to its predecessor and stored heads are checked in both modes.
    """
    report = VerificationReport(max_problems=max_problems, stream_key=stream_key)
    public_key_id = keys.key_id()
    # Read checkpoints first and bound every later read by them, so that a checkpoint written
    # meanwhile does not look like a head without its checkpoint.
    checkpoints = list(TraceCheckpoint.objects.order_by("number"))
    by_id = {c.pk: c for c in checkpoints}
    last_id = checkpoints[-1].pk if checkpoints else 0
    report.checkpoints = len(checkpoints)
    if checkpoints:
        report.latest_checkpoint, report.latest_root = checkpoints[-1].number, checkpoints[-1].merkle_root

    _verify_checkpoint_chain(checkpoints, public_key_id, report)
    _verify_checkpoint_heads(by_id, last_id, stream_key, report)

    # Open in this order (recorded heads, head rows, events): each read sees at least what the one
    # before it saw, so nothing committed meanwhile can look deleted.
    cp_heads = TraceCheckpointHead.objects.filter(checkpoint_id__lte=last_id)
    streams = TraceStream.objects.all()
    events = TraceEvent.objects.all()
    if stream_key is not None:
        cp_heads = cp_heads.filter(stream_key=stream_key)
        streams = streams.filter(key=stream_key)
        events = events.filter(stream_key=stream_key)
    cp_heads_iter = itertools.groupby(
        cp_heads.order_by(key_order("stream_key"), "seq", "checkpoint_id")
        .values_list("stream_key", "seq", "hash", "checkpoint__number").iterator(chunk_size=CHUNK_SIZE),
        key=lambda row: row[0],
    )
    streams_iter = iter(
        streams.order_by(key_order("key")).values_list("key", "head_seq", "head_hash").iterator(chunk_size=CHUNK_SIZE)
    )
    events_iter = itertools.groupby(
        events.annotate(data_text=Cast("data", TextField())).order_by(key_order("stream_key"), "seq")
        .values_list(*_EVENT_COLUMNS).iterator(chunk_size=CHUNK_SIZE),
        key=lambda row: row[0],
    )

    latest_heads = MerkleBuilder()
    latest_event_count = 0
    recheck: list[tuple[str, int, str, int | None]] = []  # (stream, last seq read, its hash, its id)
    cur_cp, cur_stream, cur_events = next(cp_heads_iter, None), next(streams_iter, None), next(events_iter, None)
    previous_key = None
    while cur_cp or cur_stream or cur_events:
        key = min(item[0] for item in (cur_cp, cur_stream, cur_events) if item)
        if previous_key is not None and key <= previous_key:
            raise RuntimeError(f"stream keys not read in code point order: {previous_key!r} then {key!r}")
        previous_key = key
        recorded = list(cur_cp[1]) if cur_cp and cur_cp[0] == key else []
        head_row = cur_stream if cur_stream and cur_stream[0] == key else None
        stream_events = cur_events[1] if cur_events and cur_events[0] == key else iter(())

        _verify_stream(key, head_row, stream_events, recorded, report, recheck)
        if recorded:
            _, top_seq, top_hash, _ = recorded[-1]
            latest_heads.add_head(stream_key=key, seq=top_seq, head_hash=top_hash)
            latest_event_count += top_seq

        if recorded:
            cur_cp = next(cp_heads_iter, None)
        if head_row is not None:
            cur_stream = next(streams_iter, None)
        if cur_events and cur_events[0] == key:
            cur_events = next(events_iter, None)

    _recheck_heads(recheck, report)
    if stream_key is None and checkpoints:
        latest = checkpoints[-1]
        root = latest_heads.root()
        if (root, latest_heads.count, latest_event_count) != (latest.merkle_root, latest.stream_count, latest.event_count):
            report.add(TraceProblem(
                "checkpoint_root",
                f"signed root {latest.merkle_root[:16]}… over {latest.stream_count} streams / {latest.event_count} "
                f"events, but the recorded heads give {root[:16]}… over {latest_heads.count} / {latest_event_count}",
                checkpoint=latest.number,
            ))
    return report


def _verify_stream(key, head_row, stream_events, recorded, report: VerificationReport, recheck) -> tuple[int, str]:
    """Walk one stream's events in seq order. Returns (last seq, its stored hash)."""
    expected = defaultdict(list)  # seq -> [(hash, checkpoint number)] recorded by checkpoints
    for _, seq, digest, number in recorded:
        expected[seq].append((digest, number))
    prev_seq, prev_hash, prev_event_id = 0, GENESIS_HASH, None
    for row in stream_events:
        (_, seq, event_id, kind, subject_type, subject_id, source_ref, actor, amount_fen, data_text,
         occurred_at, stored_prev, stored_hash) = row
        report.events += 1
        # The stored JSON text is usually the canonical text that was hashed (SQLite keeps it as
        # written): try it first, and parse and re-serialize only when that does not match (always
        # on PostgreSQL, whose jsonb rewrites the text). A match proves the content either way.
        recomputed = hashlib.sha256(_canonical(
            key, seq, kind, subject_type, subject_id, source_ref, actor, amount_fen, occurred_at, data_text,
            stored_prev,
        )).hexdigest()
        if recomputed != stored_hash:
            recomputed = hashlib.sha256(canonical_event_bytes(
                stream_key=key, seq=seq, kind=kind, subject_type=subject_type, subject_id=subject_id,
                source_ref=source_ref, actor=actor, amount_fen=amount_fen, data=_json_or_text(data_text),
                occurred_at=occurred_at, prev_hash=stored_prev,
            )).hexdigest()
        if recomputed != stored_hash:
            report.add(TraceProblem("event_altered", f"content ({kind}, {subject_type} {subject_id}) does not match "
                                    f"its stored hash {stored_hash[:16]}… (event altered)",
                                    stream_key=key, seq=seq, event_id=event_id))
        if seq != prev_seq + 1:
            missing = f"seq {prev_seq + 1}" if seq == prev_seq + 2 else f"seq {prev_seq + 1} to {seq - 1}"
            report.add(TraceProblem("events_missing", f"{missing} missing before this event (events deleted)",
                                    stream_key=key, seq=seq, event_id=event_id))
        elif stored_prev != prev_hash:
            report.add(TraceProblem("link_broken", _describe_broken_link(key, seq, stored_prev, stored_hash),
                                    stream_key=key, seq=seq, event_id=event_id))
        for digest, number in expected.pop(seq, ()):
            if digest != stored_hash:
                report.add(TraceProblem(
                    "checkpoint_mismatch",
                    f"checkpoint #{number} recorded this head with hash {digest[:16]}…, the event now has "
                    f"{stored_hash[:16]}… (stream rewritten after the checkpoint)",
                    stream_key=key, seq=seq, event_id=event_id, checkpoint=number,
                ))
        prev_seq, prev_hash, prev_event_id = seq, stored_hash, event_id

    for seq in sorted(expected):
        for digest, number in expected[seq]:
            what = ("that event is missing (deleted)" if seq < prev_seq
                    else f"the stream now ends at seq {prev_seq} (tail deleted or stream removed)")
            report.add(TraceProblem("checkpoint_truncated",
                                    f"checkpoint #{number} recorded head seq {seq} ({digest[:16]}…) but {what}",
                                    stream_key=key, seq=seq, checkpoint=number))
    if head_row is not None:
        report.streams += 1
        _, head_seq, head_hash = head_row
        if prev_seq == 0 and head_seq > 0:
            report.add(TraceProblem("stream_empty", f"head row says seq {head_seq} but the stream has no events "
                                    "(events deleted)", stream_key=key))
        elif (head_seq, head_hash) != (prev_seq, prev_hash):
            recheck.append((key, prev_seq, prev_hash, prev_event_id))
    elif prev_seq:
        report.streams += 1
        report.add(TraceProblem("head_missing", f"{prev_seq} events but no stream head row (head row deleted)",
                                stream_key=key))
    return prev_seq, prev_hash


def _json_or_text(text):
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text  # not JSON at all: hashed as it is, so it cannot match a stored hash by accident


def _describe_broken_link(key: str, seq: int, stored_prev: str, stored_hash: str) -> str:
    pointed = (TraceEvent.objects.filter(stream_key=key, hash=stored_prev)
               .order_by("seq").values_list("seq", flat=True).first())
    base = f"prev_hash {stored_prev[:16]}… is not the hash of seq {seq - 1}"
    if pointed is not None and pointed == seq - 2 and TraceEvent.objects.filter(
        stream_key=key, seq=seq - 1, prev_hash=stored_prev
    ).exists():
        return f"{base}: it is the hash of seq {pointed}, so seq {seq - 1} was put in between (event inserted)"
    if pointed is not None:
        return f"{base}: it is the hash of seq {pointed} (events reordered)"
    return f"{base}, nor of any event in the stream (an event inserted, or seq {seq - 1} rewritten together with its hash)"


def _recheck_heads(recheck, report: VerificationReport) -> None:
    """Re-read head rows that disagreed with the events read; report those that still do."""
    for key, last_seq, last_hash, last_event_id in recheck:
        head = TraceStream.objects.filter(key=key).values_list("head_seq", "head_hash").first()
        if head is None:
            report.add(TraceProblem("head_missing", "no stream head row (head row deleted)", stream_key=key))
            continue
        head_seq, head_hash = head
        if head_seq > last_seq:
            # Appended since the walk read this stream? Then the head's event exists now and hashes to it.
            now_hash = TraceEvent.objects.filter(stream_key=key, seq=head_seq).values_list("hash", flat=True).first()
            if now_hash == head_hash and TraceEvent.objects.filter(
                stream_key=key, seq=last_seq, hash=last_hash
            ).exists():
                continue
            report.add(TraceProblem("head_mismatch", f"head row says seq {head_seq} but the last event is seq "
                                    f"{last_seq} (tail events deleted)", stream_key=key, seq=last_seq,
                                    event_id=last_event_id))
        elif head_seq < last_seq:
            report.add(TraceProblem("head_mismatch", f"head row says seq {head_seq} but events go on to seq "
                                    f"{last_seq} (events appended outside the service)", stream_key=key,
                                    seq=last_seq, event_id=last_event_id))
        elif head_hash != last_hash:
            report.add(TraceProblem("head_mismatch", f"head row hash {head_hash[:16]}… is not the hash of the last "
                                    f"event {last_hash[:16]}… (last event rewritten)", stream_key=key,
                                    seq=last_seq, event_id=last_event_id))


def _verify_checkpoint_chain(checkpoints: list[TraceCheckpoint], public_key_id: str, report) -> None:
    prev_body_hash, expected_number = GENESIS_HASH, 1
    for cp in checkpoints:
        if cp.number != expected_number:
            gap = (f"#{expected_number}" if cp.number == expected_number + 1
                   else f"#{expected_number} to #{cp.number - 1}")
            report.add(TraceProblem("checkpoint_chain", f"checkpoint {gap} missing (deleted)", checkpoint=cp.number))
        body = checkpoint_body_of(cp)
        if cp.key_id != public_key_id:
            report.add(TraceProblem("checkpoint_signature", f"signed by key {cp.key_id}, not the service key "
                                    f"{public_key_id}", checkpoint=cp.number))
        elif not keys.verify(body, cp.signature):
            report.add(TraceProblem("checkpoint_signature", "signature does not verify (checkpoint altered)",
                                    checkpoint=cp.number))
        if cp.prev_body_hash != prev_body_hash:
            report.add(TraceProblem("checkpoint_chain", "does not link to the checkpoint before it "
                                    "(a checkpoint deleted, inserted or altered)", checkpoint=cp.number))
        prev_body_hash, expected_number = hashlib.sha256(body).hexdigest(), cp.number + 1


def _verify_checkpoint_heads(by_id: dict, last_id: int, stream_key, report) -> None:
    """Each checkpoint's stored heads must hash to the root it signed over them."""
    rows = TraceCheckpointHead.objects.filter(checkpoint_id__lte=last_id)
    if stream_key is not None:
        # One stream: its heads are checked against the chain in the walk; the per-checkpoint
        # roots need every head, so they are left to a full verification.
        report.checkpoint_heads = rows.filter(stream_key=stream_key).count()
        return
    seen = set()
    grouped = itertools.groupby(
        rows.order_by("checkpoint_id", key_order("stream_key"))
        .values_list("checkpoint_id", "stream_key", "seq", "hash").iterator(chunk_size=CHUNK_SIZE),
        key=lambda row: row[0],
    )
    for checkpoint_id, heads in grouped:
        cp = by_id[checkpoint_id]
        seen.add(checkpoint_id)
        builder = MerkleBuilder()
        for _, key, seq, digest in heads:
            builder.add_head(stream_key=key, seq=seq, head_hash=digest)
        report.checkpoint_heads += builder.count
        _compare_heads(cp, builder, report)
    for checkpoint_id, cp in by_id.items():
        if checkpoint_id not in seen:
            _compare_heads(cp, MerkleBuilder(), report)


def _compare_heads(cp: TraceCheckpoint, builder: MerkleBuilder, report) -> None:
    root = builder.root()
    if (builder.count, root) != (cp.changed_count, cp.changed_root):
        report.add(TraceProblem(
            "checkpoint_heads",
            f"signed {cp.changed_count} changed heads with root {cp.changed_root[:16]}…, the stored heads are "
            f"{builder.count} with root {root[:16]}… (recorded heads added, altered or deleted)",
            checkpoint=cp.number,
        ))
