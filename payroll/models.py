"""Payroll batches (代发工资批次) and their lines.

A batch goes:

    uploaded -> validated | rejected
    validated -> submitted -> approved (another employer user: maker-checker)
    approved -> funded (the employer's corporate wallet holds the total) -> paying -> paid | partially_paid -> closed
    validated | submitted | approved | funded -> cancelled (with a reason)

A line's payment state is its transfer's state (treasury.Transfer): the line only records which
transfer pays it, and whether the employer held it back.
"""
from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class BatchState(models.TextChoices):
    UPLOADED = "uploaded", "已上传 (uploaded)"
    VALIDATED = "validated", "已校验 (validated)"
    REJECTED = "rejected", "已拒绝 (rejected)"
    SUBMITTED = "submitted", "待审批 (submitted)"
    APPROVED = "approved", "已审批 (approved)"
    FUNDED = "funded", "资金已到位 (funded)"
    PAYING = "paying", "发放中 (paying)"
    PAID = "paid", "已发放 (paid)"
    PARTIALLY_PAID = "partially_paid", "部分发放 (partially paid)"
    CLOSED = "closed", "已关闭 (closed)"
    CANCELLED = "cancelled", "已取消 (cancelled)"


B = BatchState


class PayrollBatch(ConcurrentTransitionMixin, models.Model):
    employer = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="payroll_batches")
    payer_wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+")
    period = models.CharField("工资所属期 (pay period)", max_length=7)  # YYYY-MM
    filename = models.CharField(max_length=255)
    file_format = models.CharField(max_length=8)
    file_sha256 = models.CharField(max_length=64)
    upload_path = models.CharField(max_length=255)  # under MEDIA_ROOT
    line_total = models.PositiveIntegerField(default=0)  # data lines in the file
    payable_count = models.PositiveIntegerField(default=0)  # lines stored (valid, not held)
    held_count = models.PositiveIntegerField(default=0)
    total_net_fen = models.BigIntegerField(default=0)  # of the lines to pay
    total_gross_fen = models.BigIntegerField(default=0)
    problem_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list)  # [{line, column, code, message}], bounded
    state = FSMField(default=B.UPLOADED, choices=B.choices, protected=True)
    prepared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cancel_reason = models.CharField(max_length=255, blank=True)
    paused = models.BooleanField("已暂停 (paused)", default=False)  # paying stopped: pending transfers held
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    paying_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "代发工资批次 (payroll batch)"
        indexes = [models.Index(fields=["employer", "created_at"])]
        constraints = [
            # The same file twice for an employer is refused (unless the first was rejected or cancelled).
            models.UniqueConstraint(
                fields=["employer", "file_sha256"],
                condition=~models.Q(state__in=["rejected", "cancelled"]),
                name="payroll_same_file_once",
            ),
        ]

    def __str__(self) -> str:
        return f"payroll batch {self.pk} {self.period} {self.state}"

    @property
    def batch_ref(self) -> str:
        """The transfer core's batch reference (and trace stream) of this batch's payments."""
        return f"payroll-{self.pk}"

    @transition(field=state, source=B.UPLOADED, target=B.VALIDATED)
    def validate(self):
        pass

    @transition(field=state, source=B.UPLOADED, target=B.REJECTED)
    def reject(self):
        pass

    @transition(field=state, source=B.VALIDATED, target=B.SUBMITTED)
    def submit(self):
        pass

    @transition(field=state, source=B.SUBMITTED, target=B.APPROVED)
    def approve(self):
        pass

    @transition(field=state, source=B.APPROVED, target=B.FUNDED)
    def fund(self):
        pass

    @transition(field=state, source=B.FUNDED, target=B.PAYING)
    def start_paying(self):
        pass

    @transition(field=state, source=B.PAYING, target=B.PAID)
    def finish_paid(self):
        pass

    @transition(field=state, source=B.PAYING, target=B.PARTIALLY_PAID)
    def finish_partially_paid(self):
        pass

    @transition(field=state, source=B.PARTIALLY_PAID, target=B.PAYING)
    def retry(self):
        pass

    @transition(field=state, source=[B.PAID, B.PARTIALLY_PAID], target=B.CLOSED)
    def close(self):
        pass

    @transition(field=state, source=[B.VALIDATED, B.SUBMITTED, B.APPROVED, B.FUNDED], target=B.CANCELLED)
    def cancel(self):
        pass


class PayrollLine(models.Model):
    batch = models.ForeignKey(PayrollBatch, on_delete=models.CASCADE, related_name="lines")
    line_no = models.PositiveIntegerField()  # as the employer sees it in the file
    employee_no = models.CharField(max_length=40)
    name = models.CharField(max_length=100)
    resident_id = models.CharField(max_length=18)
    wallet_id = models.CharField(max_length=16)
    components = models.JSONField(default=dict)  # {"basic_wage": fen, ...}
    deductions = models.JSONField(default=dict)  # {"social_insurance": fen, ...}
    gross_fen = models.BigIntegerField()
    net_fen = models.BigIntegerField()
    warnings = models.JSONField(default=list)
    held = models.BooleanField(default=False)  # not paid in this run (the employer's choice or a refusal)
    hold_reason = models.CharField(max_length=255, blank=True)
    returned = models.BooleanField(default=False)  # given up: the employer pays this person another way
    attempts = models.PositiveSmallIntegerField(default=0)  # transfers made for this line so far
    payee_wallet = models.ForeignKey("treasury.Wallet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    transfer = models.OneToOneField(
        "treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT, related_name="payroll_line"
    )

    class Meta:
        verbose_name = "代发工资明细 (payroll line)"
        constraints = [
            models.UniqueConstraint(fields=["batch", "line_no"], name="payroll_line_once"),
            models.CheckConstraint(name="payroll_line_net_positive", condition=models.Q(net_fen__gt=0)),
        ]
