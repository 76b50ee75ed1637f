"""The rules against hand-computed cases, on the sample city (370100 济南) the data migration loads.

2026: average monthly wage 7,800.00, floor 4,680.00 (60%), ceiling 23,400.00 (300%). Rates until
2026-06-30: pension 16%/8%, medical 7%/2%, unemployment 0.7%/0.3%, work injury 0.2%; from 2026-07-01
unemployment 0.5%/0.5% and work injury 0.4%. Flexible: pension 20% (8% personal account), medical 9%.
"""
import dataclasses
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from social_security import rules
from social_security.models import ContributionBase, ContributionRate, Region

pytestmark = pytest.mark.django_db
MARCH = date(2026, 3, 1)


@pytest.fixture
def march():
    return rules.rules_for(region="370100", on=MARCH)


def amounts(result):
    return {a.insurance_type: (a.employer_fen, a.individual_fen) for a in result.amounts}


def test_snapshot_of_the_sample_city(march):
    assert (march.floor_fen, march.ceiling_fen, march.average_wage_fen) == (468000, 2340000, 780000)
    assert march.late_fee_daily_rate == Decimal("0.0005")
    assert march.rounding == "ROUND_HALF_UP"
    assert march.rates["work_injury"].employer_rate == Decimal("0.002")
    with pytest.raises(dataclasses.FrozenInstanceError):
        march.floor_fen = 1
    with pytest.raises(TypeError):
        march.rates["pension"] = None


def test_below_floor_is_declared_at_the_floor_with_a_note(march):
    base, note = rules.clamp_base(base_fen=300000, rules=march)
    assert base == 468000
    assert note == "低于下限，按下限 ¥4,680.00 计 (below floor)"
    result = rules.premiums(base_fen=base, rules=march)
    # 468,000 x 16% = 74,880; x 8% = 37,440; x 7% = 32,760; x 2% = 9,360; x 0.7% = 3,276; x 0.3% = 1,404; x 0.2% = 936
    assert amounts(result) == {"pension": (74880, 37440), "medical": (32760, 9360),
                               "unemployment": (3276, 1404), "work_injury": (936, 0)}
    assert (result.employer_fen, result.individual_fen, result.total_fen) == (111852, 48204, 160056)


def test_above_ceiling_is_declared_at_the_ceiling_with_a_note(march):
    assert rules.clamp_base(base_fen=3000000, rules=march) == (2340000, "高于上限，按上限 ¥23,400.00 计 (above ceiling)")
    assert rules.clamp_base(base_fen=2340000, rules=march) == (2340000, "")
    assert rules.clamp_base(base_fen=468000, rules=march) == (468000, "")
    result = rules.premiums(base_fen=2340000, rules=march)
    assert result.of("pension").employer_fen == 374400 and result.of("pension").individual_fen == 187200


def test_half_a_fen_rounds_up_each_type_on_its_own(march):
    # 500,250 x 0.2% = 1,000.5 -> 1,001 (half-even would give 1,000); x 0.3% = 1,500.75 -> 1,501;
    # x 7% = 35,017.5 -> 35,018; x 0.7% = 3,501.75 -> 3,502
    result = rules.premiums(base_fen=500250, rules=march)
    assert amounts(result) == {"pension": (80040, 40020), "medical": (35018, 10005),
                               "unemployment": (3502, 1501), "work_injury": (1001, 0)}
    assert result.employer_fen == 80040 + 35018 + 3502 + 1001


def test_mid_year_rate_change():
    before = rules.rules_for(region="370100", on=date(2026, 6, 30))
    after = rules.rules_for(region="370100", on=date(2026, 7, 1))
    assert amounts(rules.premiums(base_fen=500000, rules=before))["unemployment"] == (3500, 1500)
    assert amounts(rules.premiums(base_fen=500000, rules=before))["work_injury"] == (1000, 0)
    assert amounts(rules.premiums(base_fen=500000, rules=after))["unemployment"] == (2500, 2500)
    assert amounts(rules.premiums(base_fen=500000, rules=after))["work_injury"] == (2000, 0)
    assert amounts(rules.premiums(base_fen=500000, rules=after))["pension"] == (80000, 40000)
    assert before.rates["unemployment"].effective_to == date(2026, 6, 30)
    assert after.rates["unemployment"].effective_from == date(2026, 7, 1)
    assert after.rates["unemployment"].effective_to is None


