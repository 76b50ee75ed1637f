"""Work-injury insurance by industry risk class (行业风险类别), against hand-computed cases.

The sample city (370100) loads class rates 1..8 from 2025-01-01: 0.2%, 0.4%, 0.7%, 0.9%, 1.1%, 1.3%, 1.6%, 1.9%;
class 1 goes to 0.4% on 2026-07-01. 2026 floor 4,680.00, ceiling 23,400.00.
"""
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from social_security import rules, services
from social_security.models import ContributionRate, EmployerRiskClass, Region, WorkInjuryClassRate
from social_security.services import LineInput, SocialError
from tests import factories as f
from treasury.models import Organization

D = Decimal
MARCH = date(2026, 3, 1)
CLASS_RATES = {1: D("0.002"), 2: D("0.004"), 3: D("0.007"), 4: D("0.009"), 5: D("0.011"), 6: D("0.013"),
               7: D("0.016"), 8: D("0.019")}


def injury(result):
    a = result.of("work_injury")
    return a.employer_fen, a.individual_fen


# ---- rules --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sample_city_loads_classes_1_to_8():
    march = rules.rules_for(region="370100", on=MARCH)
    assert dict(march.work_injury_class_rates) == CLASS_RATES
    with pytest.raises(TypeError):
        march.work_injury_class_rates[1] = D("0.5")
    july = rules.rules_for(region="370100", on=date(2026, 7, 1))
    assert dict(july.work_injury_class_rates) == {**CLASS_RATES, 1: D("0.004")}
    first = WorkInjuryClassRate.objects.get(region__code="370100", risk_class=1, effective_from=date(2025, 1, 1))
    assert first.effective_to == date(2026, 6, 30)


@pytest.mark.django_db
def test_two_classes_and_the_default():
    march = rules.rules_for(region="370100", on=MARCH)
    # 5,000.00 x 0.2% = 10.00 (class 1), x 1.1% = 55.00 (class 5), x 1.9% = 95.00 (class 8)
    assert injury(rules.premiums(base_fen=500000, rules=march, risk_class=1)) == (1000, 0)
    assert injury(rules.premiums(base_fen=500000, rules=march, risk_class=5)) == (5500, 0)
    class_8 = rules.premiums(base_fen=500000, rules=march, risk_class=8)
    assert injury(class_8) == (9500, 0)
    # No class given: class 1.
    default = rules.premiums(base_fen=500000, rules=march)
    assert default == rules.premiums(base_fen=500000, rules=march, risk_class=1)
    # Only work injury moves with the class: 9,500 - 1,000 more for the employer, nothing for the individual.
    assert class_8.employer_fen - default.employer_fen == 8500
    assert class_8.individual_fen == default.individual_fen
    assert class_8.of("pension") == default.of("pension")
    # Rounded half up on its own: 5,002.50 x 1.9% = 95.0475 -> 95.05; 4,680.00 (floor) x 0.7% = 32.76
    assert injury(rules.premiums(base_fen=500250, rules=march, risk_class=8)) == (9505, 0)
    assert injury(rules.premiums(base_fen=468000, rules=march, risk_class=3)) == (3276, 0)


@pytest.mark.django_db
def test_mid_year_rate_change_of_a_class():
    june = rules.rules_for(region="370100", on=date(2026, 6, 30))
    july = rules.rules_for(region="370100", on=date(2026, 7, 1))
    # Class 1: 0.2% -> 0.4% (10.00 -> 20.00 on 5,000.00); class 8 unchanged at 1.9%.
    assert injury(rules.premiums(base_fen=500000, rules=june, risk_class=1)) == (1000, 0)
    assert injury(rules.premiums(base_fen=500000, rules=july, risk_class=1)) == (2000, 0)
    assert injury(rules.premiums(base_fen=500000, rules=june, risk_class=8)) == (9500, 0)
    assert injury(rules.premiums(base_fen=500000, rules=july, risk_class=8)) == (9500, 0)


