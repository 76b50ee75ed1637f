"""Payroll batches (代发工资批次) and their lines.

A batch goes:

    uploaded -> validated | rejected
    validated -> submitted -> approved (another employer user: maker-checker)
    approved -> funded (the employer's corporate wallet holds the total) -> paying -> paid | partially_paid -> closed
    partially_paid | paid -> paying (lines retried; paid: a salary came back after the run was paid)
    paid -> partially_paid (such a line returned instead)
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
    # What the file says, whatever its bytes (services._LineBuffer.lines_sha256): the pay period and every stored
    # line, in any order. A file saved again, as CSV instead of XLSX, or with other blank rows is the same file.
    lines_sha256 = models.CharField(max_length=64, blank=True, default="")
    upload_path = models.CharField(max_length=255)  # under MEDIA_ROOT
    line_total = models.PositiveIntegerField(default=0)  # data lines in the file
    payable_count = models.PositiveIntegerField(default=0)  # lines stored (valid, not held)
    held_count = models.PositiveIntegerField(default=0)
    total_net_fen = models.BigIntegerField(default=0)  # of the lines to pay
    total_gross_fen = models.BigIntegerField(default=0)
    problem_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list)  # [{line, column, code, message}], bounded
    # Lines stored with at least one warning (PayrollLine.warnings), counted at upload: the page and the API
    # show it without counting a 100,000-line batch's lines. Warnings never stop paying.
    warning_count = models.PositiveIntegerField("有提示的明细数 (lines with warnings)", default=0)
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
    # Set once every payable line has its transfer (services.make_line_transfers); until then the
    # batch is still paying, which finish_batch_if_done learns without counting lines.
    transfers_made_at = models.DateTimeField(null=True, blank=True)
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
            models.UniqueConstraint(
                fields=["employer", "lines_sha256"],
                condition=~models.Q(state__in=["rejected", "cancelled"]) & ~models.Q(lines_sha256=""),
                name="payroll_same_lines_once",
            ),
        ]

    def __str__(self) -> str:
        return f"payroll batch {self.pk} {self.period} {self.state}"

    @property
    def batch_ref(self) -> str:
        """The transfer core's batch reference (and trace stream) of this batch's payments."""
        return f"payroll-{self.pk}"

    @staticmethod
    def pk_of_batch_ref(batch_ref: str) -> int | None:
        """The batch whose `batch_ref` this is; None for any other reference."""
        prefix, _, pk = batch_ref.partition("-")
        return int(pk) if prefix == "payroll" and pk.isdigit() else None

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

    # A paid run too: a salary may come back after the run was paid (reversed, returned by the operator).
    @transition(field=state, source=[B.PARTIALLY_PAID, B.PAID], target=B.PAYING)
    def retry(self):
        pass

    @transition(field=state, source=B.PAID, target=B.PARTIALLY_PAID)
    def line_given_up(self):
        """A line of a paid run came back and is returned (given up): the run is paid only in part."""

    @transition(field=state, source=[B.PAID, B.PARTIALLY_PAID], target=B.CLOSED)
    def close(self):
        pass

    @transition(field=state, source=[B.VALIDATED, B.SUBMITTED, B.APPROVED, B.FUNDED], target=B.CANCELLED)
    def cancel(self):
        pass


class PayrollLine(models.Model):
    # No index of its own: the (batch, line_no) constraint's index starts with it.
    batch = models.ForeignKey(PayrollBatch, on_delete=models.CASCADE, related_name="lines", db_index=False)
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
    # The wallet's type and class as the operator reported them when the file was checked: paying
    # registers the payee's wallet from these instead of asking the operator again.
    wallet_type = models.CharField(max_length=8, blank=True)
    wallet_class = models.PositiveSmallIntegerField(null=True, blank=True)
    transfer = models.OneToOneField(
        "treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT, related_name="payroll_line"
    )

    class Meta:
        verbose_name = "代发工资明细 (payroll line)"
        constraints = [
            models.UniqueConstraint(fields=["batch", "line_no"], name="payroll_line_once"),
            models.CheckConstraint(name="payroll_line_net_positive", condition=models.Q(net_fen__gt=0)),
        ]



class ArchiveState(models.TextChoices):
    QUEUED = "queued", "排队中 (queued)"
    BUILDING = "building", "生成中 (building)"
    READY = "ready", "可下载 (ready)"
    FAILED = "failed", "失败 (failed)"


class PayslipArchive(ConcurrentTransitionMixin, models.Model):
    """The zip of a batch's payslips, built by a Celery task into a file under MEDIA_ROOT.

    queued -> building -> ready | failed. One archive at a time is queued or building for a batch
    (constraint); a ready one is reused while the batch's payslips would read the same (`fingerprint`).
    """

    batch = models.ForeignKey(PayrollBatch, on_delete=models.CASCADE, related_name="payslip_archives")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = FSMField(default=ArchiveState.QUEUED, choices=ArchiveState.choices, protected=True)
    done_count = models.PositiveIntegerField(default=0)  # payslips written so far
    total_count = models.PositiveIntegerField(default=0)
    # What the payslips print of the batch when building started (payslips.content_fingerprint).
    fingerprint = models.CharField(max_length=64, blank=True)
    file_path = models.CharField(max_length=255, blank=True)  # under MEDIA_ROOT, once ready
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "工资条压缩包 (payslip archive)"
        constraints = [
            models.UniqueConstraint(
                fields=["batch"], condition=models.Q(state__in=["queued", "building"]),
                name="payslip_archive_one_at_a_time",
            ),
        ]

    def __str__(self) -> str:
        return f"payslip archive {self.pk} of batch {self.batch_id} {self.state}"

    @property
    def percent(self) -> int:
        return min(100, 100 * self.done_count // self.total_count) if self.total_count else 0

    @transition(field=state, source=[ArchiveState.QUEUED, ArchiveState.BUILDING], target=ArchiveState.BUILDING)
    def start(self):
        """Building again is allowed: a task delivered twice (its worker died) starts from scratch."""

    @transition(field=state, source=ArchiveState.BUILDING, target=ArchiveState.READY)
    def finish(self):
        pass

    @transition(field=state, source=[ArchiveState.QUEUED, ArchiveState.BUILDING], target=ArchiveState.FAILED)
    def fail(self):
        pass

class UnionSettings(models.Model):
    """A grassroots union (基层工会) of an employer and its rules. Rates are basis points (1/100 %)."""

    union = models.OneToOneField("treasury.Organization", on_delete=models.PROTECT, related_name="union_settings")
    employer = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="unions")
    wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+")
    higher_union_wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+")
    # Members' dues (会费): 0.5% of the dues base; the base is these pay components (bonuses,
    # allowances and subsidies are not part of it), counted in whole 10 yuan.
    dues_rate_bp = models.PositiveIntegerField("会费比例 (dues rate, basis points)", default=50)
    dues_base_components = models.JSONField(default=list)  # empty = ["basic_wage"]
    # Union funds (工会经费): 2% of the gross payroll, split with the higher-level union.
    funds_rate_bp = models.PositiveIntegerField("经费比例 (funds rate, basis points)", default=200)
    grassroots_share_bp = models.PositiveIntegerField("基层留成 (grassroots share, basis points)", default=6000)
    dues_in_payroll = models.BooleanField("会费随工资代扣 (dues deducted in the payroll run)", default=True)

    class Meta:
        verbose_name = "工会设置 (union settings)"
        constraints = [
            models.CheckConstraint(name="union_share_at_most_all", condition=models.Q(grassroots_share_bp__lte=10000)),
        ]

    @property
    def base_components(self) -> list[str]:
        return self.dues_base_components or ["basic_wage"]


class UnionMember(models.Model):
    union = models.ForeignKey(UnionSettings, on_delete=models.PROTECT, related_name="members")
    employee_no = models.CharField(max_length=40, blank=True)
    name = models.CharField(max_length=100)
    resident_id = models.CharField(max_length=18)
    wallet_id = models.CharField(max_length=16)
    # The member allows the union to collect dues from their wallet each month (代扣授权).
    standing_authorisation = models.BooleanField(default=False)
    dues_base_fen = models.BigIntegerField("会费基数 (declared dues base, fen)", default=0)
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "工会会员 (union member)"
        constraints = [models.UniqueConstraint(fields=["union", "resident_id"], name="union_member_once")]


class DuesCall(models.Model):
    """One member's dues for one month, paid in the payroll run or collected by the union's call."""

    class Source(models.TextChoices):
        PAYROLL = "payroll", "随工资代扣 (deducted in payroll)"
        CALL = "call", "工会按月收取 (monthly call)"

    union = models.ForeignKey(UnionSettings, on_delete=models.PROTECT, related_name="dues_calls")
    member = models.ForeignKey(UnionMember, on_delete=models.PROTECT, related_name="dues_calls")
    period = models.CharField(max_length=7)
    amount_fen = models.BigIntegerField()
    source = models.CharField(max_length=8, choices=Source.choices)
    # The current payment; a monthly call whose payment failed is collected again by a later call, a
    # new transfer under a new key (the failed ones stay, their source is this row).
    transfer = models.OneToOneField("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="dues_call")
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "会费 (union dues)"
        constraints = [
            models.UniqueConstraint(fields=["member", "period"], name="dues_once_a_month"),
            models.CheckConstraint(name="dues_positive", condition=models.Q(amount_fen__gt=0)),
        ]
