"""Tax (税务): three-party agreements, deductions (real-time and batch) and treasury entries.

A three-party agreement (三方协议: taxpayer, tax authority, operator) lets the tax system debit the
taxpayer's e-CNY wallet into the treasury:

    pending --verify (TIPS 9114 matched our record)--> verified --activate--> active
    active --suspend--> suspended --resume--> active
    pending | verified | active | suspended --revoke--> revoked

A deduction (扣税) is one debit the tax system asks for, real-time (3001) or as an item of a batch
package (3102), or a tax an individual pays from a personal wallet without an agreement:

    received --start--> deducting --succeed--> succeeded
    received --refuse--> failed            (no agreement, nothing debited)
    deducting --fail--> failed             (the operator refused)
    deducting --mark_unknown--> unknown --reverse--> reversed   (real-time: answered 94999, then 冲正)
                                unknown --fail--> failed        (the debit never happened)
                                unknown --succeed--> succeeded  (batch items: recovery found it settled)
    succeeded --cancel--> reversed        (the tax system asked for a reversal, 1021: the money went back)

A batch package (3102) goes receiving -> received -> deducting -> done; its result (2102) is an outbox:
sent after it is done and again until the tax system acknowledges it.

State changes happen only through the transitions (`protected=True`); services lock, call them and
trace around them.
"""
from functools import lru_cache

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


@lru_cache(maxsize=64)
def _compact_date(day) -> str:
    """2026-11-26 -> '20261126'. Once per date, not per key: a package's 1,000 keys share one entrust date, and
    strftime took a microsecond a key."""
    return day.strftime("%Y%m%d")


class AgreementState(models.TextChoices):
    PENDING = "pending", "待验证 (pending verification)"
    VERIFIED = "verified", "已验证 (verified)"
    ACTIVE = "active", "有效 (active)"
    SUSPENDED = "suspended", "暂停 (suspended)"
    REVOKED = "revoked", "已撤销 (revoked)"


A = AgreementState
# While an agreement is in one of these states the same taxpayer, tax authority and wallet cannot sign
# again (bank front-ends refuse re-signing while an agreement is provisional or normal).
OPEN_AGREEMENT_STATES = (A.PENDING, A.VERIFIED, A.ACTIVE, A.SUSPENDED)


class TaxpayerKind(models.TextChoices):
    ORGANIZATION = "organization", "单位 (organization, unified social credit code)"
    PERSON = "person", "个人 (person, resident ID)"


class TaxAgreement(ConcurrentTransitionMixin, models.Model):
    """三方协议 (three-party agreement): taxpayer, tax authority and the operator holding the wallet."""

    tax_authority = models.ForeignKey("treasury.Organization", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", verbose_name="税务机关 (tax authority)")
    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    taxpayer_kind = models.CharField("纳税人类别 (taxpayer kind)", max_length=16, choices=TaxpayerKind.choices)
    taxpayer_id = models.CharField("纳税人识别号 (taxpayer id)", max_length=20)
    taxpayer_name = models.CharField("纳税人名称 (taxpayer name)", max_length=200)
    pay_op_bk_code = models.CharField("开户行/运营机构行号 (operator bank code)", max_length=12)
    wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="tax_agreements",
                               verbose_name="缴款钱包 (payer wallet)")
    protocol_no = models.CharField("协议书号 (agreement number)", max_length=60)
    signed_date = models.DateField("签约日期 (signed date)")
    state = FSMField("状态 (state)", default=A.PENDING, choices=A.choices, protected=True)
    state_reason = models.CharField("原因 (reason)", max_length=255, blank=True)
    # The last 9114 verification, passed or failed, as answered.
    last_verification_result = models.CharField("最近验证结果 (last verification result)", max_length=1, blank=True)
    last_verification_note = models.CharField("最近验证说明 (last verification note)", max_length=255, blank=True)
    last_verification_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField("经办 (signed by)", max_length=150, blank=True)
    created_at = models.DateTimeField()
    verified_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "三方协议 (three-party agreement)"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tax_org_code", "protocol_no"], name="tax_agreement_protocol_unique"),
            models.UniqueConstraint(
                fields=["tax_org_code", "taxpayer_id", "wallet"],
                condition=models.Q(state__in=[s.value for s in OPEN_AGREEMENT_STATES]),
                name="tax_agreement_one_open_per_wallet",
            ),
        ]
        indexes = [models.Index(fields=["tax_org_code", "wallet", "protocol_no"])]

    def __str__(self) -> str:
        return f"{self.tax_org_code}/{self.protocol_no} {self.state}"

    @property
    def stream_key(self) -> str:
        return f"tax-agreement-{self.pk}"

    @transition(field=state, source=A.PENDING, target=A.VERIFIED)
    def verify(self):
        pass

    @transition(field=state, source=A.VERIFIED, target=A.ACTIVE)
    def activate(self):
        pass

    @transition(field=state, source=A.ACTIVE, target=A.SUSPENDED)
    def suspend(self):
        pass

    @transition(field=state, source=A.SUSPENDED, target=A.ACTIVE)
    def resume(self):
        pass

    @transition(field=state, source=[s.value for s in OPEN_AGREEMENT_STATES], target=A.REVOKED)
    def revoke(self):
        pass