@pytest.mark.django_db
def test_flexible_employment_has_no_work_injury_whatever_the_class():
    march = rules.rules_for(region="370100", on=MARCH)
    for risk_class in (1, 8):
        result = rules.premiums(base_fen=500000, rules=march, kind=rules.FLEXIBLE, risk_class=risk_class)
        assert [a.insurance_type for a in result.amounts] == ["pension", "medical"]
        assert injury(result) == (0, 0)
        # 5,000.00 x (20% + 9%)
        assert result.total_fen == 145000


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [0, 9, -1, "3", 3.0, None])
def test_a_class_outside_1_to_8_is_refused(bad):
    march = rules.rules_for(region="370100", on=MARCH)
    with pytest.raises(ValueError):
        rules.premiums(base_fen=500000, rules=march, risk_class=bad)


@pytest.mark.django_db
def test_a_region_without_a_class_table_uses_its_work_injury_row_for_every_class():
    region = Region.objects.create(code="110100", name="示范区")
    for insurance_type, employer in (("pension", "0.16"), ("medical", "0.07"), ("unemployment", "0.005"),
                                     ("work_injury", "0.005")):
        ContributionRate.objects.create(region=region, insurance_type=insurance_type, effective_from=date(2026, 1, 1),
                                        employer_rate=D(employer), individual_rate=D("0"))
    region.bases.create(year=2026, average_wage_fen=800000)
    snapshot = rules.rules_for(region="110100", on=MARCH)
    assert snapshot.work_injury_class_rates == {}
    # 5,000.00 x 0.5% = 25.00 whatever the class
    assert injury(rules.premiums(base_fen=500000, rules=snapshot, risk_class=1)) == (2500, 0)
    assert injury(rules.premiums(base_fen=500000, rules=snapshot, risk_class=8)) == (2500, 0)
    # Once the region has a table, a class missing from it is an error, not a silent fallback.
    WorkInjuryClassRate.objects.create(region=region, risk_class=1, effective_from=date(2026, 1, 1),
                                       employer_rate=D("0.002"))
    snapshot = rules.rules_for(region="110100", on=MARCH)
    assert injury(rules.premiums(base_fen=500000, rules=snapshot, risk_class=1)) == (1000, 0)
    with pytest.raises(rules.RulesNotFound):
        rules.premiums(base_fen=500000, rules=snapshot, risk_class=2)


@pytest.mark.django_db
def test_class_rates_are_validated_and_versioned():
    region = Region.objects.get(code="370100")
    too_high = WorkInjuryClassRate(region=region, risk_class=2, effective_from=date(2027, 1, 1),
                                   employer_rate=D("0.06"))
    with pytest.raises(ValidationError) as error:
        too_high.full_clean()
    assert "employer_rate" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        WorkInjuryClassRate(region=region, risk_class=9, effective_from=date(2027, 1, 1),
                            employer_rate=D("0.01")).full_clean()
    assert "risk_class" in error.value.message_dict
    same_day = WorkInjuryClassRate(region=region, risk_class=2, effective_from=date(2025, 1, 1),
                                   employer_rate=D("0.005"))
    with pytest.raises(ValidationError) as error:
        same_day.full_clean()
    assert "effective_from" in error.value.message_dict
    with transaction.atomic(), pytest.raises(IntegrityError):
        same_day.save()
    with transaction.atomic(), pytest.raises(IntegrityError):
        WorkInjuryClassRate.objects.create(region=region, risk_class=2, effective_from=date(2027, 1, 1),
                                           employer_rate=D("0.06"))
    # A new version closes the previous one the day before it starts; deleting it reopens it.
    later = WorkInjuryClassRate.objects.create(region=region, risk_class=2, effective_from=date(2027, 1, 1),
                                               employer_rate=D("0.005"))
    old = WorkInjuryClassRate.objects.get(region=region, risk_class=2, effective_from=date(2025, 1, 1))
    assert old.effective_to == date(2026, 12, 31)
    later.delete()
    old.refresh_from_db()
    assert old.effective_to is None