def test_flexible_employment_rates_and_personal_account_split(march):
    result = rules.premiums(base_fen=468000, rules=march, kind="flexible")
    # pension 20% = 93,600 of which 8% = 37,440 to the personal account, 56,160 pooled; medical 9% = 42,120
    assert [a.insurance_type for a in result.amounts] == ["pension", "medical"]
    pension = result.of("pension")
    assert (pension.employer_fen, pension.individual_fen, pension.personal_account_fen, pension.pooled_fen) == (
        0, 93600, 37440, 56160)
    assert result.of("medical").individual_fen == 42120
    assert (result.employer_fen, result.individual_fen) == (0, 135720)
    # 468,001: 93,600.2 -> 93,600 and 37,440.08 -> 37,440; the pooled part is the rest
    odd = rules.premiums(base_fen=468001, rules=march, kind="flexible").of("pension")
    assert (odd.individual_fen, odd.personal_account_fen, odd.pooled_fen) == (93600, 37440, 56160)


def test_a_base_outside_the_range_is_refused_where_it_must_be_inside(march):
    with pytest.raises(rules.BaseOutOfRange):
        rules.premiums(base_fen=467999, rules=march, kind="flexible")
    with pytest.raises(rules.BaseOutOfRange):
        rules.premiums(base_fen=2340001, rules=march)
    with pytest.raises(rules.BaseOutOfRange):
        rules.clamp_base(base_fen=-1, rules=march)
    with pytest.raises(ValueError):
        rules.premiums(base_fen=500000, rules=march, kind="retired")


def test_late_fee(march):
    # 111,852 x 0.05% x 30 = 1,677.78 -> 1,678; 1,000 x 0.05% x 1 = 0.5 -> 1 (half up)
    assert rules.late_fee(overdue_fen=111852, days=30, rules=march) == 1678
    assert rules.late_fee(overdue_fen=1000, days=1, rules=march) == 1
    assert rules.late_fee(overdue_fen=100000, days=0, rules=march) == 0
    with pytest.raises(ValueError):
        rules.late_fee(overdue_fen=100, days=-1, rules=march)


def test_missing_rules_are_a_specific_error():
    with pytest.raises(rules.RulesNotFound):
        rules.rules_for(region="999999", on=MARCH)
    with pytest.raises(rules.RulesNotFound):
        rules.rules_for(region="370100", on=date(2027, 1, 1))  # no 2027 base limits
    with pytest.raises(rules.RulesNotFound):
        rules.rules_for(region="370100", on=date(2024, 12, 31))  # before the first version


def test_a_new_version_derives_the_periods():
    region = Region.objects.get(code="370100")
    ContributionRate.objects.create(region=region, insurance_type="medical", effective_from=date(2026, 10, 1),
                                    employer_rate=Decimal("0.08"), individual_rate=Decimal("0.02"),
                                    flexible_rate=Decimal("0.095"))
    first = ContributionRate.objects.get(region=region, insurance_type="medical", effective_from=date(2025, 1, 1))
    assert first.effective_to == date(2026, 9, 30)
    assert rules.premiums(base_fen=500000, rules=rules.rules_for(region=region, on=date(2026, 10, 1))).of(
        "medical").employer_fen == 40000
    ContributionRate.objects.get(region=region, insurance_type="medical", effective_from=date(2026, 10, 1)).delete()
    first.refresh_from_db()
    assert first.effective_to is None


def test_validation_refuses_overlaps_bad_rates_and_floor_above_ceiling():
    region = Region.objects.get(code="370100")
    same_day = ContributionRate(region=region, insurance_type="pension", effective_from=date(2025, 1, 1),
                                employer_rate=Decimal("0.16"), individual_rate=Decimal("0.08"))
    with pytest.raises(ValidationError) as overlap:
        same_day.full_clean()
    assert "effective_from" in overlap.value.error_dict
    too_high = ContributionRate(region=region, insurance_type="pension", effective_from=date(2027, 1, 1),
                                employer_rate=Decimal("0.6"), individual_rate=Decimal("0.08"),
                                flexible_rate=Decimal("0.2"), flexible_account_rate=Decimal("0.3"))
    with pytest.raises(ValidationError) as bad:
        too_high.full_clean()
    assert {"employer_rate", "flexible_account_rate"} <= set(bad.value.error_dict)
    inverted = ContributionBase(region=region, year=2027, average_wage_fen=800000, floor_fen=900000,
                                ceiling_fen=800000)
    with pytest.raises(ValidationError):
        inverted.full_clean()
    with transaction.atomic(), pytest.raises(IntegrityError):
        inverted.save()
    defaulted = ContributionBase(region=region, year=2027, average_wage_fen=800001)
    defaulted.full_clean()
    defaulted.save()
    assert (defaulted.floor_fen, defaulted.ceiling_fen) == (480001, 2400003)  # 480,000.6 -> 480,001


def test_admin_pages_list_and_validate(admin_client):
    region = Region.objects.get(code="370100")
    assert admin_client.get("/admin/social_security/contributionrate/").status_code == 200
    assert admin_client.get(f"/admin/social_security/region/{region.pk}/change/").status_code == 200
    response = admin_client.post("/admin/social_security/contributionbase/add/", {
        "region": region.pk, "year": 2027, "average_wage_fen": 800000, "floor_fen": 900000, "ceiling_fen": 800000})
    assert response.status_code == 200 and "上限必须高于下限" in response.content.decode()
    assert not ContributionBase.objects.filter(year=2027).exists()


