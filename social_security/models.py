"""Social insurance (社会保险): the contribution rules, and employers' monthly declarations.

Rules are a versioned table, edited in the Django admin:

    Region            a city (行政区划代码, e.g. 370100 济南) with its late-fee rate and rounding rule
    ContributionRate  per region and insurance type: employer, individual and flexible-employment rates,
                      effective from a date; effective_to is derived (the day before the next version starts)
    ContributionBase  per region and calendar year: the local average monthly wage and the base floor and
                      ceiling (60% and 300% of it by default), in fen
    WorkInjuryClassRate  per region and industry risk class (1..8): the work-injury employer rate, versioned
    EmployerRiskClass    an employer's risk class in a region from a date on (class 1 when none is set)

Only social_security/rules.py computes with them.

Collection: `FundAccount` (the region's fund wallet and collecting tax authority, for employers and
flexible-employment individuals alike), `Declaration` and its `DeclarationLine`s (an employer's month; the
state machine is on Declaration).

Reconciliation: `ReconciliationRun` (a day), `ReconciliationResult` (a payment of that day and its outcome),
`SocialDiscrepancyCase` (open -> investigating -> resolved) and `SocialCaseCorrection` (maker-checker).
"""
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

# The discrepancy case's workflow and the correction's states are the tax reconciliation engine's.
from tax.reconciliation.models import CaseWorkflow, CorrectionState


class InsuranceType(models.TextChoices):
    PENSION = "pension", "基本养老保险 (basic pension)"
    MEDICAL = "medical", "基本医疗保险(含生育) (basic medical incl. maternity)"
    UNEMPLOYMENT = "unemployment", "失业保险 (unemployment)"
    WORK_INJURY = "work_injury", "工伤保险 (work injury)"


# Display and computation order.
INSURANCE_TYPES = [InsuranceType.PENSION, InsuranceType.MEDICAL, InsuranceType.UNEMPLOYMENT,
                   InsuranceType.WORK_INJURY]


class Rounding(models.TextChoices):
    # Named so that a region with another rule adds a choice here and in rules.ROUNDING_MODES.
    HALF_UP_TO_FEN = "ROUND_HALF_UP", "四舍五入到分 (to the fen, half up)"


RATE_VALIDATORS = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.5"))]


def _rate_field(label, **kwargs):
    return models.DecimalField(label, max_digits=7, decimal_places=6, validators=RATE_VALIDATORS, **kwargs)


class Region(models.Model):
    """统筹地区 (pooling region): the city whose rules apply."""

    code = models.CharField("行政区划代码 (region code)", max_length=6, unique=True,
                            validators=[RegexValidator(r"^\d{6}$", "6 位数字 (six digits)")])
    name = models.CharField("名称 (name)", max_length=100)
    late_fee_daily_rate = models.DecimalField(
        "滞纳金日费率 (late fee per day)", max_digits=7, decimal_places=6, default=Decimal("0.0005"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("0.01"))],
        help_text="社会保险法第八十六条: 每日万分之五 (Social Insurance Law art. 86: 0.05% a day)")
    rounding = models.CharField("舍入规则 (rounding)", max_length=20, choices=Rounding.choices,
                                default=Rounding.HALF_UP_TO_FEN)

    class Meta:
        verbose_name = "统筹地区 (region)"
        verbose_name_plural = "统筹地区 (regions)"
        ordering = ["code"]

    def __str__(self):
        return f"{self.code} {self.name}"


