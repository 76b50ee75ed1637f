"""Flexible-employment individuals (灵活就业人员) paying their own social-insurance premiums.

    Enrolment     a person's enrolment in a region: the chosen base level, the payment frequency, the
                  personal wallet that pays, the first month owed
    Period        one month owed (缴费月份): base, pension (20%, with its personal-account part), medical,
                  due date; due -> paying -> paid, or back to due when the payment failed
    Payment       one payment of one or more periods with their late fees: one transfer from the person's
                  wallet to the fund wallet; paying -> paid | failed
    PaymentLine   a period inside a payment, with the late fee computed at payment time

Where a region's premiums go (the collecting tax authority and the fund wallet) is
social_security.models.FundAccount, shared with employers' declarations; an enrolment copies both.
Amounts come from social_security.rules (the only place that computes premiums and late fees).
State changes happen only through the transitions (`protected=True`); services lock and call them.
"""
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class Frequency(models.TextChoices):
    MONTHLY = "monthly", "按月 (monthly)"
    QUARTERLY = "quarterly", "按季 (quarterly)"
    YEARLY = "yearly", "按年 (yearly)"


# Months a payment may cover at most, by frequency (a quarter, a year ahead).
MONTHS_PER_PAYMENT = {Frequency.MONTHLY: 1, Frequency.QUARTERLY: 3, Frequency.YEARLY: 12}


class Enrolment(models.Model):
    """灵活就业参保登记: a person insured in a region, paying premiums on a base they chose."""

    person = models.ForeignKey("treasury.Person", on_delete=models.PROTECT, related_name="flexible_enrolments",
                               verbose_name="参保人 (insured person)")
    region = models.ForeignKey("social_security.Region", on_delete=models.PROTECT, related_name="+",
                               verbose_name="统筹地区 (region)")
    collecting_authority = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="+",
                                             verbose_name="征收机关 (collecting tax authority)")
    fund_wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                                    verbose_name="社保基金收入户 (fund wallet)")
    wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="flexible_enrolments",
                               verbose_name="缴费钱包 (paying wallet)")
    # Percent of the local average wage (60, 80, ... 300): the base follows the average wage year by year.
    base_level = models.PositiveSmallIntegerField("缴费档次 (base level, % of average wage)")
    frequency = models.CharField("缴费方式 (payment frequency)", max_length=10, choices=Frequency.choices)
    start_month = models.DateField("起缴月份 (first month owed)")
    created_at = models.DateTimeField()
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "灵活就业参保登记 (flexible-employment enrolment)"
        ordering = ["-created_at", "-id"]
        constraints = [
            # One enrolment per person: moving region is a new enrolment after this one is closed (not built).
            models.UniqueConstraint(fields=["person"], name="flexible_one_enrolment_per_person"),
            models.CheckConstraint(name="flexible_base_level_range",
                                   condition=models.Q(base_level__gte=60, base_level__lte=300)),
        ]
        indexes = [models.Index(fields=["collecting_authority", "created_at"])]

    def __str__(self) -> str:
        return f"{self.person} {self.region.code}"


class BaseChange(models.Model):
    """A change of base level or frequency, and the first month it applies to."""

    enrolment = models.ForeignKey(Enrolment, on_delete=models.CASCADE, related_name="changes")
    base_level = models.PositiveSmallIntegerField("缴费档次 (base level, %)")
    frequency = models.CharField("缴费方式 (payment frequency)", max_length=10, choices=Frequency.choices)
    effective_month = models.DateField("生效月份 (first month it applies to)")
    changed_by = models.CharField(max_length=150)
    changed_at = models.DateTimeField()

    class Meta:
        verbose_name = "缴费档次变更 (base change)"
        ordering = ["-changed_at", "-id"]


class PeriodState(models.TextChoices):
    DUE = "due", "待缴 (due)"
    PAYING = "paying", "缴费中 (paying)"
    PAID = "paid", "已缴 (paid)"


P = PeriodState