class PackageState(models.TextChoices):
    RECEIVING = "receiving", "接收中 (receiving)"
    RECEIVED = "received", "已接收 (received)"
    DEDUCTING = "deducting", "扣款中 (deducting)"
    DONE = "done", "已完成 (done)"


P = PackageState


class ReceivedPackage(ConcurrentTransitionMixin, models.Model):
    """What the tax system sends as a package (a 3102 batch, a 1104 refund order): its head, our
    acknowledgement (9121 / 9120), its outcome, and its result message (2102 / 2104) as an outbox: pending
    once the package is done, sent until the tax system acknowledges it."""

    tax_authority = models.ForeignKey("treasury.Organization", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", verbose_name="税务机关 (tax authority)")
    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    entrust_date = models.DateField("委托日期 (entrust date)")
    pack_no = models.CharField("包流水号 (package number)", max_length=20)
    msg_id = models.CharField("报文标识号 (message id)", max_length=20, blank=True)
    return_term = models.PositiveSmallIntegerField("回执期限 (reply deadline, days)", default=0)
    all_num = models.PositiveIntegerField("总笔数 (item count)")
    all_amount_fen = models.BigIntegerField("总金额 (total, fen)")
    ack_result = models.CharField("回执结果 (acknowledgement result)", max_length=5, default="90000")
    ack_add_word = models.CharField("回执附言 (acknowledgement note)", max_length=255, blank=True)
    succ_num = models.PositiveIntegerField("成功笔数 (succeeded items)", default=0)
    succ_amount_fen = models.BigIntegerField("成功金额 (succeeded amount, fen)", default=0)
    result_pending = models.BooleanField("结果待发送 (result waiting to be sent)", default=False)
    result_acknowledged = models.BooleanField("结果已确认 (result acknowledged)", default=False)
    result_attempts = models.PositiveIntegerField("发送次数 (result send attempts)", default=0)
    result_error = models.CharField("发送错误 (last send error)", max_length=255, blank=True)
    # The tax system refused the result (a fault or a refusing reply): it waits for a person, not for the sweep.
    result_fault_code = models.CharField("对方拒绝代码 (refusal code)", max_length=10, blank=True)
    received_at = models.DateTimeField()
    done_at = models.DateTimeField(null=True, blank=True)
    result_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.tax_org_code}/{self.entrust_date:%Y%m%d}/{self.pack_no} {self.state}"


class DeductionPackage(ReceivedPackage):
    """批量扣税包 (batch deduction package, 3102), at most 1,000 items; its result (2102) is an outbox."""

    treasury_code = models.CharField("国库代码 (treasury code)", max_length=10, blank=True)
    treasury_wallet = models.ForeignKey("treasury.Wallet", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+", verbose_name="收款国库钱包 (treasury wallet)")
    state = FSMField("状态 (state)", default=P.RECEIVING, choices=P.choices, protected=True)

    class Meta(ReceivedPackage.Meta):
        verbose_name = "批量扣税包 (batch deduction package)"
        constraints = [
            models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "pack_no"], name="tax_package_unique"),
            models.CheckConstraint(name="tax_package_amount_not_negative", condition=models.Q(all_amount_fen__gte=0)),
        ]

    @property
    def stream_key(self) -> str:
        return f"tax-package-{self.pk}"

    @transition(field=state, source=P.RECEIVING, target=P.RECEIVED)
    def mark_received(self):
        pass

    @transition(field=state, source=P.RECEIVED, target=P.DEDUCTING)
    def start_deducting(self):
        pass

    @transition(field=state, source=P.DEDUCTING, target=P.DONE)
    def finish(self):
        pass