def test_the_integer_path_equals_decimal_half_up_on_every_kind_of_base(march):
    import random

    generator = random.Random(20260301)
    rates = [Decimal("0.16"), Decimal("0.002"), Decimal("0.003"), Decimal("0.007"), Decimal("0.095"),
             Decimal("0.123457"), Decimal("0.0005")]
    bases = [468000, 500250, 2340000, 1000] + [generator.randrange(0, 10**9) for _ in range(20000)]
    for base in bases:
        for rate in rates:
            expected = int((Decimal(base) * rate).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
            assert rules._times_half_up(base, rate, march) == expected, (base, rate)
    # a rate with more decimals than the table stores still rounds as Decimal does
    assert rules._times_half_up(333, Decimal("0.0000015"), march) == 0


def test_level_base_is_the_share_of_the_average_wage_rounded_half_up_then_clamped(march):
    # 2026: average wage 7,800.00 -> 60% 4,680.00 (the floor itself: no note), 100% 7,800.00, 300% 23,400.00
    assert rules.level_base(level_percent=60, rules=march) == (468000, "")
    assert rules.level_base(level_percent=100, rules=march) == (780000, "")
    assert rules.level_base(level_percent=300, rules=march) == (2340000, "")
    # 320% = 24,960.00 is above the ceiling: counted at 23,400.00 with the clamp's note
    assert rules.level_base(level_percent=320, rules=march) == (2340000, "高于上限，按上限 ¥23,400.00 计 (above ceiling)")
    # 50% = 3,900.00 is below the floor
    assert rules.level_base(level_percent=50, rules=march) == (468000, "低于下限，按下限 ¥4,680.00 计 (below floor)")
    odd = dataclasses.replace(march, average_wage_fen=780_005)
    # 780,005 x 70% = 546,003.5 fen -> 546,004 (half up); x 80% = 624,004.0; x 90% = 702,004.5 -> 702,005
    assert rules.level_base(level_percent=70, rules=odd) == (546004, "")
    assert rules.level_base(level_percent=80, rules=odd) == (624004, "")
    assert rules.level_base(level_percent=90, rules=odd) == (702005, "")
    low = dataclasses.replace(march, average_wage_fen=780_003)
    # 780,003 x 65% = 507,001.95 -> 507,002 (rounded up); x 61% = 475,801.83 -> 475,802
    assert rules.level_base(level_percent=65, rules=low) == (507002, "")
    assert rules.level_base(level_percent=61, rules=low) == (475802, "")


def test_level_base_refuses_what_is_not_a_whole_percent(march):
    for bad in (0, -20, Decimal("60"), 60.0, "60"):
        with pytest.raises(ValueError):
            rules.level_base(level_percent=bad, rules=march)


def test_level_base_follows_the_year_of_the_rules():
    # 2025's average wage differs from 2026's: the same level gives each year's own base.
    jan_2025 = rules.rules_for(region="370100", on=date(2025, 1, 1))
    base_2025, _ = rules.level_base(level_percent=100, rules=jan_2025)
    assert base_2025 == jan_2025.average_wage_fen != 780000


def test_work_injury_is_the_employers_alone_whatever_the_table_says():
    """工伤保险: the employer pays at its industry class's rate, the individual nothing (nor a flexible payer,
    who has no work-injury insurance). A region's work-injury row holding an individual or flexible rate by
    mistake charges nobody but the employer, and the admin form refuses it."""
    region = Region.objects.get(code="370100")
    ContributionRate.objects.filter(region=region, insurance_type="work_injury").update(
        individual_rate=Decimal("0.001"), flexible_rate=Decimal("0.002"))
    snapshot = rules.rules_for(region=region, on=MARCH)

    employee = rules.premiums(base_fen=500000, rules=snapshot).of("work_injury")
    assert (employee.employer_fen, employee.individual_fen) == (1000, 0)  # class 1: 0.2% of 5,000.00
    flexible = rules.premiums(base_fen=500000, rules=snapshot, kind=rules.FLEXIBLE)
    assert "work_injury" not in {a.insurance_type for a in flexible.amounts}
    assert flexible.total_fen == 100000 + 45000  # pension 20%, medical 9%

    wrong = ContributionRate(region=region, insurance_type="work_injury", effective_from=date(2027, 1, 1),
                             employer_rate=Decimal("0.004"), individual_rate=Decimal("0.001"),
                             flexible_rate=Decimal("0.002"))
    with pytest.raises(ValidationError) as refused:
        wrong.full_clean()
    assert {"individual_rate", "flexible_rate"} <= set(refused.value.error_dict)