class Period(ConcurrentTransitionMixin, models.Model):
    """One month owed. Amounts are fixed when the period is made (from the rules of that month); a base
    change rewrites the periods it applies to while they are still due."""

    enrolment = models.ForeignKey(Enrolment, on_delete=models.PROTECT, related_name="periods")
    month = models.DateField("所属月份 (month)")  # the first day of the month
    base_level = models.PositiveSmallIntegerField("缴费档次 (base level, %)")
    base_fen = models.BigIntegerField("缴费基数 (base, fen)")
    pension_fen = models.BigIntegerField("养老保险 (pension, fen)")
    pension_account_fen = models.BigIntegerField("其中计入个人账户 (of which to the personal account, fen)")
    medical_fen = models.BigIntegerField("医疗保险 (medical, fen)")
    total_fen = models.BigIntegerField("应缴合计 (total owed, fen)")
    # Project rule: a month is due by the last day of the following month; late fees run from the day after.
    due_date = models.DateField("缴费期限 (due date)")
    state = FSMField("状态 (state)", default=P.DUE, choices=P.choices, protected=True)
    last_failure = models.CharField("上次失败原因 (last failure)", max_length=255, blank=True)
    # Set when paid: the late fee actually collected and the payment that paid it.
    late_fee_fen = models.BigIntegerField("滞纳金 (late fee paid, fen)", default=0)
    payment = models.ForeignKey("Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    paid_at = models.DateTimeField("缴费时间 (paid at)", null=True, blank=True)

    class Meta:
        verbose_name = "缴费期 (contribution period)"
        ordering = ["month"]
        constraints = [
            models.UniqueConstraint(fields=["enrolment", "month"], name="flexible_one_period_per_month"),
            models.CheckConstraint(name="flexible_period_total_adds_up",
                                   condition=models.Q(total_fen=models.F("pension_fen") + models.F("medical_fen"))),
            models.CheckConstraint(name="flexible_period_amount_positive", condition=models.Q(total_fen__gt=0)),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.state}"

    @transition(field=state, source=P.DUE, target=P.PAYING)
    def start_paying(self):
        pass

    @transition(field=state, source=P.PAYING, target=P.PAID)
    def mark_paid(self):
        pass

    @transition(field=state, source=P.PAYING, target=P.DUE)
    def payment_failed(self):
        pass


class PaymentState(models.TextChoices):
    PAYING = "paying", "缴费中 (paying)"
    PAID = "paid", "已缴 (paid)"
    FAILED = "failed", "失败 (failed)"


PS = PaymentState


class Payment(ConcurrentTransitionMixin, models.Model):
    """One payment: the periods it covers and their late fees, in one transfer."""

    enrolment = models.ForeignKey(Enrolment, on_delete=models.PROTECT, related_name="payments")
    wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                               verbose_name="缴费钱包 (paying wallet)")
    fund_wallet = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                                    verbose_name="社保基金收入户 (fund wallet)")
    contributions_fen = models.BigIntegerField("社保费 (premiums, fen)")
    late_fee_fen = models.BigIntegerField("滞纳金 (late fees, fen)")
    amount_fen = models.BigIntegerField("合计 (amount, fen)")
    state = FSMField("状态 (state)", default=PS.PAYING, choices=PS.choices, protected=True)
    failure_reason = models.CharField("失败原因 (failure reason)", max_length=255, blank=True)
    transfer = models.OneToOneField("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    paid_on = models.DateField("缴费日期 (payment date)")  # the local day late fees were counted to
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Outbox: the payment notice (5104) to the collecting authority; set when it acknowledged it.
    notified_at = models.DateTimeField("已通知税务 (notice acknowledged at)", null=True, blank=True)
    # Set by the day's reconciliation when the operator's statement and the notice agree with the payment.
    reconciled_at = models.DateTimeField("已对账 (reconciled at)", null=True, blank=True)

    class Meta:
        verbose_name = "灵活就业缴费 (flexible-employment payment)"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(name="flexible_payment_adds_up",
                                   condition=models.Q(amount_fen=models.F("contributions_fen") + models.F("late_fee_fen"))),
            models.CheckConstraint(name="flexible_payment_amount_positive", condition=models.Q(amount_fen__gt=0)),
        ]

    def __str__(self) -> str:
        return f"payment {self.pk} {self.state}"

    @property
    def idempotency_key(self) -> str:
        return f"socialflex:payment:{self.pk}"

    @property
    def stream_key(self) -> str:
        return f"social-flexible-{self.enrolment_id}"

    @property
    def payment_no(self) -> str:
        """The number the authority knows it by (PayNo in 5104): 'F' and 11 digits of the id."""
        return f"F{self.pk:011d}"

    @transition(field=state, source=PS.PAYING, target=PS.PAID)
    def succeed(self):
        pass

    @transition(field=state, source=PS.PAYING, target=PS.FAILED)
    def fail(self):
        pass


class PaymentLine(models.Model):
    """A period in a payment, with the late fee counted to the payment's day."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="lines")
    period = models.ForeignKey(Period, on_delete=models.PROTECT, related_name="payment_lines")
    contribution_fen = models.BigIntegerField("社保费 (premium, fen)")
    overdue_days = models.PositiveIntegerField("逾期天数 (days overdue)")
    late_fee_fen = models.BigIntegerField("滞纳金 (late fee, fen)")

    class Meta:
        ordering = ["period__month"]
        constraints = [models.UniqueConstraint(fields=["payment", "period"], name="flexible_line_once_per_payment")]