class DeductionKind(models.TextChoices):
    REAL_TIME = "real_time", "实时扣税 (real-time, 3001)"
    BATCH = "batch", "批量扣税 (batch item, 3102)"
    OWN = "own", "自行缴税 (paid by the taxpayer from a personal wallet)"


class DeductionState(models.TextChoices):
    RECEIVED = "received", "已接收 (received)"
    DEDUCTING = "deducting", "扣款中 (deducting)"
    SUCCEEDED = "succeeded", "扣款成功 (succeeded)"
    FAILED = "failed", "扣款失败 (failed)"
    UNKNOWN = "unknown", "结果未明 (outcome unknown)"
    REVERSED = "reversed", "已冲正 (reversed)"


D = DeductionState
DECIDED_DEDUCTION_STATES = (D.SUCCEEDED, D.FAILED, D.REVERSED)


class TaxDeduction(ConcurrentTransitionMixin, models.Model):
    """One tax debit. (tax_org_code, entrust_date, tra_no) is the idempotency key."""

    kind = models.CharField("类别 (kind)", max_length=16, choices=DeductionKind.choices)
    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    entrust_date = models.DateField("委托日期 (entrust date)")
    tra_no = models.CharField("交易流水号 (transaction number)", max_length=24)
    # Indexes (Meta): package; agreement only where set; (tax authority, voucher) where there is one. No
    # index names the columns a batch item's two updates change (state, transfer, result code and note,
    # decided_at, tax_date), so with the table's free space (fillfactor, tax 0008) both are made in place
    # (HOT): no entry in any index, where each wrote one into every index.
    # Package, agreement and transfer carry no foreign-key constraint (tax 0012: one check per batch item
    # each, at commit); triggers refuse deleting a package or agreement a deduction names, as the
    # constraints did, and transfers are never deleted.
    package = models.ForeignKey(DeductionPackage, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="deductions", db_index=False, db_constraint=False)
    agreement = models.ForeignKey(TaxAgreement, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="deductions", db_index=False, db_constraint=False)
    pay_acct = models.CharField("缴款钱包 (payer wallet id)", max_length=32)
    pay_op_bk_code = models.CharField("运营机构行号 (operator bank code)", max_length=12, blank=True)
    hand_org_name = models.CharField("缴款户名 (wallet holder name)", max_length=200, blank=True)
    tax_pay_name = models.CharField("纳税人名称 (taxpayer name)", max_length=200, blank=True)
    taxpayer_id = models.CharField("纳税人识别号 (taxpayer id)", max_length=20, blank=True)
    protocol_no = models.CharField("协议书号 (agreement number)", max_length=60, blank=True)
    amount_fen = models.BigIntegerField("金额 (amount, fen)")
    tax_vou_no = models.CharField("税票号码 (tax voucher number)", max_length=30, blank=True)
    tax_types = models.JSONField("税种明细 (tax types)", default=list)
    budget_type = models.CharField("预算种类 (budget type)", max_length=1, default="1")
    budget_level_code = models.CharField("预算级次 (budget level)", max_length=1, default="3")
    remark = models.CharField("备注 (remark)", max_length=140, blank=True)
    treasury_code = models.CharField("国库代码 (treasury code)", max_length=10, blank=True)
    state = FSMField("状态 (state)", default=D.RECEIVED, choices=D.choices, protected=True)
    result_code = models.CharField("处理结果 (result code)", max_length=5, blank=True)
    add_word = models.CharField("附言 (note)", max_length=255, blank=True)
    tax_date = models.DateField("扣税日期 (tax date)", null=True, blank=True)
    transfer = models.ForeignKey("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", db_index=False, db_constraint=False)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    # When a reversal (1021) first asked the operator to give this debit back. Until the deduction is reversed, or
    # the operator refused, the debit may be on its way back: a refund correction waits (reconciliation's held_fen).
    reversal_asked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "扣税 (tax deduction)"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "tra_no"], name="tax_deduction_key_unique"),
            models.CheckConstraint(name="tax_deduction_amount_positive", condition=models.Q(amount_fen__gt=0)),
        ]
        indexes = [
            # A package's items; their state is read from the rows (a package holds at most a few thousand).
            models.Index(fields=["package"], name="tax_deduction_package"),
            models.Index(fields=["agreement"], name="tax_deduction_agreement",
                         condition=models.Q(agreement__isnull=False)),
            # The deduction a paid refund's voucher (OriTaxVouNo) names, for its tax type (_record_refund_entries).
            models.Index(fields=["tax_org_code", "tax_vou_no"], name="tax_deduction_voucher",
                         condition=~models.Q(tax_vou_no="")),
        ]

    def __str__(self) -> str:
        return f"{self.tax_org_code}/{self.entrust_date:%Y%m%d}/{self.tra_no} {self.state}"

    @property
    def stream_key(self) -> str:
        return f"tax-package-{self.package_id}" if self.package_id else f"tax-deduction-{self.pk}"

    @property
    def idempotency_key(self) -> str:
        return f"tax:{self.tax_org_code}:{_compact_date(self.entrust_date)}:{self.tra_no}"

    @transition(field=state, source=D.RECEIVED, target=D.DEDUCTING)
    def start(self):
        pass

    @transition(field=state, source=D.RECEIVED, target=D.FAILED)
    def refuse(self):
        pass

    @transition(field=state, source=[D.DEDUCTING, D.UNKNOWN], target=D.SUCCEEDED)
    def succeed(self):
        pass

    @transition(field=state, source=[D.DEDUCTING, D.UNKNOWN], target=D.FAILED)
    def fail(self):
        pass

    @transition(field=state, source=D.DEDUCTING, target=D.UNKNOWN)
    def mark_unknown(self):
        pass

    @transition(field=state, source=D.UNKNOWN, target=D.REVERSED)
    def reverse(self):
        pass

    @transition(field=state, source=D.SUCCEEDED, target=D.REVERSED)
    def cancel(self):
        """Reversed (冲正) at the tax system's request (1021), after the transfer core returned the money."""

    @staticmethod
    def sources_of(transition_method) -> list[str]:
        return sorted(transition_method._django_fsm.transitions.keys())