@pytest.mark.django_db
def test_the_employers_class_on_a_day():
    region = Region.objects.get(code="370100")
    employer = f.make_organization(org_type=Organization.Type.EMPLOYER, name="示范制造厂")
    assert rules.risk_class_for(employer=employer, region=region, on=MARCH) == (1, False)
    EmployerRiskClass.objects.create(employer=employer, region=region, risk_class=4, effective_from=date(2026, 1, 1))
    EmployerRiskClass.objects.create(employer=employer, region=region, risk_class=7, effective_from=date(2026, 7, 1))
    assert rules.risk_class_for(employer=employer, region=region, on=date(2025, 12, 1)) == (1, False)
    assert rules.risk_class_for(employer=employer, region=region, on=date(2026, 6, 1)) == (4, True)
    assert rules.risk_class_for(employer=employer, region=region, on=date(2026, 7, 1)) == (7, True)
    with pytest.raises(ValidationError):
        EmployerRiskClass(employer=employer, region=region, risk_class=9, effective_from=date(2027, 1, 1)).full_clean()
    with pytest.raises(ValidationError):
        EmployerRiskClass(employer=employer, region=region, risk_class=2, effective_from=date(2026, 7, 1)).full_clean()


# ---- declarations --------------------------------------------------------------------------------

ROWS = [
    LineInput(name="张三", resident_id="110101199003071233", base_fen=800000),    # 8,000.00
    LineInput(name="李四", resident_id="310104198511124567", base_fen=350000),    # floor 4,680.00
    LineInput(name="王五", resident_id="11010519491231002X", base_fen=3000000),   # ceiling 23,400.00
]


def prepare(world, rows=ROWS, period="2026-03"):
    return services.create_declaration(user=world.operator_user, region_code="370100", period=period, rows=rows,
                                       now=timezone.now())


def set_class(world, risk_class, start):
    return EmployerRiskClass.objects.create(employer=world.employer, region=Region.objects.get(code="370100"),
                                            risk_class=risk_class, effective_from=start)


def page(world, declaration):
    client = Client()
    client.force_login(world.operator_user)
    return client.get(reverse("social:declaration-detail", args=[declaration.pk])).content.decode()


def test_a_declaration_uses_the_employers_class(world):
    set_class(world, 4, date(2026, 1, 1))
    declaration = prepare(world)
    assert (declaration.work_injury_class, declaration.work_injury_class_set) == (4, True)
    lines = {line.name: line.work_injury_employer_fen for line in declaration.lines.all()}
    # Class 4 = 0.9%: 8,000.00 -> 72.00; 4,680.00 -> 42.12; 23,400.00 -> 210.60
    assert lines == {"张三": 7200, "李四": 4212, "王五": 21060}
    # At class 1 (0.2%) the employer total was 1,912.00 + 1,118.52 + 5,592.60; work injury moves it alone.
    assert declaration.employer_total_fen == 191200 + 111852 + 559260 - (1600 + 936 + 4680) + (7200 + 4212 + 21060)
    assert declaration.individual_total_fen == 82400 + 48204 + 241020
    text = page(world, declaration)
    assert 'data-testid="risk-class" data-class="4">4 类' in text and 'data-testid="risk-class-default"' not in text
    api = APIClient()
    api.force_authenticate(world.operator_user)
    body = api.get(f"/api/v1/social/declarations/{declaration.pk}/").json()
    assert (body["work_injury_class"], body["work_injury_class_set"]) == (4, True)


def test_with_no_class_set_the_declaration_is_class_1_and_says_so(world):
    declaration = prepare(world, rows=ROWS[:1])
    assert (declaration.work_injury_class, declaration.work_injury_class_set) == (1, False)
    assert declaration.lines.get().work_injury_employer_fen == 1600   # 8,000.00 x 0.2%
    assert 'data-testid="risk-class-default">未设置，默认一类<' in page(world, declaration)


