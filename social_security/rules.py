"""The one place that computes social-insurance amounts.

    snapshot = rules_for(region="370100", on=date(2026, 7, 1))     # immutable, read once per declaration
    base_fen, note = clamp_base(base_fen=350000, rules=snapshot)   # floor/ceiling with a visible note
    base_fen, note = level_base(level_percent=100, rules=snapshot)  # a flexible payer's level of the average wage
    risk_class, is_set = risk_class_for(employer=org, region=region, on=date(2026, 7, 1))  # 1, False if none set
    result = premiums(base_fen=base_fen, rules=snapshot, kind="employee", risk_class=risk_class)
    fee = late_fee(overdue_fen=100000, days=30, rules=snapshot)

Amounts are integer fen. Every type's amount is rounded on its own to the fen with the region's named
rounding rule (ROUND_HALF_UP); totals are sums of rounded amounts, so a declaration's lines always add up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Mapping

from social_security.models import (
    DEFAULT_RISK_CLASS, INSURANCE_TYPES, RISK_CLASSES, ContributionBase, ContributionRate, EmployerRiskClass,
    InsuranceType, Region, Rounding, WorkInjuryClassRate,
)
from treasury.money import format_yuan

ROUNDING_MODES = {Rounding.HALF_UP_TO_FEN: ROUND_HALF_UP}
EMPLOYEE = "employee"
FLEXIBLE = "flexible"


class RulesError(Exception):
    code = "social_rules_error"


class RulesNotFound(RulesError):
    """No region, no rate version or no base limits for the date asked."""

    code = "social_rules_not_found"


class BaseOutOfRange(RulesError):
    """A base outside floor..ceiling where it must be inside (premiums; a flexible payer's chosen base)."""

    code = "social_base_out_of_range"


@dataclass(frozen=True)
class TypeRates:
    insurance_type: str
    employer_rate: Decimal
    individual_rate: Decimal
    flexible_rate: Decimal
    flexible_account_rate: Decimal
    effective_from: date
    effective_to: date | None


@dataclass(frozen=True)
class Rules:
    """The rules of one region on one day. Immutable: compute a whole declaration with one snapshot."""

    region_code: str
    region_name: str
    on: date
    year: int
    average_wage_fen: int
    floor_fen: int
    ceiling_fen: int
    late_fee_daily_rate: Decimal
    rounding: str
    rates: Mapping[str, TypeRates]
    # Work-injury employer rate by industry risk class (1..8) in force on `on`; empty when the region has no
    # class table, and then the work-injury row's employer rate applies to every class.
    work_injury_class_rates: Mapping[int, Decimal] = field(default_factory=lambda: MappingProxyType({}))

    def work_injury_rate(self, risk_class: int) -> Decimal:
        """The work-injury employer rate of a risk class. Raises ValueError for a class outside 1..8 and
        RulesNotFound when the region has a class table without that class in force."""
        if type(risk_class) is not int or risk_class not in RISK_CLASSES:
            raise ValueError(f"risk class must be a whole number 1..8, not {risk_class!r}")
        if not self.work_injury_class_rates:
            return self.rates[InsuranceType.WORK_INJURY].employer_rate
        rate = self.work_injury_class_rates.get(risk_class)
        if rate is None:
            raise RulesNotFound(f"{self.region_code} 在 {self.on} 没有工伤保险 {risk_class} 类费率 "
                                f"(no work-injury rate for risk class {risk_class})")
        return rate

    def round_fen(self, value: Decimal) -> int:
        return int(value.quantize(Decimal(1), rounding=ROUNDING_MODES[self.rounding]))


@dataclass(frozen=True)
class TypeAmount:
    insurance_type: str
    employer_fen: int
    individual_fen: int
    # Flexible pension only: of individual_fen, what goes to the personal account and to the pooled fund.
    personal_account_fen: int = 0

    @property
    def pooled_fen(self) -> int:
        return self.employer_fen + self.individual_fen - self.personal_account_fen

    @property
    def total_fen(self) -> int:
        return self.employer_fen + self.individual_fen


@dataclass(frozen=True)
class Premiums:
    base_fen: int
    kind: str
    amounts: tuple[TypeAmount, ...]

    @property
    def employer_fen(self) -> int:
        return sum(a.employer_fen for a in self.amounts)

    @property
    def individual_fen(self) -> int:
        return sum(a.individual_fen for a in self.amounts)

    @property
    def total_fen(self) -> int:
        return self.employer_fen + self.individual_fen

    def of(self, insurance_type: str) -> TypeAmount:
        for amount in self.amounts:
            if amount.insurance_type == insurance_type:
                return amount
        return TypeAmount(insurance_type=insurance_type, employer_fen=0, individual_fen=0)


def rules_for(*, region: str | Region, on: date) -> Rules:
    """The rules in force in `region` (a Region or its 6-digit code) on day `on`.

    Raises RulesNotFound when the region is unknown, an insurance type has no version starting on or
    before `on`, or the region has no base limits for `on`'s year.
    """
    if not isinstance(region, Region):
        found = Region.objects.filter(code=region).first()
        if found is None:
            raise RulesNotFound(f"未配置统筹地区 {region} (no rules for region {region})")
        region = found
    versions = {}
    for rate in (ContributionRate.objects.filter(region=region, effective_from__lte=on)
                 .order_by("insurance_type", "-effective_from")):
        versions.setdefault(rate.insurance_type, rate)
    missing = [t.label for t in INSURANCE_TYPES if t.value not in versions]
    if missing:
        raise RulesNotFound(f"{region.code} 在 {on} 没有生效的费率: {', '.join(missing)} "
                            f"(no rate in force on {on})")
    base = ContributionBase.objects.filter(region=region, year=on.year).first()
    if base is None:
        raise RulesNotFound(f"{region.code} 未配置 {on.year} 年缴费基数上下限 (no base limits for {on.year})")
    rates = {
        t: TypeRates(insurance_type=t, employer_rate=v.employer_rate, individual_rate=v.individual_rate,
                     flexible_rate=v.flexible_rate, flexible_account_rate=v.flexible_account_rate,
                     effective_from=v.effective_from, effective_to=v.effective_to)
        for t, v in versions.items()
    }
    class_rates = {}
    for version in (WorkInjuryClassRate.objects.filter(region=region, effective_from__lte=on)
                    .order_by("risk_class", "-effective_from")):
        class_rates.setdefault(version.risk_class, version.employer_rate)
    return Rules(region_code=region.code, region_name=region.name, on=on, year=on.year,
                 average_wage_fen=base.average_wage_fen, floor_fen=base.floor_fen, ceiling_fen=base.ceiling_fen,
                 late_fee_daily_rate=region.late_fee_daily_rate, rounding=region.rounding,
                 rates=MappingProxyType(rates), work_injury_class_rates=MappingProxyType(class_rates))


def risk_class_for(*, employer, region: Region, on: date) -> tuple[int, bool]:
    """The employer's industry risk class in `region` on day `on` (the latest version starting on or before it)
    and whether one was set: (DEFAULT_RISK_CLASS, False) when none was."""
    found = (EmployerRiskClass.objects.filter(employer=employer, region=region, effective_from__lte=on)
             .order_by("-effective_from").values_list("risk_class", flat=True).first())
    return (DEFAULT_RISK_CLASS, False) if found is None else (found, True)


def clamp_base(*, base_fen: int, rules: Rules) -> tuple[int, str]:
    """The declared base clamped to the region's floor and ceiling, and a note saying so ("" when inside)."""
    if base_fen < 0:
        raise BaseOutOfRange(f"缴费基数不能为负 (base must not be negative): {base_fen}")
    if base_fen < rules.floor_fen:
        return rules.floor_fen, f"低于下限，按下限 {format_yuan(rules.floor_fen)} 计 (below floor)"
    if base_fen > rules.ceiling_fen:
        return rules.ceiling_fen, f"高于上限，按上限 {format_yuan(rules.ceiling_fen)} 计 (above ceiling)"
    return base_fen, ""


def level_base(*, level_percent: int, rules: Rules) -> tuple[int, str]:
    """A flexible payer's base for a level (档次: percent of the local average wage): average wage x level / 100,
    rounded once to the fen with the region's rule, then clamped to floor..ceiling (with clamp_base's note).

    Raises ValueError when the level is not a positive whole percent (which levels are offered is the caller's
    business)."""
    if type(level_percent) is not int or level_percent <= 0:
        raise ValueError(f"level must be a positive whole percent, not {level_percent!r}")
    raw = rules.round_fen(Decimal(rules.average_wage_fen) * level_percent / 100)
    return clamp_base(base_fen=raw, rules=rules)


def premiums(*, base_fen: int, rules: Rules, kind: str = EMPLOYEE, risk_class: int = DEFAULT_RISK_CLASS) -> Premiums:
    """Per-type employer and individual amounts in fen for a base already within floor..ceiling.

    kind "employee": employer and individual rates of every type; the work-injury employer rate is that of
    the employer's industry risk class (`risk_class`, 1..8, class 1 when not given; Rules.work_injury_rate).
    kind "flexible": the individual pays the flexible rate of each type that has one (pension 20%, medical
    at the local flexible rate; never work injury, whatever `risk_class`); the pension's personal-account part
    is recorded (personal_account_fen), rounded on its own, and the pooled part is the rest, so the two always
    add up to what is paid.
    Raises BaseOutOfRange when the base is outside floor..ceiling, ValueError on an unknown kind or a class
    outside 1..8, RulesNotFound when the region's class table lacks the class.
    """
    if not rules.floor_fen <= base_fen <= rules.ceiling_fen:
        raise BaseOutOfRange(f"缴费基数 {format_yuan(base_fen)} 不在 {format_yuan(rules.floor_fen)}"
                             f"-{format_yuan(rules.ceiling_fen)} 之间 (base outside floor..ceiling)")
    if kind not in (EMPLOYEE, FLEXIBLE):
        raise ValueError(f"unknown kind {kind!r}: expected {EMPLOYEE!r} or {FLEXIBLE!r}")
    injury_rate = rules.work_injury_rate(risk_class)
    times = _times_half_up if rules.rounding == Rounding.HALF_UP_TO_FEN else _times_decimal
    amounts = []
    for insurance_type in INSURANCE_TYPES:
        r = rules.rates[insurance_type]
        if kind == EMPLOYEE:
            if insurance_type == InsuranceType.WORK_INJURY:
                # 工伤保险 is the employer's alone (Social Insurance Law art. 33): an individual rate in the table
                # charges nobody.
                amounts.append(TypeAmount(insurance_type=insurance_type.value,
                                          employer_fen=times(base_fen, injury_rate, rules), individual_fen=0))
                continue
            amounts.append(TypeAmount(insurance_type=insurance_type.value,
                                      employer_fen=times(base_fen, r.employer_rate, rules),
                                      individual_fen=times(base_fen, r.individual_rate, rules)))
        elif r.flexible_rate and insurance_type != InsuranceType.WORK_INJURY:
            account = times(base_fen, r.flexible_account_rate, rules) if insurance_type == InsuranceType.PENSION else 0
            amounts.append(TypeAmount(insurance_type=insurance_type.value, employer_fen=0,
                                      individual_fen=times(base_fen, r.flexible_rate, rules),
                                      personal_account_fen=account))
    return Premiums(base_fen=base_fen, kind=kind, amounts=tuple(amounts))


_MICRO = 1_000_000  # rates are stored with at most six decimals, so rate x 10^6 is an exact integer


def _times_half_up(base_fen: int, rate: Decimal, rules: Rules) -> int:
    """base x rate rounded ROUND_HALF_UP to the fen, in integers: for a non-negative base and a rate of at most
    six decimals this is exactly Decimal's quantize(ROUND_HALF_UP) (tested against it), several times faster."""
    micro = _micro_rates.get(rate)
    if micro is None:
        micro = _micro_rates[rate] = int(rate * _MICRO)
        if micro != rate * _MICRO:
            return _times_decimal(base_fen, rate, rules)  # more than six decimals: let Decimal decide
    return (base_fen * micro + _MICRO // 2) // _MICRO


def _times_decimal(base_fen: int, rate: Decimal, rules: Rules) -> int:
    return rules.round_fen(Decimal(base_fen) * rate)


_micro_rates: dict[Decimal, int] = {}


def late_fee(*, overdue_fen: int, days: int, rules: Rules) -> int:
    """滞纳金: overdue amount x daily rate x days, rounded once to the fen with the region's rule."""
    if overdue_fen < 0 or days < 0:
        raise ValueError("overdue amount and days must not be negative")
    return rules.round_fen(Decimal(overdue_fen) * rules.late_fee_daily_rate * days)