class UnresolvedDeduction(models.Model):
    """A real-time or own deduction answered 94999 (outcome unknown), until resolve_unknown_deductions
    settles it. The sweep looks every minute: it reads this short list, not the deductions table (an
    index on the deductions' state would cost every batch item's updates their in-place writes)."""

    deduction = models.OneToOneField(TaxDeduction, primary_key=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name = "结果未明的扣税 (deduction with unknown outcome)"


class TreasuryEntry(models.Model):
    """入库 (treasury entry): a settled deduction's money by tax type and budget level, split between
    central and local budgets by the revenue-sharing table (settings.TAX_REVENUE_SHARING); or, negative,
    a paid refund's (退库) money leaving the treasury; or a settled correcting transfer of a reconciliation
    case (positive when collected into the treasury, negative when paid back out of it), under the tax types
    and budget level of the deduction the case is about."""

    # No foreign-key constraint (tax 0012); a trigger refuses deleting a deduction an entry names.
    deduction = models.ForeignKey(TaxDeduction, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="entries", db_index=False,  # the unique constraint below leads with it
                                  db_constraint=False)
    refund = models.ForeignKey("Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="entries",
                               db_index=False)  # the unique constraint below is its index
    # Entered when the correction's transfer settles (tax_reconciliation.corrections.book_correction_entries).
    correction = models.ForeignKey("tax_reconciliation.CaseCorrection", null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="entries",
                                   db_index=False)  # the unique constraint below is its index
    entry_date = models.DateField("入库日期 (entry date)")
    treasury_code = models.CharField("国库代码 (treasury code)", max_length=10, blank=True)
    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    project_id = models.CharField("项目编号 (project id)", max_length=20, blank=True)
    tax_type_name = models.CharField("税种 (tax type)", max_length=60, blank=True)
    budget_type = models.CharField("预算种类 (budget type)", max_length=1)
    budget_level_code = models.CharField("预算级次 (budget level)", max_length=1)
    amount_fen = models.BigIntegerField("金额 (amount, fen)")
    central_fen = models.BigIntegerField("中央级 (central share, fen)")
    local_fen = models.BigIntegerField("地方级 (local share, fen)")
    # A reversed deduction keeps its entries and gets their negatives on the reversal's day: a day's
    # report stays what it was, and the next day's shows the money going back.
    reverses = models.BooleanField("冲正 (reversal of an entry)", default=False, db_default=False)

    class Meta:
        verbose_name = "入库明细 (treasury entry)"
        constraints = [
            models.UniqueConstraint(fields=["deduction", "project_id", "tax_type_name", "reverses"],
                                    name="tax_entry_once"),
            # A refund is entered once, as one entry, when its transfer settles.
            models.UniqueConstraint(fields=["refund"], condition=models.Q(refund__isnull=False),
                                    name="tax_entry_refund_once"),
            # A correction is entered once, one entry per tax type, when its transfer settles.
            models.UniqueConstraint(fields=["correction", "project_id", "tax_type_name"],
                                    condition=models.Q(correction__isnull=False), name="tax_entry_correction_once"),
            models.CheckConstraint(name="tax_entry_of_one_source",
                                   condition=models.Q(deduction__isnull=False, refund__isnull=True,
                                                      correction__isnull=True)
                                   | models.Q(deduction__isnull=True, refund__isnull=False, correction__isnull=True)
                                   | models.Q(deduction__isnull=True, refund__isnull=True,
                                              correction__isnull=False)),
            models.CheckConstraint(name="tax_entry_split_adds_up",
                                   condition=models.Q(amount_fen=models.F("central_fen") + models.F("local_fen"))),
        ]
        indexes = [
            models.Index(fields=["entry_date", "tax_org_code"]),
            # The reconciliation of a day finds the reversals entered that day (few) without reading its entries.
            models.Index(fields=["entry_date"], condition=models.Q(reverses=True), name="tax_entry_reversal_date"),
        ]


# ---------------------------------------------------------------------------------------------
# Refunds from the treasury (退库, 1104)
# ---------------------------------------------------------------------------------------------


class RefundOrderState(models.TextChoices):
    RECEIVED = "received", "已接收 (received)"
    REVIEWED = "reviewed", "已复核 (reviewed)"
    PAYING = "paying", "退付中 (paying)"
    DONE = "done", "已完成 (done)"
    REJECTED = "rejected", "已拒绝 (rejected)"


RO = RefundOrderState


class RefundOrder(ReceivedPackage):
    """退库包 (refund order, 1104): paid only after two different tax staff of the authority acted on it.

    Maker-checker: the first staff member reviews it (`reviewed_by`, the maker); a different staff
    member approves it (`approved_by`, the checker), and the approval pays it in the same transaction.
    Either may reject it with a reason before it is paid. Its result (2104) is an outbox like 2102's.
    """

    treasury_wallet = models.ForeignKey("treasury.Wallet", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+", verbose_name="付款国库钱包 (treasury wallet)")
    state = FSMField("状态 (state)", default=RO.RECEIVED, choices=RO.choices, protected=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    verbose_name="复核人 (reviewed by)")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    verbose_name="审批人 (approved by)")
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    verbose_name="拒绝人 (rejected by)")
    reject_reason = models.CharField("拒绝原因 (reason)", max_length=255, blank=True)
    result_tried_at = models.DateTimeField("最近发送 (last send attempt)", null=True, blank=True)

    class Meta(ReceivedPackage.Meta):
        verbose_name = "退库包 (refund order)"
        constraints = [
            models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "pack_no"], name="tax_refund_order_unique"),
            models.CheckConstraint(name="tax_refund_order_amount_positive", condition=models.Q(all_amount_fen__gt=0)),
        ]

    @property
    def stream_key(self) -> str:
        return f"tax-refund-{self.pk}"

    @transition(field=state, source=RO.RECEIVED, target=RO.REVIEWED)
    def review(self):
        pass

    @transition(field=state, source=RO.REVIEWED, target=RO.PAYING)
    def approve(self):
        pass

    @transition(field=state, source=RO.PAYING, target=RO.DONE)
    def finish(self):
        pass

    @transition(field=state, source=[RO.RECEIVED, RO.REVIEWED], target=RO.REJECTED)
    def reject(self):
        pass


