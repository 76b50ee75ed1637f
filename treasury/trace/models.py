"""The trace: an append-only, hash-chained, signed event log.

Events are chained per stream (a batch, a document, a single transfer), not globally, so that
appends in different streams run in parallel. Each event's hash covers its canonical content and
the previous event's hash in the same stream; `seq` numbers a stream's events without gaps.
Periodic checkpoints sign a Merkle root over all stream heads, so that rewriting a whole stream,
or cutting its tail, is caught too.
"""
from django.db import models


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
            models.Index(fields=["source_ref"]),
            models.Index(fields=["occurred_at"]),
        ]


class TraceCheckpoint(models.Model):
    created_at = models.DateTimeField()
    stream_count = models.BigIntegerField()
    event_count = models.BigIntegerField()
    merkle_root = models.CharField(max_length=64)
    # {stream_key: [head_seq, head_hash]} at checkpoint time.
    heads = models.JSONField()
    key_id = models.CharField(max_length=16)
    signature = models.TextField()  # base64 Ed25519 over the canonical checkpoint body

    class Meta:
        verbose_name = "追溯检查点 (trace checkpoint)"
        ordering = ["-created_at"]
