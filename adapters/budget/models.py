"""The message log: every SOAP exchange with the budget-management system, attempt by attempt.

Append-only: a row is written once per attempt (retries, faults and timeouts included) and never
changed. Bodies are kept whole (the record of what was sent and answered, for disputes and audit),
zlib-compressed above `COMPRESS_ABOVE_BYTES` (a 50,000-detail voucher of ~14 MB stores in ~0.6 MB).
They carry payees' names and wallet ids, so only the roles of the message pages read them; lists show
none of it. The api key is a header and never stored.
"""
from django.db import models
from django.db.models import Q
from django.utils import timezone

from adapters.budget.messages import OPERATIONS


class BudgetMessage(models.Model):
    class Direction(models.TextChoices):
        OUTBOUND = "outbound", "发出 (outbound)"
        INBOUND = "inbound", "收到 (inbound)"

    class Outcome(models.TextChoices):
        OK = "ok", "成功 (ok)"
        REFUSED = "refused", "拒绝 (refused)"  # answered: the voucher or report was not accepted
        FAULT = "fault", "故障 (SOAP fault)"  # terminal, nothing applied
        UNAVAILABLE = "unavailable", "不可用 (unavailable)"  # timeout, 5xx, unreadable reply: outcome unknown

    class Encoding(models.TextChoices):
        PLAIN = "", "原文 (plain)"
        ZLIB = "zlib", "zlib"

    operation = models.CharField("操作 (operation)", max_length=32, choices=[(op, op) for op in OPERATIONS])
    key = models.CharField("业务键 (voucher/report number or query)", max_length=128)
    direction = models.CharField("方向 (direction)", max_length=8, choices=Direction.choices,
                                 default=Direction.OUTBOUND)
    request_body = models.BinaryField("请求报文 (request body)")
    request_encoding = models.CharField("请求编码 (request encoding)", max_length=8, choices=Encoding.choices,
                                        blank=True, default="")
    request_size = models.PositiveIntegerField("请求字节数 (request bytes)")
    response_body = models.BinaryField("应答报文 (response body)", blank=True, default=b"")
    response_encoding = models.CharField("应答编码 (response encoding)", max_length=8, choices=Encoding.choices,
                                         blank=True, default="")
    response_size = models.PositiveIntegerField("应答字节数 (response bytes)", default=0)
    outcome = models.CharField("结果 (outcome)", max_length=16, choices=Outcome.choices)
    code = models.CharField("代码 (fault or refusal code)", max_length=64, blank=True, default="")
    error_text = models.TextField("错误 (error)", blank=True, default="")
    http_status = models.PositiveSmallIntegerField("HTTP 状态 (HTTP status)", null=True, blank=True)
    duration_ms = models.PositiveIntegerField("耗时毫秒 (duration, ms)")
    attempt = models.PositiveSmallIntegerField("尝试次数 (attempt)", default=1)
    created_at = models.DateTimeField("时间 (created at)", default=timezone.now)

    class Meta:
        verbose_name = "报文 (budget system message)"
        verbose_name_plural = "报文日志 (budget system message log)"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["key", "created_at"], name="budget_msg_key"),
            models.Index(fields=["operation", "created_at"], name="budget_msg_operation"),
            models.Index(fields=["outcome", "created_at"], name="budget_msg_outcome"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(attempt__gte=1), name="budget_msg_attempt_positive"),
            models.CheckConstraint(condition=Q(outcome__in=["ok", "refused", "fault", "unavailable"]),
                                   name="budget_msg_outcome_known"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key} #{self.attempt} {self.outcome}"