class RefundState(models.TextChoices):
    RECEIVED = "received", "已接收 (received)"
    PAYING = "paying", "退付中 (paying)"
    PAID = "paid", "退付成功 (paid)"
    FAILED = "failed", "退付失败 (failed)"
    REJECTED = "rejected", "已拒绝 (rejected)"


R = RefundState
DECIDED_REFUND_STATES = (R.PAID, R.FAILED, R.REJECTED)


class Refund(ConcurrentTransitionMixin, models.Model):
    """退库明细 (one refund item, RetTreasury1104): from the treasury single account to the taxpayer's wallet."""

    order = models.ForeignKey(RefundOrder, on_delete=models.PROTECT, related_name="refunds")
    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    entrust_date = models.DateField("委托日期 (entrust date)")
    pack_no = models.CharField("包流水号 (package number)", max_length=20)
    tra_no = models.CharField("交易流水号 (transaction number)", max_length=24)
    draw_back_tre_code = models.CharField("退库国库代码 (refunding treasury code)", max_length=10, blank=True)
    payee_bank_no = models.CharField("收款行行号 (payee bank number)", max_length=12, blank=True)
    payee_op_bk_code = models.CharField("收款运营机构行号 (payee operator code)", max_length=12, blank=True)
    payee_wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                                     verbose_name="收款钱包 (payee wallet)")
    payee_acct = models.CharField("收款钱包 (payee wallet id)", max_length=32)
    payee_name = models.CharField("收款户名 (payee name)", max_length=200)
    taxpayer_id = models.CharField("纳税人识别号 (taxpayer id)", max_length=20)
    tax_pay_name = models.CharField("纳税人名称 (taxpayer name)", max_length=200)
    draw_back_vou_no = models.CharField("退库凭证号 (refund voucher number)", max_length=30)
    ori_tax_vou_no = models.CharField("原税票号码 (original tax voucher number)", max_length=30, blank=True)
    amount_fen = models.BigIntegerField("金额 (amount, fen)")
    bill_date = models.DateField("开票日期 (bill date)")
    budget_type = models.CharField("预算种类 (budget type)", max_length=1, default="1")
    budget_subject_code = models.CharField("预算科目 (budget subject)", max_length=30, blank=True)
    budget_level_code = models.CharField("预算级次 (budget level)", max_length=1, default="3")
    trim_sign = models.CharField("调整期标志 (adjustment sign)", max_length=1, default="0")
    draw_back_reason_code = models.CharField("退库原因 (refund reason code)", max_length=10, blank=True)
    state = FSMField("状态 (state)", default=R.RECEIVED, choices=R.choices, protected=True)
    result_code = models.CharField("处理结果 (result code)", max_length=5, blank=True)
    add_word = models.CharField("附言 (note)", max_length=255, blank=True)
    transfer = models.ForeignKey("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "退库明细 (refund)"
        constraints = [
            models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "pack_no", "tra_no"],
                                    name="tax_refund_key_unique"),
            models.CheckConstraint(name="tax_refund_amount_positive", condition=models.Q(amount_fen__gt=0)),
        ]
        indexes = [models.Index(fields=["order", "state"])]

    def __str__(self) -> str:
        return f"{self.tax_org_code}/{self.entrust_date:%Y%m%d}/{self.pack_no}/{self.tra_no} {self.state}"

    @property
    def idempotency_key(self) -> str:
        return f"taxrefund:{self.tax_org_code}:{_compact_date(self.entrust_date)}:{self.pack_no}:{self.tra_no}"

    @transition(field=state, source=R.RECEIVED, target=R.PAYING)
    def start(self):
        pass

    @transition(field=state, source=R.RECEIVED, target=R.FAILED)
    def refuse(self):
        pass

    @transition(field=state, source=R.PAYING, target=R.PAID)
    def succeed(self):
        pass

    @transition(field=state, source=R.PAYING, target=R.FAILED)
    def fail(self):
        pass

    @transition(field=state, source=R.RECEIVED, target=R.REJECTED)
    def reject(self):
        pass


