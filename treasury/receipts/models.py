"""Receipts (电子回单): one per settled transfer, one summary per batch.

A receipt is issued once and never changes: its structured payload is signed with the service key,
embedded in the PDF with the signature, and the SHA-256 of the exact PDF bytes is kept, so any
later edit of the file (visible page or attachment) is caught by verification.
"""
from django.db import models


class Receipt(models.Model):
    class Kind(models.TextChoices):
        TRANSFER = "transfer", "转账回单 (transfer receipt)"
        BATCH = "batch", "批量汇总回单 (batch summary receipt)"

    # Kind letter + business date (Asia/Shanghai) + a sequence: the transfer id for a transfer
    # receipt, the batch's first transfer id for a batch receipt. Deterministic, so two workers
    # issuing the same receipt collide on the unique constraint instead of burning numbers.
    number = models.CharField("回单编号 (receipt number)", max_length=40, unique=True)
    kind = models.CharField("类型 (kind)", max_length=10, choices=Kind.choices)
    transfer = models.OneToOneField(
        "treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT, related_name="receipt"
    )
    batch_ref = models.CharField("批次 (batch reference)", max_length=80, db_index=True)
    organization = models.ForeignKey(
        "treasury.Organization", on_delete=models.PROTECT, related_name="receipts", null=True, blank=True
    )
    # The signed structured data, exactly as embedded (canonical JSON of this dict).
    payload = models.JSONField("回单数据 (structured data)")
    payload_sha256 = models.CharField(max_length=64)
    signature = models.TextField("签名 (Ed25519 signature, base64)")
    key_id = models.CharField("签名密钥 (key id)", max_length=16)
    # Derived from the signature; printed on the page and in the QR link.
    verification_code = models.CharField("验证码 (verification code)", max_length=16)
    file_path = models.CharField("文件 (path under MEDIA_ROOT)", max_length=255)
    pdf_sha256 = models.CharField("文件摘要 (SHA-256 of the issued PDF)", max_length=64)
    pdf_size = models.PositiveIntegerField(default=0)
    issued_at = models.DateTimeField("出具时间 (issued at)")

    class Meta:
        verbose_name = "电子回单 (receipt)"
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="receipt_transfer_matches_kind",
                condition=(
                    models.Q(kind="transfer", transfer__isnull=False)
                    | models.Q(kind="batch", transfer__isnull=True)
                ),
            ),
            # One summary receipt per batch.
            models.UniqueConstraint(
                fields=["batch_ref"], condition=models.Q(kind="batch"), name="receipt_one_summary_per_batch"
            ),
        ]
        indexes = [models.Index(fields=["organization", "issued_at"])]

    def __str__(self) -> str:
        return self.number