class ContributionRate(models.Model):
    """缴费比例 (contribution rates) of one insurance type in one region from a date on.

    Flexible-employment individuals (灵活就业人员) pay `flexible_rate` of their chosen base alone (pension
    20%, medical at the local flexible rate; 0 where they are not insured, e.g. unemployment);
    `flexible_account_rate` is the part of the pension that goes to the personal account (8 of the 20 points).
    """

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="rates", verbose_name="地区 (region)")
    insurance_type = models.CharField("险种 (insurance type)", max_length=16, choices=InsuranceType.choices)
    effective_from = models.DateField("生效日期 (effective from)")
    # Derived: the day before the next version of the same region and type starts; null while current.
    effective_to = models.DateField("截止日期 (effective to)", null=True, blank=True, editable=False)
    employer_rate = _rate_field("单位费率 (employer rate)")
    individual_rate = _rate_field("个人费率 (individual rate)")
    flexible_rate = _rate_field("灵活就业费率 (flexible-employment rate)", default=Decimal("0"))
    flexible_account_rate = _rate_field("灵活就业计入个人账户 (flexible: to personal account)", default=Decimal("0"))

    class Meta:
        verbose_name = "缴费比例 (contribution rate)"
        verbose_name_plural = "缴费比例 (contribution rates)"
        ordering = ["region", "insurance_type", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["region", "insurance_type", "effective_from"],
                                    name="social_rate_one_version_per_day"),
            models.CheckConstraint(condition=models.Q(employer_rate__gte=0, employer_rate__lte=Decimal("0.5"),
                                                      individual_rate__gte=0, individual_rate__lte=Decimal("0.5"),
                                                      flexible_rate__gte=0, flexible_rate__lte=Decimal("0.5"),
                                                      flexible_account_rate__gte=0),
                                   name="social_rate_in_range"),
            models.CheckConstraint(condition=models.Q(flexible_account_rate__lte=models.F("flexible_rate")),
                                   name="social_rate_account_within_flexible"),
        ]

    def __str__(self):
        return f"{self.region.code} {self.get_insurance_type_display()} {self.effective_from}"

    def clean(self):
        errors = {}
        if (self.flexible_account_rate or 0) > (self.flexible_rate or 0):
            errors["flexible_account_rate"] = "计入个人账户的比例不能高于灵活就业费率 (personal-account part exceeds the flexible rate)"
        if self.insurance_type == InsuranceType.WORK_INJURY:
            # The employer's alone; a flexible-employment individual has no work-injury insurance.
            if self.individual_rate:
                errors["individual_rate"] = "工伤保险个人不缴费，个人费率应为0 (work injury: individuals pay nothing)"
            if self.flexible_rate:
                errors["flexible_rate"] = "灵活就业人员不参加工伤保险，费率应为0 (work injury: no flexible-employment rate)"
        if self.region_id and self.insurance_type and self.effective_from:
            clash = ContributionRate.objects.filter(region_id=self.region_id, insurance_type=self.insurance_type,
                                                    effective_from=self.effective_from).exclude(pk=self.pk)
            if clash.exists():
                errors["effective_from"] = ("同一地区同一险种已有同日生效的版本，生效期间不能重叠 "
                                            "(a version of this type already starts that day: periods must not overlap)")
        if errors:
            raise ValidationError(errors)

    def save(self, *args, **kwargs):
        with transaction.atomic():
            old = None
            if self.pk:
                old = ContributionRate.objects.filter(pk=self.pk).values_list("region_id", "insurance_type").first()
            super().save(*args, **kwargs)
            derive_effective_to(region_id=self.region_id, insurance_type=self.insurance_type)
            if old and old != (self.region_id, self.insurance_type):
                derive_effective_to(region_id=old[0], insurance_type=old[1])

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            derive_effective_to(region_id=self.region_id, insurance_type=self.insurance_type)
            return result


def derive_effective_to(*, region_id: int, insurance_type: str) -> None:
    """Set each version's effective_to to the day before the next version of the same region and type.

    The periods then tile the timeline with no gap and no overlap by construction.
    """
    versions = list(ContributionRate.objects.filter(region_id=region_id, insurance_type=insurance_type)
                    .order_by("effective_from"))
    for version, following in zip(versions, versions[1:] + [None]):
        wanted = following.effective_from - timedelta(days=1) if following else None
        if version.effective_to != wanted:
            ContributionRate.objects.filter(pk=version.pk).update(effective_to=wanted)