# ---------------------------------------------------------------------------------------------
# Reversals (冲正, 1021 / 2021) and stop payments (止付, 1123 / 2123)
# ---------------------------------------------------------------------------------------------


class TaxReversal(models.Model):
    """One reversal request (1021) and its final answer (2021), kept so the same request gets the same
    answer. A request met while the deduction is still undecided is answered "send again" and not kept."""

    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    entrust_date = models.DateField("委托日期 (entrust date)")
    cancel_no = models.CharField("冲正流水号 (reversal number)", max_length=8)
    ori_entrust_date = models.DateField("原委托日期 (original entrust date)")
    ori_tra_no = models.CharField("原交易流水号 (original transaction number)", max_length=24)
    cancel_reason = models.CharField("冲正原因 (reason)", max_length=200, blank=True)
    msg_id = models.CharField("报文标识号 (message id)", max_length=20, blank=True)
    deduction = models.ForeignKey(TaxDeduction, null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="reversals")
    cancel_answer = models.CharField("冲正应答 (answer: 0 reversed, 1 not)", max_length=1)
    result_code = models.CharField("处理结果 (result code)", max_length=5)
    add_word = models.CharField("附言 (note)", max_length=255, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        verbose_name = "冲正 (reversal request)"
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "cancel_no"],
                                               name="tax_reversal_unique")]