def test_the_employers_class_changes_mid_year(world):
    set_class(world, 4, date(2026, 1, 1))
    set_class(world, 7, date(2026, 7, 1))
    june = prepare(world, rows=ROWS[:1], period="2026-06")
    july = prepare(world, rows=ROWS[:1], period="2026-07")
    # 8,000.00: class 4 at 0.9% = 72.00 in June; class 7 at 1.6% = 128.00 from July
    assert (june.work_injury_class, june.lines.get().work_injury_employer_fen) == (4, 7200)
    assert (july.work_injury_class, july.lines.get().work_injury_employer_fen) == (7, 12800)


def test_lines_added_later_keep_the_class_the_draft_was_made_with(world):
    set_class(world, 4, date(2026, 1, 1))
    declaration = prepare(world, rows=[])
    # The class changes for March after the draft was made: the draft keeps class 4 so its lines agree.
    set_class(world, 8, date(2026, 3, 1))
    declaration = services.add_line(declaration_id=declaration.pk, user=world.operator_user, name="张三",
                                    resident_id="110101199003071233", base_fen=800000, now=timezone.now())
    assert declaration.work_injury_class == 4
    assert declaration.lines.get().work_injury_employer_fen == 7200


def test_a_class_missing_from_the_regions_table_refuses_the_declaration(world):
    set_class(world, 8, date(2026, 1, 1))
    WorkInjuryClassRate.objects.filter(region__code="370100", risk_class=8).delete()
    with pytest.raises(SocialError) as refused:
        prepare(world)
    assert refused.value.code == "social_rules_not_found"
    assert not world.employer.social_declarations.exists()


@pytest.mark.django_db
def test_admin_edits_class_rates_and_employers_classes_with_validation(admin_client):
    region = Region.objects.get(code="370100")
    assert admin_client.get("/admin/social_security/workinjuryclassrate/").status_code == 200
    assert admin_client.get("/admin/social_security/employerriskclass/").status_code == 200
    assert admin_client.get(f"/admin/social_security/region/{region.pk}/change/").status_code == 200
    url = "/admin/social_security/workinjuryclassrate/add/"
    refused = admin_client.post(url, {"region": region.pk, "risk_class": 3, "effective_from": "2027-01-01",
                                      "employer_rate": "0.06"})
    assert refused.status_code == 200 and "errorlist" in refused.content.decode()
    refused = admin_client.post(url, {"region": region.pk, "risk_class": 3, "effective_from": "2025-01-01",
                                      "employer_rate": "0.008"})
    assert "生效期间不能重叠" in refused.content.decode()
    assert not WorkInjuryClassRate.objects.filter(risk_class=3, employer_rate__in=[D("0.06"), D("0.008")]).exists()
    saved = admin_client.post(url, {"region": region.pk, "risk_class": 3, "effective_from": "2026-10-01",
                                    "employer_rate": "0.008"})
    assert saved.status_code == 302
    assert WorkInjuryClassRate.objects.get(region=region, risk_class=3, effective_from=date(2025, 1, 1)).effective_to \
        == date(2026, 9, 30)
    assert rules.rules_for(region="370100", on=date(2026, 10, 1)).work_injury_class_rates[3] == D("0.008")
    employer = f.make_organization(org_type=Organization.Type.EMPLOYER, name="示范化工厂")
    url = "/admin/social_security/employerriskclass/add/"
    refused = admin_client.post(url, {"employer": employer.pk, "region": region.pk, "risk_class": 9,
                                      "effective_from": "2026-01-01"})
    assert refused.status_code == 200 and not EmployerRiskClass.objects.exists()
    assert admin_client.post(url, {"employer": employer.pk, "region": region.pk, "risk_class": 6,
                                   "effective_from": "2026-01-01"}).status_code == 302
    assert rules.risk_class_for(employer=employer, region=region, on=MARCH) == (6, True)