def default_floor_fen(average_wage_fen: int) -> int:
    return int((Decimal(average_wage_fen) * Decimal("0.6")).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def default_ceiling_fen(average_wage_fen: int) -> int:
    return average_wage_fen * 3


class ContributionBase(models.Model):
    """缴费基数上下限 (contribution base floor and ceiling) of a region for a calendar year, in fen.

    Project choice: the year of the declared period picks the row (some regions switch bases in July; add
    such a region's rows by the year its base year starts in and say so in the README).
    """

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="bases", verbose_name="地区 (region)")
    year = models.PositiveIntegerField("年度 (year)", validators=[MinValueValidator(2000), MaxValueValidator(2100)])
    average_wage_fen = models.BigIntegerField("社平工资(月) (local average monthly wage, fen)",
                                              validators=[MinValueValidator(1)])
    floor_fen = models.BigIntegerField("基数下限 (floor, fen)", blank=True,
                                       help_text="留空按社平工资 60% 计 (blank: 60% of the average wage)")
    ceiling_fen = models.BigIntegerField("基数上限 (ceiling, fen)", blank=True,
                                         help_text="留空按社平工资 300% 计 (blank: 300% of the average wage)")

    class Meta:
        verbose_name = "缴费基数上下限 (contribution base limits)"
        verbose_name_plural = "缴费基数上下限 (contribution base limits)"
        ordering = ["region", "year"]
        constraints = [
            models.UniqueConstraint(fields=["region", "year"], name="social_base_one_per_year"),
            models.CheckConstraint(condition=models.Q(floor_fen__gt=0, ceiling_fen__gt=models.F("floor_fen")),
                                   name="social_base_floor_below_ceiling"),
        ]

    def __str__(self):
        return f"{self.region.code} {self.year}"

    def _fill_defaults(self):
        if self.average_wage_fen:
            if self.floor_fen is None:
                self.floor_fen = default_floor_fen(self.average_wage_fen)
            if self.ceiling_fen is None:
                self.ceiling_fen = default_ceiling_fen(self.average_wage_fen)

    def clean(self):
        self._fill_defaults()
        if self.floor_fen is not None and self.floor_fen <= 0:
            raise ValidationError({"floor_fen": "下限必须大于 0 (floor must be positive)"})
        if self.floor_fen is not None and self.ceiling_fen is not None and self.floor_fen >= self.ceiling_fen:
            raise ValidationError({"ceiling_fen": "上限必须高于下限 (ceiling must be above the floor)"})

    def save(self, *args, **kwargs):
        self._fill_defaults()
        super().save(*args, **kwargs)


RISK_CLASSES = range(1, 9)  # 行业风险类别 一类..八类
DEFAULT_RISK_CLASS = 1
RISK_CLASS_VALIDATORS = [MinValueValidator(1), MaxValueValidator(8)]
# Work-injury base rates run from about 0.2% (class 1) to 1.9% (class 8); 5% leaves room for a floating rate.
WORK_INJURY_MAX_RATE = Decimal("0.05")