class StopPaymentRequest(models.Model):
    """One stop-payment request (1123) and its answer (2123): items of a package not yet deducted are
    decided 24020 and never debited; items already deducted or decided stay as they are."""

    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    entrust_date = models.DateField("委托日期 (entrust date)")
    stop_no = models.CharField("止付流水号 (stop number)", max_length=8)
    ori_entrust_date = models.DateField("原委托日期 (original entrust date)")
    ori_pack_no = models.CharField("原包流水号 (original package number)", max_length=20)
    ori_tra_no = models.CharField("原交易流水号 (original item, blank for the package)", max_length=24, blank=True)
    stop_reason = models.CharField("止付原因 (reason)", max_length=200, blank=True)
    msg_id = models.CharField("报文标识号 (message id)", max_length=20, blank=True)
    package = models.ForeignKey(DeductionPackage, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="stop_requests")
    stop_num = models.PositiveIntegerField("止付笔数 (items stopped)", default=0)
    stop_amount_fen = models.BigIntegerField("止付金额 (amount stopped, fen)", default=0)
    done_num = models.PositiveIntegerField("已处理笔数 (items already decided)", default=0)
    result_code = models.CharField("处理结果 (result code)", max_length=5)
    add_word = models.CharField("附言 (note)", max_length=255, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        verbose_name = "止付 (stop payment request)"
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "stop_no"],
                                               name="tax_stop_payment_unique")]


class EntryDetailPackage(models.Model):
    """入库流水 (3139) sent to the tax system: one package of a day's treasury entries of a tax authority at a
    treasury, and whether the tax system acknowledged it. Sent again when the day's entries changed."""

    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    treasury_code = models.CharField("国库代码 (treasury code)", max_length=10)
    entry_date = models.DateField("入库日期 (entry date)")
    cur_pack_no = models.PositiveIntegerField("本包序号 (package number)")
    child_pack_num = models.PositiveIntegerField("总包数 (packages of the day)")
    all_num = models.PositiveIntegerField("笔数 (lines)")
    all_amount_fen = models.BigIntegerField("金额 (amount, fen)")
    attempts = models.PositiveIntegerField("发送次数 (attempts)", default=0)
    error = models.CharField("发送错误 (last error)", max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "入库流水包 (treasury entry detail package, 3139)"
        ordering = ["-entry_date", "tax_org_code", "treasury_code", "cur_pack_no"]
        constraints = [models.UniqueConstraint(fields=["tax_org_code", "treasury_code", "entry_date", "cur_pack_no"],
                                               name="tax_entry_detail_package_unique")]
