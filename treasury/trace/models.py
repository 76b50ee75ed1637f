"""The trace: an append-only, hash-chained, signed event log.

Events are chained per stream (a batch, a document, a single transfer), not globally, so that
appends in different streams run in parallel. Each event's hash covers its canonical content and
the previous event's hash in the same stream; `seq` numbers a stream's events without gaps.
Periodic checkpoints sign a Merkle root over all stream heads, so that rewriting a whole stream,
or cutting its tail, is caught too.
"""
from django.db import models

# The subject type of transfer events (written by treasury.services.transfers).
TRANSFER_SUBJECT = "treasury.transfer"


class TraceStream(models.Model):
    key = models.CharField(max_length=120, unique=True)
    head_seq = models.BigIntegerField(default=0)  # seq of the last event; 0 = empty
    head_hash = models.CharField(max_length=64, default="0" * 64)
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "追溯流 (trace stream)"


class TraceEvent(models.Model):
    stream_key = models.CharField(max_length=120)
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=60)  # "transfer.created", "transfer.settled", "payroll.batch.approved", ...
    # What the event is about: "app_label.model" and its primary key.
    subject_type = models.CharField(max_length=60)
    subject_id = models.CharField(max_length=64)
    source_ref = models.CharField(max_length=120, blank=True)  # the source document behind it, if any
    actor = models.CharField(max_length=150)  # a username, or "system"/"operator"
    amount_fen = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict)
    occurred_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "追溯事件 (trace event)"
        constraints = [models.UniqueConstraint(fields=["stream_key", "seq"], name="trace_event_stream_seq")]
        indexes = [
            models.Index(fields=["subject_type", "subject_id"]),
            # Transfer events are found by subject; only document events need these. Each index a
            # transfer event skips is one less insert on the bulk path (three events per transfer).
            models.Index(fields=["source_ref"], name="trace_event_doc_source_ref",
                         condition=~models.Q(subject_type=TRANSFER_SUBJECT)),
            # Document events (a payroll batch approved, a voucher issued) inside a batch stream, found
            # without reading the stream's many transfer events; transfer events are not indexed here.
            models.Index(fields=["stream_key", "seq"], name="trace_event_doc_stream",
                         condition=~models.Q(subject_type=TRANSFER_SUBJECT)),
        ]


class TraceCheckpoint(models.Model):
    """A signed statement of every stream's head at one moment.

    The signature covers the Merkle root over all stream heads (sorted by key), the counts, the
    root over the heads that changed since the previous checkpoint (stored as rows in
    TraceCheckpointHead, not as one JSON document that would grow with every stream ever made),
    and the hash of the previous checkpoint's signed body, so checkpoints form a chain too.
    """

    number = models.PositiveBigIntegerField(unique=True)  # 1, 2, 3 ... without gaps
    created_at = models.DateTimeField()
    stream_count = models.BigIntegerField()
    event_count = models.BigIntegerField()
    merkle_root = models.CharField(max_length=64)  # over all stream heads
    changed_count = models.BigIntegerField()  # heads stored with this checkpoint
    changed_root = models.CharField(max_length=64)  # Merkle root over those heads
    prev_body_hash = models.CharField(max_length=64)  # sha256 of the previous checkpoint's signed body
    key_id = models.CharField(max_length=16)
    signature = models.TextField()  # base64 Ed25519 over the canonical checkpoint body

    class Meta:
        verbose_name = "追溯检查点 (trace checkpoint)"
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"checkpoint #{self.number} {self.merkle_root[:16]}"


class TraceCheckpointHead(models.Model):
    """A stream head recorded by a checkpoint. A checkpoint stores only the heads that moved since
    the one before; the full head set at checkpoint N is, per stream, the highest seq recorded by
    checkpoints 1..N (heads only ever grow)."""

    checkpoint = models.ForeignKey(TraceCheckpoint, on_delete=models.PROTECT, related_name="heads")
    stream_key = models.CharField(max_length=120)
    seq = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = "检查点流头 (checkpointed stream head)"
        constraints = [
            models.UniqueConstraint(fields=["checkpoint", "stream_key"], name="trace_checkpoint_head_once"),
        ]
        indexes = [models.Index(fields=["stream_key", "seq"], name="trace_cphead_stream_seq")]
