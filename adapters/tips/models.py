"""The message log: every TIPS message in and out, one row per message (and per attempt of an outbound one).

Append-only: a row is written once and never changed. An inbound request and the reply the service
gave are two rows (in, then out, the reply's MsgRef = the request's MsgID); an outbound message and
the reply the tax system gave likewise. Bodies are the CFX documents as they travelled (GBK or UTF-8),
zlib-compressed above `COMPRESS_ABOVE_BYTES`; when the SOAP envelope itself could not be read, the raw
bytes received are kept instead. They carry taxpayers' names and wallet ids, so only the roles of the
message pages read them; lists show none of it.
"""
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import pgettext_lazy

# What each message number is, for the message pages (the numbers themselves: adapters.tips.messages). In a
# translation context of their own: a page's "Refund order" may be a document, not a message.
MESSAGE_NAMES = {
    "9114": pgettext_lazy("TIPS message", "Agreement verification"),
    "9115": pgettext_lazy("TIPS message", "Agreement verification reply"),
    "3001": pgettext_lazy("TIPS message", "Real-time deduction"),
    "2001": pgettext_lazy("TIPS message", "Real-time deduction reply"),
    "3102": pgettext_lazy("TIPS message", "Batch deduction package"),
    "9121": pgettext_lazy("TIPS message", "Package acknowledgement"),
    "2102": pgettext_lazy("TIPS message", "Batch deduction result"),
    "9120": pgettext_lazy("TIPS message", "Generic reply"),
    "9005": pgettext_lazy("TIPS message", "Connectivity test"),
    "3111": pgettext_lazy("TIPS message", "Check detail"),
    "2111": pgettext_lazy("TIPS message", "Check result"),
    "3139": pgettext_lazy("TIPS message", "Treasury entry detail"),
    "1104": pgettext_lazy("TIPS message", "Refund order"),
    "2104": pgettext_lazy("TIPS message", "Refund result"),
    "1021": pgettext_lazy("TIPS message", "Reversal request"),
    "2021": pgettext_lazy("TIPS message", "Reversal reply"),
    "1123": pgettext_lazy("TIPS message", "Stop payment request"),
    "2123": pgettext_lazy("TIPS message", "Stop payment reply"),
    "5101": pgettext_lazy("TIPS message", "Premium declaration"),
    "5102": pgettext_lazy("TIPS message", "Premium declaration reply"),
    "5103": pgettext_lazy("TIPS message", "Premium payment notice"),
    "5104": pgettext_lazy("TIPS message", "Flexible-employment payment notice"),
}


class TipsMessage(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in", "收到 (inbound)"
        OUTBOUND = "out", "发出 (outbound)"

    class Encoding(models.TextChoices):
        PLAIN = "", "原文 (plain)"
        ZLIB = "zlib", "zlib"

    direction = models.CharField("方向 (direction)", max_length=3, choices=Direction.choices)
    msg_no = models.CharField("报文编号 (MsgNo)", max_length=4, blank=True, default="")
    msg_id = models.CharField("报文标识号 (MsgID)", max_length=20, blank=True, default="")
    msg_ref = models.CharField("报文参考号 (MsgRef)", max_length=20, blank=True, default="")
    key = models.CharField("业务键 (TaxOrgCode-EntrustDate-TraNo / PackNo)", max_length=64, blank=True, default="")
    peer = models.CharField("对方节点 (peer node)", max_length=12, blank=True, default="")
    body = models.BinaryField("报文 (body)", blank=True, default=b"")
    body_encoding = models.CharField("存储编码 (storage encoding)", max_length=8, choices=Encoding.choices, blank=True,
                                     default="")
    body_size = models.PositiveIntegerField("字节数 (bytes)", default=0)
    signature_valid = models.BooleanField("签名有效 (signature valid)", null=True, blank=True)
    result = models.CharField("处理码 (result code)", max_length=8, blank=True, default="")
    error_text = models.TextField("错误 (error)", blank=True, default="")
    http_status = models.PositiveSmallIntegerField("HTTP 状态 (HTTP status)", null=True, blank=True)
    duration_ms = models.PositiveIntegerField("耗时毫秒 (duration, ms)", default=0)
    attempt = models.PositiveSmallIntegerField("尝试次数 (attempt)", default=1)
    created_at = models.DateTimeField("时间 (created at)", default=timezone.now)

    class Meta:
        verbose_name = "TIPS 报文 (TIPS message)"
        verbose_name_plural = "TIPS 报文日志 (TIPS message log)"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["key", "created_at"], name="tips_msg_key"),
            models.Index(fields=["msg_no", "created_at"], name="tips_msg_no"),
            models.Index(fields=["msg_id"], name="tips_msg_id"),
            models.Index(fields=["msg_ref"], name="tips_msg_ref"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(attempt__gte=1), name="tips_msg_attempt_positive"),
            models.CheckConstraint(condition=Q(direction__in=["in", "out"]), name="tips_msg_direction_known"),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.msg_no or '?'} {self.msg_id or '-'} {self.result}"

    @property
    def msg_name(self) -> str:
        return str(MESSAGE_NAMES.get(self.msg_no, ""))