class WorkInjuryClassRate(models.Model):
    """工伤保险行业基准费率 (work-injury base rate) of one industry risk class in one region from a date on.

    Where a region has these, the work-injury employer rate of a declaration is its employer's class rate;
    the work-injury row of ContributionRate then only holds the individual rate (0) and serves regions that
    have no class table. Versioned like ContributionRate: effective_to is derived per region and class.
    """

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="work_injury_rates",
                               verbose_name="地区 (region)")
    risk_class = models.PositiveSmallIntegerField("行业风险类别 (industry risk class)", validators=RISK_CLASS_VALIDATORS)
    effective_from = models.DateField("生效日期 (effective from)")
    effective_to = models.DateField("截止日期 (effective to)", null=True, blank=True, editable=False)
    employer_rate = models.DecimalField(
        "单位费率 (employer rate)", max_digits=7, decimal_places=6,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(WORK_INJURY_MAX_RATE)])

    class Meta:
        verbose_name = "工伤保险行业费率 (work-injury rate by risk class)"
        verbose_name_plural = "工伤保险行业费率 (work-injury rates by risk class)"
        ordering = ["region", "risk_class", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["region", "risk_class", "effective_from"],
                                    name="social_injury_rate_one_version_per_day"),
            models.CheckConstraint(condition=models.Q(risk_class__gte=1, risk_class__lte=8),
                                   name="social_injury_rate_class_1_to_8"),
            models.CheckConstraint(condition=models.Q(employer_rate__gte=0, employer_rate__lte=WORK_INJURY_MAX_RATE),
                                   name="social_injury_rate_in_range"),
        ]

    def __str__(self):
        return f"{self.region.code} 工伤 {self.risk_class} 类 {self.effective_from}"

    def clean(self):
        if self.region_id and self.risk_class and self.effective_from:
            clash = WorkInjuryClassRate.objects.filter(region_id=self.region_id, risk_class=self.risk_class,
                                                       effective_from=self.effective_from).exclude(pk=self.pk)
            if clash.exists():
                raise ValidationError({"effective_from": (
                    "同一地区同一风险类别已有同日生效的版本，生效期间不能重叠 "
                    "(a version of this class already starts that day: periods must not overlap)")})

    def save(self, *args, **kwargs):
        with transaction.atomic():
            old = None
            if self.pk:
                old = WorkInjuryClassRate.objects.filter(pk=self.pk).values_list("region_id", "risk_class").first()
            super().save(*args, **kwargs)
            derive_injury_effective_to(region_id=self.region_id, risk_class=self.risk_class)
            if old and old != (self.region_id, self.risk_class):
                derive_injury_effective_to(region_id=old[0], risk_class=old[1])

    def delete(self, *args, **kwargs):
        with transaction.atomic():
            result = super().delete(*args, **kwargs)
            derive_injury_effective_to(region_id=self.region_id, risk_class=self.risk_class)
            return result


def derive_injury_effective_to(*, region_id: int, risk_class: int) -> None:
    """As derive_effective_to, per region and risk class."""
    versions = list(WorkInjuryClassRate.objects.filter(region_id=region_id, risk_class=risk_class)
                    .order_by("effective_from"))
    for version, following in zip(versions, versions[1:] + [None]):
        wanted = following.effective_from - timedelta(days=1) if following else None
        if version.effective_to != wanted:
            WorkInjuryClassRate.objects.filter(pk=version.pk).update(effective_to=wanted)


class EmployerRiskClass(models.Model):
    """An employer's industry risk class (行业风险类别) in a region from a date on (the latest version starting
    on or before a period's first day applies). An employer with none is class 1 (DEFAULT_RISK_CLASS), and
    the declaration page says it was defaulted. No floating rate (浮动费率): the class's base rate applies."""

    employer = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="+",
                                 verbose_name="用人单位 (employer)")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name="地区 (region)")
    risk_class = models.PositiveSmallIntegerField("行业风险类别 (industry risk class)", validators=RISK_CLASS_VALIDATORS)
    effective_from = models.DateField("生效日期 (effective from)")

    class Meta:
        verbose_name = "单位工伤风险类别 (employer's work-injury risk class)"
        verbose_name_plural = "单位工伤风险类别 (employers' work-injury risk classes)"
        ordering = ["employer", "region", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["employer", "region", "effective_from"],
                                    name="social_employer_class_one_per_day"),
            models.CheckConstraint(condition=models.Q(risk_class__gte=1, risk_class__lte=8),
                                   name="social_employer_class_1_to_8"),
        ]

    def __str__(self):
        return f"{self.employer} {self.region.code} {self.risk_class} 类 {self.effective_from}"

    def clean(self):
        if self.employer_id and self.region_id and self.effective_from:
            clash = EmployerRiskClass.objects.filter(employer_id=self.employer_id, region_id=self.region_id,
                                                     effective_from=self.effective_from).exclude(pk=self.pk)
            if clash.exists():
                raise ValidationError({"effective_from": "该单位在此地区已有同日生效的类别 (a class already starts that day)"})


# ---------------------------------------------------------------------------------------------
# Collection: the fund wallet, employers' monthly declarations
# ---------------------------------------------------------------------------------------------


