"""Social insurance (社会保险): the contribution rules, and employers' monthly declarations.

Rules are a versioned table, edited in the Django admin:

    Region            a city (行政区划代码, e.g. 370100 济南) with its late-fee rate and rounding rule
    ContributionRate  per region and insurance type: employer, individual and flexible-employment rates,
                      effective from a date; effective_to is derived (the day before the next version starts)
    ContributionBase  per region and calendar year: the local average monthly wage and the base floor and
                      ceiling (60% and 300% of it by default), in fen

Only social_security/rules.py computes with them.
"""
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction


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
