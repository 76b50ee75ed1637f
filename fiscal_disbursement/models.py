"""Fiscal fund disbursement (财政资金支付): budget quotas, payment requests and their payee lines.

A payment request goes:

    draft -> submitted -> approved -> voucher_issued -> paying -> paid | partially_paid | failed
          -> reporting (result reports sent) -> reported (all acknowledged) -> reconciled
    submitted -> rejected -> draft (the preparer reworks it)
    approved -> voucher_refused (the budget system did not accept the voucher; the reservation is released)
    draft | submitted | rejected | approved | voucher_refused | voucher_issued -> cancelled (with a reason)

Above `DISBURSEMENT_SECOND_APPROVAL_FEN` a request needs two approvers (neither the preparer): the
first approval is recorded on the request, the second moves it to approved.

A quota's money: approval reserves the request's total; a settled line moves its amount from reserved
to consumed; a line given up (退回) or a cancelled request releases what it reserved. The budget
system keeps the same arithmetic per voucher (adapters/budget/interface.py), so after a request is
reported both sides hold the same used amount.

A line's payment state is its transfer's state (treasury.Transfer); the line records which transfer
pays it now, how many attempts it took, and whether it was given up.
"""
from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class Quota(models.Model):
    """A budget quota (指标) as synchronised from the budget-management system, with this service's own
    reservations and consumption against it."""

    quota_id = models.CharField("指标编号 (quota id)", max_length=40, unique=True)
    adm_div_code = models.CharField("区划 (administrative division)", max_length=6)
    fiscal_year = models.PositiveSmallIntegerField("年度 (fiscal year)")
    agency = models.ForeignKey("treasury.Organization", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="quotas")
    agency_code = models.CharField("预算单位代码 (budget unit code)", max_length=20)
    agency_name = models.CharField("预算单位 (budget unit)", max_length=200)
    exp_func_code = models.CharField("功能分类 (functional classification)", max_length=10)
    exp_eco_code = models.CharField("经济分类 (economic classification)", max_length=10)
    fund_type_code = models.CharField("资金性质 (fund nature)", max_length=4)
    pay_type_code = models.CharField("支付方式 (payment type)", max_length=2)
    purpose = models.CharField("用途 (purpose)", max_length=200, blank=True)
    amount_fen = models.BigIntegerField("指标金额 (amount, fen)")
    reserved_fen = models.BigIntegerField("已预留 (reserved here, fen)", default=0)
    consumed_fen = models.BigIntegerField("已支付 (consumed here, fen)", default=0)
    # The budget system's own figures at the last synchronisation (for comparison, never for arithmetic).
    budget_used_fen = models.BigIntegerField("预算系统已用 (used in the budget system, fen)", default=0)
    budget_reserved_fen = models.BigIntegerField("预算系统冻结 (reserved in the budget system, fen)", default=0)
    synced_at = models.DateTimeField("同步时间 (synchronised at)")

    class Meta:
        verbose_name = "预算指标 (budget quota)"
        ordering = ["fiscal_year", "quota_id"]
        constraints = [
            models.CheckConstraint(name="quota_reserved_not_negative", condition=models.Q(reserved_fen__gte=0)),
            models.CheckConstraint(name="quota_consumed_not_negative", condition=models.Q(consumed_fen__gte=0)),
            models.CheckConstraint(
                name="quota_not_overdrawn",
                condition=models.Q(reserved_fen__lte=models.F("amount_fen") - models.F("consumed_fen")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quota_id} {self.agency_name}"

    @property
    def available_fen(self) -> int:
        return self.amount_fen - self.reserved_fen - self.consumed_fen


class PayType(models.TextChoices):
    DIRECT = "1", "财政直接支付 (direct payment)"
    AUTHORISED = "2", "财政授权支付 (authorised payment)"


class RequestState(models.TextChoices):
    DRAFT = "draft", "草稿 (draft)"
    SUBMITTED = "submitted", "待审批 (submitted)"
    REJECTED = "rejected", "已退回修改 (rejected)"
    APPROVED = "approved", "已审批 (approved)"
    VOUCHER_REFUSED = "voucher_refused", "凭证被拒 (voucher refused)"
    VOUCHER_ISSUED = "voucher_issued", "凭证已回执 (voucher issued)"
    PAYING = "paying", "支付中 (paying)"
    PAID = "paid", "已支付 (paid)"
    PARTIALLY_PAID = "partially_paid", "部分支付 (partially paid)"
    FAILED = "failed", "支付失败 (failed)"
    REPORTING = "reporting", "回单报送中 (reporting)"
    REPORTED = "reported", "已回单 (reported)"
    RECONCILED = "reconciled", "已对账 (reconciled)"
    CANCELLED = "cancelled", "已作废 (cancelled)"


R = RequestState
# States in which some of the request's total is reserved on its quota.
RESERVING_STATES = (R.APPROVED, R.VOUCHER_ISSUED, R.PAYING, R.PAID, R.PARTIALLY_PAID, R.FAILED)


class PaymentRequest(ConcurrentTransitionMixin, models.Model):
    """A payment request (支付申请) and, once approved, its payment voucher (支付凭证)."""

    organization = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="+")
    quota = models.ForeignKey(Quota, on_delete=models.PROTECT, related_name="requests")
    agency = models.ForeignKey("treasury.Organization", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="+")
    pay_type = models.CharField("支付方式 (payment type)", max_length=2, choices=PayType.choices)
    payer_wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+")
    title = models.CharField("摘要 (purpose)", max_length=140)
    purpose_code = models.CharField("用途代码 (purpose code)", max_length=16, default="SUBSIDY")
    exp_func_code = models.CharField("功能分类 (functional classification)", max_length=10)
    exp_eco_code = models.CharField("经济分类 (economic classification)", max_length=10)
    # Smart-contract conditions (专款专用) every transfer of this request carries: Conditions.to_json().
    conditions = models.JSONField("智能合约条件 (earmark conditions)", null=True, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    upload_path = models.CharField(max_length=255, blank=True)  # under MEDIA_ROOT
    line_count = models.PositiveIntegerField(default=0)
    total_fen = models.BigIntegerField(default=0)
    problem_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list)  # [{line, column, code, message}], bounded
    # What has moved on the quota so far: settled lines consumed, given-up lines released.
    paid_count = models.PositiveIntegerField(default=0)
    paid_fen = models.BigIntegerField(default=0)
    returned_count = models.PositiveIntegerField(default=0)
    returned_fen = models.BigIntegerField(default=0)
    state = FSMField(default=R.DRAFT, choices=R.choices, protected=True)
    prepared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    first_approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="+")
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    reason = models.CharField("退回或作废原因 (rejection or cancellation reason)", max_length=255, blank=True)
    voucher_no = models.CharField("凭证号 (voucher number)", max_length=40, blank=True)
    voucher_attempts = models.PositiveIntegerField(default=0)
    voucher_error = models.CharField("凭证发送错误 (voucher sending error)", max_length=255, blank=True)
    reconcile_note = models.CharField("对账说明 (reconciliation note)", max_length=255, blank=True)
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    first_approved_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    voucher_issued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)  # paying ended
    reported_at = models.DateTimeField(null=True, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "支付申请 (payment request)"
        indexes = [models.Index(fields=["organization", "created_at"]), models.Index(fields=["state"])]
        constraints = [
            models.UniqueConstraint(fields=["voucher_no"], condition=~models.Q(voucher_no=""), name="voucher_no_once"),
        ]

    def __str__(self) -> str:
        return f"{self.bill_no} {self.state}"

    @property
    def batch_ref(self) -> str:
        """The transfer core's batch reference and the trace stream of this request."""
        return f"fiscal-{self.pk}"

    @staticmethod
    def pk_of_batch_ref(batch_ref: str) -> int | None:
        """The request whose `batch_ref` this is; None for any other reference."""
        prefix, _, pk = batch_ref.partition("-")
        return int(pk) if prefix == "fiscal" and pk.isdigit() else None

    @property
    def bill_no(self) -> str:
        """The payment application number (BillNo) the budget system sees."""
        return f"SQ{self.created_at:%Y}{self.pk:08d}"

    def make_voucher_no(self) -> str:
        # Fixed by the request: resending the voucher can only ever mean the same voucher.
        return f"{self.quota.adm_div_code}{self.quota.fiscal_year}{'5201' if self.pay_type == PayType.DIRECT else '8202'}{self.pk:08d}"

    # --- transitions ----------------------------------------------------------------------------

    @transition(field=state, source=R.DRAFT, target=R.SUBMITTED)
    def submit(self):
        pass

    @transition(field=state, source=R.SUBMITTED, target=R.REJECTED)
    def reject(self):
        pass

    @transition(field=state, source=R.REJECTED, target=R.DRAFT)
    def rework(self):
        pass

    @transition(field=state, source=R.SUBMITTED, target=R.APPROVED)
    def approve(self):
        pass

    @transition(field=state, source=R.APPROVED, target=R.VOUCHER_ISSUED)
    def issue_voucher(self):
        pass

    @transition(field=state, source=R.APPROVED, target=R.VOUCHER_REFUSED)
    def refuse_voucher(self):
        pass

    @transition(field=state, source=R.VOUCHER_ISSUED, target=R.PAYING)
    def start_paying(self):
        pass

    @transition(field=state, source=R.PAYING, target=R.PAID)
    def finish_paid(self):
        pass

    @transition(field=state, source=R.PAYING, target=R.PARTIALLY_PAID)
    def finish_partially_paid(self):
        pass

    @transition(field=state, source=R.PAYING, target=R.FAILED)
    def finish_failed(self):
        pass

    @transition(field=state, source=[R.PARTIALLY_PAID, R.FAILED], target=R.PAYING)
    def retry(self):
        pass

    @transition(field=state, source=[R.PAID, R.PARTIALLY_PAID, R.FAILED], target=R.REPORTING)
    def start_reporting(self):
        pass

    @transition(field=state, source=R.REPORTING, target=R.REPORTED)
    def finish_reporting(self):
        pass

    @transition(field=state, source=R.REPORTED, target=R.RECONCILED)
    def reconcile(self):
        pass

    @transition(field=state, source=[R.DRAFT, R.SUBMITTED, R.REJECTED, R.APPROVED, R.VOUCHER_REFUSED,
                                     R.VOUCHER_ISSUED], target=R.CANCELLED)
    def cancel(self):
        pass


class RequestAttachment(models.Model):
    """A supporting document of a request (approval memo, list of beneficiaries, ...)."""

    request = models.ForeignKey(PaymentRequest, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=255)  # under MEDIA_ROOT
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField()

    class Meta:
        verbose_name = "附件 (attachment)"


class PayeeKind(models.TextChoices):
    PERSON = "resident", "个人 (person)"
    ORGANIZATION = "uscc", "单位 (organization)"


# The warnings a line gets when the request's earmark conditions do not admit its payee (the operator will
# refuse it); any other warning is a text shown as it is (a resident ID's region unknown in its birth year).
EARMARK_WARNINGS = ("earmark_category", "earmark_payee")


def earmark_warned(warnings: list[str]) -> bool:
    return any(w in EARMARK_WARNINGS for w in warnings)


class PaymentLine(models.Model):
    # No index of its own: the (request, line_no) constraint's index starts with it.
    request = models.ForeignKey(PaymentRequest, on_delete=models.CASCADE, related_name="lines", db_index=False)
    line_no = models.PositiveIntegerField()  # as the clerk sees it in the payee file
    payee_name = models.CharField(max_length=200)
    id_kind = models.CharField(max_length=8, choices=PayeeKind.choices)
    id_number = models.CharField(max_length=18)
    wallet_id = models.CharField(max_length=16)
    amount_fen = models.BigIntegerField()
    memo = models.CharField(max_length=140, blank=True)
    warnings = models.JSONField(default=list)
    attempts = models.PositiveSmallIntegerField(default=0)
    returned = models.BooleanField("已退回 (returned)", default=False)  # given up: released back to the quota
    return_reason = models.CharField(max_length=255, blank=True)
    report_no = models.CharField(max_length=48, blank=True)  # the result report that carried this line
    # Indexed where set (Meta): a new line has none.
    payee_wallet = models.ForeignKey("treasury.Wallet", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", db_index=False)
    # What the operator said of the wallet when the file was imported (type WT01/WT09..., class 1-4):
    # paying registers the payee's wallet from these instead of asking the operator a second time.
    wallet_type = models.CharField(max_length=8, blank=True)
    wallet_class = models.PositiveSmallIntegerField(null=True, blank=True)
    transfer = models.OneToOneField("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="fiscal_line")

    class Meta:
        verbose_name = "支付明细 (payment line)"
        constraints = [
            models.UniqueConstraint(fields=["request", "line_no"], name="fiscal_line_once"),
            models.CheckConstraint(name="fiscal_line_amount_positive", condition=models.Q(amount_fen__gt=0)),
        ]
        indexes = [models.Index(fields=["payee_wallet"], name="fiscal_line_payee_wallet",
                                condition=models.Q(payee_wallet__isnull=False))]

    @property
    def tracking_id(self) -> str:
        """业务追溯识别码: how the budget system and this service name the same payment."""
        return f"{self.request.bill_no}{self.line_no:06d}"

    @property
    def earmark_warned(self) -> bool:
        return earmark_warned(self.warnings)

    @property
    def other_warnings(self) -> list[str]:
        return [w for w in self.warnings if w not in EARMARK_WARNINGS]


class ResultReport(models.Model):
    """One result report (回单/退回) of a voucher sent to the budget system: an outbox row, sent after
    commit and again until acknowledged, always under the same report number."""

    class State(models.TextChoices):
        PENDING = "pending", "待发送 (pending)"
        ACKNOWLEDGED = "acknowledged", "已确认 (acknowledged)"
        REFUSED = "refused", "被拒 (refused)"

    request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, related_name="reports")
    report_no = models.CharField(max_length=48, unique=True)
    line_count = models.PositiveIntegerField()
    paid_fen = models.BigIntegerField(default=0)
    returned_fen = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "结果回报 (result report)"