class FundAccount(models.Model):
    """社会保险基金收入户 (social-insurance fund income account): the wallet into which the collecting tax
    authority collects a region's premiums, employers' and flexible-employment individuals' alike. One per
    region: it also names the region's collecting authority (征收机关)."""

    region = models.OneToOneField(Region, on_delete=models.PROTECT, related_name="fund_account",
                                  verbose_name="地区 (region)")
    tax_authority = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="+",
                                      verbose_name="征收税务机关 (collecting tax authority)")
    wallet = models.OneToOneField("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                                  verbose_name="基金收入户钱包 (fund wallet)")

    class Meta:
        verbose_name = "社保基金收入户 (social-insurance fund account)"
        verbose_name_plural = "社保基金收入户 (social-insurance fund accounts)"

    def __str__(self):
        return f"{self.region} {self.wallet}"


class DeclarationState(models.TextChoices):
    DRAFT = "draft", "草稿 (draft)"
    DECLARED = "declared", "已申报 (declared)"
    CONFIRMED = "confirmed", "已确认 (confirmed)"
    PAYING = "paying", "缴费中 (paying)"
    PAID = "paid", "已缴费 (paid)"
    RECONCILED = "reconciled", "已对账 (reconciled)"
    REJECTED = "rejected", "已退回 (rejected)"
    CANCELLED = "cancelled", "已作废 (cancelled)"


class DeclarationSource(models.TextChoices):
    ENTERED = "entered", "页面录入 (entered)"
    IMPORTED = "imported", "文件导入 (imported)"
    PAYROLL = "payroll", "工资表 (payroll)"


S = DeclarationState
# While a declaration is in one of these states the employer cannot open another for the same region and period.
OPEN_STATES = (S.DRAFT, S.DECLARED, S.CONFIRMED, S.PAYING, S.PAID, S.RECONCILED, S.REJECTED)


class Declaration(ConcurrentTransitionMixin, models.Model):
    """社会保险费申报 (an employer's monthly declaration of premiums), one per employer, region and period.

        draft --declare (approver)--> declared --confirm (authority, voucher no)--> confirmed
        declared --reject (authority, reason)--> rejected --reopen--> draft
        confirmed --start_payment (approver)--> paying --settle--> paid --reconcile--> reconciled
        paying --payment_failed (reason)--> confirmed            (pay again: a new transfer, never two at once)
        draft | rejected --cancel--> cancelled
    """

    employer = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="social_declarations",
                                 verbose_name="用人单位 (employer)")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="declarations",
                               verbose_name="参保地 (region)")
    tax_authority = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="+",
                                      verbose_name="征收税务机关 (collecting tax authority)")
    period = models.CharField("费款所属期 (period)", max_length=7)  # YYYY-MM
    source = models.CharField("来源 (source)", max_length=10, choices=DeclarationSource.choices)
    payroll_batch = models.ForeignKey("payroll.PayrollBatch", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", verbose_name="工资批次 (payroll batch)")
    line_count = models.PositiveIntegerField("人数 (insured persons)", default=0)
    base_total_fen = models.BigIntegerField("缴费基数合计 (bases)", default=0)
    employer_total_fen = models.BigIntegerField("单位缴费合计 (employer share)", default=0)
    individual_total_fen = models.BigIntegerField("个人缴费合计 (individual share)", default=0)
    total_fen = models.BigIntegerField("应缴合计 (total due)", default=0)
    state = FSMField("状态 (state)", default=S.DRAFT, choices=S.choices, protected=True)
    state_reason = models.CharField("原因 (reason)", max_length=255, blank=True)
    voucher_no = models.CharField("缴款凭证号 (voucher number)", max_length=20, blank=True)
    confirmed_total_fen = models.BigIntegerField("确认金额 (confirmed total)", null=True, blank=True)
    prepared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    declared_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    payer_wallet = models.ForeignKey("treasury.Wallet", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", verbose_name="缴费钱包 (payer wallet)")
    agreement = models.ForeignKey("tax.TaxAgreement", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+", verbose_name="三方协议 (agreement)")
    # The payment in flight or the one that paid; earlier failed attempts stay in the trace and transfers.
    transfer = models.ForeignKey("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    payment_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    declared_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # The employer's work-injury risk class on the period's first day, fixed when the draft is made (every line
    # of the declaration uses it); work_injury_class_set False: none was set, class 1 by default.
    work_injury_class = models.PositiveSmallIntegerField("工伤风险类别 (work-injury risk class)", default=1,
                                                         validators=RISK_CLASS_VALIDATORS)
    work_injury_class_set = models.BooleanField("已设置风险类别 (class set for the employer)", default=False)
    # Outbox: the payment notice (5103) to the authority; set when it acknowledged it.
    payment_notified_at = models.DateTimeField(null=True, blank=True)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "社会保险费申报 (premium declaration)"
        ordering = ["-period", "-created_at"]
        indexes = [models.Index(fields=["tax_authority", "state"]), models.Index(fields=["employer", "period"])]
        constraints = [
            models.UniqueConstraint(fields=["employer", "region", "period"],
                                    condition=~models.Q(state="cancelled"), name="social_one_open_declaration"),
            models.CheckConstraint(condition=models.Q(total_fen=models.F("employer_total_fen")
                                                      + models.F("individual_total_fen")),
                                   name="social_declaration_total_adds_up"),
        ]

    def __str__(self):
        return f"社保申报 {self.pk} {self.period} {self.state}"

    @property
    def stream_key(self) -> str:
        return f"social.declaration:{self.pk}"

    @property
    def declaration_no(self) -> str:
        """The number the authority knows it by (DeclNo in 5101): 'S' and 11 digits of the id."""
        return f"S{self.pk:011d}"

    @transition(field=state, source=S.DRAFT, target=S.DECLARED, conditions=[lambda d: d.line_count > 0])
    def declare(self):
        pass

    @transition(field=state, source=S.DECLARED, target=S.CONFIRMED)
    def confirm(self):
        pass

    @transition(field=state, source=S.DECLARED, target=S.REJECTED)
    def reject(self):
        pass

    @transition(field=state, source=S.REJECTED, target=S.DRAFT)
    def reopen(self):
        pass

    @transition(field=state, source=S.CONFIRMED, target=S.PAYING)
    def start_payment(self):
        pass

    @transition(field=state, source=S.PAYING, target=S.PAID)
    def settle(self):
        pass

    @transition(field=state, source=S.PAYING, target=S.CONFIRMED)
    def payment_failed(self):
        pass

    @transition(field=state, source=S.PAID, target=S.RECONCILED)
    def reconcile(self):
        pass

    @transition(field=state, source=[S.DRAFT, S.REJECTED], target=S.CANCELLED)
    def cancel(self):
        pass


class DeclarationLine(models.Model):
    """One insured employee of a declaration: base as declared, base as counted (clamped, with its note),
    and each type's employer and individual amounts in fen."""

    declaration = models.ForeignKey(Declaration, on_delete=models.CASCADE, related_name="lines")
    line_no = models.PositiveIntegerField("行号 (line)")
    resident_id = models.CharField("公民身份号码 (resident ID)", max_length=18)
    name = models.CharField("姓名 (name)", max_length=100)
    declared_base_fen = models.BigIntegerField("申报基数 (declared base)")
    base_fen = models.BigIntegerField("核定基数 (base counted)")
    base_note = models.CharField("基数说明 (base note)", max_length=120, blank=True)
    pension_employer_fen = models.BigIntegerField(default=0)
    pension_individual_fen = models.BigIntegerField(default=0)
    medical_employer_fen = models.BigIntegerField(default=0)
    medical_individual_fen = models.BigIntegerField(default=0)
    unemployment_employer_fen = models.BigIntegerField(default=0)
    unemployment_individual_fen = models.BigIntegerField(default=0)
    work_injury_employer_fen = models.BigIntegerField(default=0)
    work_injury_individual_fen = models.BigIntegerField(default=0)
    employer_fen = models.BigIntegerField("单位合计 (employer)")
    individual_fen = models.BigIntegerField("个人合计 (individual)")
    total_fen = models.BigIntegerField("合计 (total)")
    # From a payroll run: the payroll line and what it withheld as the individual's social insurance.
    payroll_line = models.ForeignKey("payroll.PayrollLine", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    payroll_withheld_fen = models.BigIntegerField("工资代扣 (withheld by payroll)", null=True, blank=True)

    class Meta:
        verbose_name = "申报明细 (declaration line)"
        ordering = ["declaration", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["declaration", "line_no"], name="social_line_no_unique"),
            models.UniqueConstraint(fields=["declaration", "resident_id"], name="social_line_person_once"),
            models.CheckConstraint(condition=models.Q(total_fen=models.F("employer_fen") + models.F("individual_fen")),
                                   name="social_line_total_adds_up"),
        ]

    @property
    def withheld_difference_fen(self) -> int | None:
        """What payroll withheld minus the computed individual share (None when not from payroll)."""
        if self.payroll_withheld_fen is None:
            return None
        return self.payroll_withheld_fen - self.individual_fen


class ReconciliationSource(models.TextChoices):
    DECLARATION = "declaration", "单位申报 (employer's declaration)"
    FLEXIBLE = "flexible", "灵活就业 (flexible employment)"


class ReconciliationOutcome(models.TextChoices):
    MATCHED = "matched", "相符 (matched)"
    DUPLICATE_OPERATOR = "duplicate_operator", "运营机构重复 (duplicate in the operator statement)"
    MISSING_OURS = "missing_ours", "本方无记录 (missing in ours)"
    MISSING_OPERATOR = "missing_operator", "运营机构无记录 (missing in the operator statement)"
    AMOUNT_MISMATCH = "amount_mismatch", "金额不符 (amount mismatch)"
    NOT_ACKNOWLEDGED = "not_acknowledged", "税务未确认缴费通知 (payment notice not acknowledged)"


DISCREPANCY_OUTCOMES = tuple(o for o in ReconciliationOutcome if o != ReconciliationOutcome.MATCHED)


class ReconciliationRun(models.Model):
    """对账 (reconciliation) of one day's premium payments, employers' declarations and flexible-employment
    payments alike, with the operator's statement of the fund wallets and the collecting authority's
    acknowledgement of each payment notice (5103 / 5104). Re-running a day replaces its results."""

    check_date = models.DateField("对账日期 (check date)", unique=True)
    matched_count = models.PositiveIntegerField("一致 (matched)", default=0)
    discrepancy_count = models.PositiveIntegerField("差异 (discrepancies)", default=0)
    runs = models.PositiveIntegerField(default=0)
    ran_at = models.DateTimeField()

    class Meta:
        verbose_name = "社保费对账 (premium reconciliation)"
        ordering = ["-check_date"]

    def __str__(self):
        return f"社保费对账 {self.check_date}"


class ReconciliationResult(models.Model):
    """One payment (request id) of a run and how the sources agree on it; matched ones too (a day holds one
    payment per employer and per paying individual, so every one gets its row and the totals are sums)."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="results")
    tax_authority = models.ForeignKey("treasury.Organization", null=True, on_delete=models.PROTECT, related_name="+",
                                      verbose_name="征收税务机关 (collecting tax authority)")
    source = models.CharField("来源 (source)", max_length=12, choices=ReconciliationSource.choices)
    request_id = models.CharField("请求幂等键 (request id)", max_length=128)
    document_no = models.CharField("申报/缴费编号 (declaration or payment number)", max_length=20, blank=True)
    outcome = models.CharField("结果 (outcome)", max_length=20, choices=ReconciliationOutcome.choices)
    ours_fen = models.BigIntegerField("本方金额 (ours)", null=True)
    expected_fen = models.BigIntegerField("应缴金额 (confirmed or due)", null=True)
    operator_fen = models.BigIntegerField("运营机构净额 (operator, net)", null=True)
    operator_count = models.PositiveIntegerField("运营机构笔数 (operator credits)", default=0)
    acknowledged = models.BooleanField("税务已确认通知 (notice acknowledged)", default=False)
    declaration = models.ForeignKey("Declaration", null=True, on_delete=models.PROTECT, related_name="+")
    flexible_payment = models.ForeignKey("social_flexible.Payment", null=True, on_delete=models.PROTECT,
                                         related_name="+")
    case = models.ForeignKey("SocialDiscrepancyCase", null=True, on_delete=models.SET_NULL, related_name="results")

    class Meta:
        verbose_name = "社保费对账结果 (premium reconciliation result)"
        ordering = ["source", "request_id"]
        constraints = [models.UniqueConstraint(fields=["run", "request_id"], name="social_recon_result_once")]
        indexes = [models.Index(fields=["run", "tax_authority", "outcome"])]


class SocialDiscrepancyCase(CaseWorkflow):
    """A discrepancy of one payment (request id) and kind; survives re-runs (found again = the same case).

    The tax engine's case is keyed on the tax serial (tax org code, entrust date, TraNo), which a premium
    payment does not have; this one is keyed on the payment's request id and shares its workflow
    (`tax.reconciliation.models.CaseWorkflow`: the same transitions, history and correcting transfer)."""

    tax_authority = models.ForeignKey("treasury.Organization", null=True, on_delete=models.PROTECT, related_name="+",
                                      verbose_name="征收税务机关 (collecting tax authority)")
    source = models.CharField("来源 (source)", max_length=12, choices=ReconciliationSource.choices)
    request_id = models.CharField("请求幂等键 (request id)", max_length=128)
    document_no = models.CharField("申报/缴费编号 (declaration or payment number)", max_length=20, blank=True)
    outcome = models.CharField("差异类型 (kind)", max_length=20, choices=ReconciliationOutcome.choices)
    check_date = models.DateField("对账日期 (check date)")
    first_run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = "社保费对账差异 (premium discrepancy case)"
        ordering = ["-check_date", "request_id"]
        constraints = [models.UniqueConstraint(fields=["request_id", "outcome"], name="social_recon_case_once")]
        indexes = [models.Index(fields=["tax_authority", "state"])]

    def __str__(self):
        return f"{self.request_id} {self.outcome} {self.state}"


class CorrectionKind(models.TextChoices):
    REFUND = "refund", "退还多收 (return an over-collection from the fund wallet to the payer)"
    COLLECT = "collect", "补收少缴 (collect a shortfall from the employer under its agreement)"


class SocialCaseCorrection(ConcurrentTransitionMixin, models.Model):
    """A correcting transfer for a case (maker-checker, as the tax engine's): proposed by one tax staff member
    of the case's authority, approved by another, whose approval creates the transfer through the treasury's
    transfer services in the same transaction; or rejected with a reason. Records are never edited."""

    case = models.ForeignKey(SocialDiscrepancyCase, on_delete=models.PROTECT, related_name="corrections")
    kind = models.CharField("更正方式 (kind)", max_length=10, choices=CorrectionKind.choices)
    amount_fen = models.BigIntegerField("金额 (amount, fen)")
    reason = models.CharField("原因 (reason)", max_length=255)
    payer = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                              verbose_name="付款钱包 (payer wallet)")
    payee = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                              verbose_name="收款钱包 (payee wallet)")
    state = FSMField("状态 (state)", default=CorrectionState.PROPOSED, choices=CorrectionState.choices,
                     protected=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField("拒绝原因 (reason rejected)", max_length=255, blank=True)
    transfer = models.ForeignKey("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")

    class Meta:
        verbose_name = "社保费差异更正 (premium case correction)"
        ordering = ["-proposed_at"]
        constraints = [
            models.CheckConstraint(name="social_recon_correction_amount_positive", condition=models.Q(amount_fen__gt=0)),
            models.UniqueConstraint(fields=["case"], condition=models.Q(state="proposed"),
                                    name="social_recon_correction_one_proposed"),
        ]

    @property
    def stream_key(self) -> str:
        return f"social-recon-case-{self.case_id}"

    @transition(field=state, source=CorrectionState.PROPOSED, target=CorrectionState.APPROVED)
    def approve(self):
        pass

    @transition(field=state, source=CorrectionState.PROPOSED, target=CorrectionState.REJECTED)
    def reject(self):
        pass
