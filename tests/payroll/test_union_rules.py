"""The union's rules (dues rate and base, funds rate, grassroots share): set by the union's own operators
and approvers on a page or by the API, checked field by field, each change a trace event; the payroll
run and the monthly call use them."""
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from payroll import union
from payroll.models import UnionSettings
from tests import factories as f
from tests.payroll.helpers import staff
from tests.payroll.test_pages_api import api_as, logged_in
from tests.payroll.test_union import members_for
from treasury.access import roles
from treasury.access.errors import AccessDenied
from treasury.trace.models import TraceEvent

pytestmark = pytest.mark.django_db(transaction=True)


def rules(dues="0.5", base=("basic_wage",), funds="2", share="60", in_payroll=True):
    return union.UnionRules(dues_rate_percent=Decimal(dues), dues_base_components=tuple(base),
                            funds_rate_percent=Decimal(funds), grassroots_share_percent=Decimal(share),
                            dues_in_payroll=in_payroll)


@pytest.fixture
def union_staff(grassroots):
    return f.make_user(role=roles.EMPLOYER_APPROVER, organization=grassroots.union)


def test_union_staff_change_the_rules_and_the_change_is_traced(employer, grassroots, union_staff):
    union.change_rules(union_id=grassroots.pk, user=union_staff, now=timezone.now(),
                       rules=rules(dues="1", base=("basic_wage", "allowances"), share="70.5", in_payroll=False))
    grassroots.refresh_from_db()
    assert (grassroots.dues_rate_bp, grassroots.base_components, grassroots.funds_rate_bp,
            grassroots.grassroots_share_bp, grassroots.dues_in_payroll) == (
        100, ["basic_wage", "allowances"], 200, 7050, False)
    event = TraceEvent.objects.get(stream_key=f"union-{grassroots.pk}-rules")
    assert event.kind == "payroll.union.rules_changed" and event.actor == union_staff.username
    assert event.data == {"dues_rate_bp": [50, 100], "dues_base_components": [["basic_wage"], ["basic_wage", "allowances"]],
                          "grassroots_share_bp": [6000, 7050], "dues_in_payroll": [True, False]}
    # The same rules again: nothing changes, nothing is traced.
    union.change_rules(union_id=grassroots.pk, user=union_staff, now=timezone.now(),
                       rules=rules(dues="1.00", base=("allowances", "basic_wage"), share="70.50", in_payroll=False))
    assert TraceEvent.objects.filter(stream_key=f"union-{grassroots.pk}-rules").count() == 1


def test_the_monthly_call_uses_the_new_rate_to_the_fen(employer, grassroots, union_staff):
    rows = staff(employer, 1)
    member, = members_for(grassroots, rows)
    member.dues_base_fen = 876_543  # 8,760 yuan counted
    member.save()
    union.change_rules(union_id=grassroots.pk, user=union_staff, now=timezone.now(), rules=rules(dues="0.15"))
    call, = union.issue_dues_call(union_id=grassroots.pk, period="2025-07", actor="u", now=timezone.now())
    assert call.amount_fen == 1_314  # 8,760 x 0.15% = 13.14


@pytest.mark.parametrize("changes,fields", [
    (dict(dues="0.005"), {"dues_rate_bp"}),  # a third decimal
    (dict(dues="0"), {"dues_rate_bp"}),
    (dict(dues="2.01", funds="2.5"), {"dues_rate_bp", "funds_rate_bp"}),
    (dict(share="100.01"), {"grassroots_share_bp"}),
    (dict(share="-1"), {"grassroots_share_bp"}),
    (dict(base=()), {"dues_base_components"}),
    (dict(base=("basic_wage", "gross")), {"dues_base_components"}),
])
def test_rules_out_of_bounds_are_refused_field_by_field(employer, grassroots, union_staff, changes, fields):
    with pytest.raises(union.RulesRefused) as refused:
        union.change_rules(union_id=grassroots.pk, user=union_staff, now=timezone.now(), rules=rules(**changes))
    assert set(refused.value.problems) == fields
    assert all("(" in message for message in refused.value.problems.values())  # 中文 (English)
    grassroots.refresh_from_db()
    assert (grassroots.dues_rate_bp, grassroots.grassroots_share_bp) == (50, 6000)


def test_share_bounds_are_allowed(employer, grassroots, union_staff):
    for share, bp in (("0", 0), ("100", 10000)):
        union.change_rules(union_id=grassroots.pk, user=union_staff, now=timezone.now(), rules=rules(share=share))
        assert UnionSettings.objects.get(pk=grassroots.pk).grassroots_share_bp == bp


def test_only_the_unions_own_staff_change_the_rules(employer, grassroots):
    auditor = f.make_user(role=roles.AUDITOR)
    union_auditor = f.make_user(role=roles.AUDITOR, organization=grassroots.union)
    for user in (employer.operator_user, employer.approver, auditor, union_auditor):
        with pytest.raises(AccessDenied):
            union.change_rules(union_id=grassroots.pk, user=user, now=timezone.now(), rules=rules(dues="1"))
    assert UnionSettings.objects.get(pk=grassroots.pk).dues_rate_bp == 50


def test_rules_page(employer, grassroots, union_staff):
    url = reverse("payroll:union-rules", args=[grassroots.pk])
    page = logged_in(union_staff)
    assert page.get(url).status_code == 200
    form = {"dues_rate_percent": "0.8", "dues_base_components": ["basic_wage", "bonus"], "funds_rate_percent": "2",
            "grassroots_share_percent": "55", "dues_in_payroll": "on"}
    assert page.post(url, form).status_code == 302
    grassroots.refresh_from_db()
    assert (grassroots.dues_rate_bp, grassroots.base_components, grassroots.grassroots_share_bp) == (
        80, ["basic_wage", "bonus"], 5500)
    refused = page.post(url, {**form, "dues_rate_percent": "5"})
    assert refused.status_code == 400 and refused.context["form"].errors["dues_rate_percent"]
    # The employer's users read the rules but do not change them; another employer's users see no union.
    assert logged_in(employer.approver).get(url).status_code == 200
    assert logged_in(employer.operator_user).post(url, form).status_code == 403
    stranger = f.make_user(role=roles.EMPLOYER_OPERATOR, organization=f.make_organization())
    assert logged_in(stranger).get(url).status_code == 404


def test_rules_by_api(employer, grassroots, union_staff):
    url = f"/api/v1/payroll/unions/{grassroots.pk}/rules/"
    body = {"dues_rate_percent": "0.6", "dues_base_components": ["basic_wage"], "funds_rate_percent": "2",
            "grassroots_share_percent": "62.5", "dues_in_payroll": True}
    response = api_as(union_staff).put(url, body, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["dues_rate_percent"], response.json()["grassroots_share_percent"]) == ("0.6", "62.5")
    bad = api_as(union_staff).put(url, {**body, "grassroots_share_percent": "120", "dues_rate_percent": "x"},
                                  format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "rules_invalid"
    assert set(bad.json()["problems"]) == {"grassroots_share_bp", "dues_rate_bp"}
    assert api_as(employer.approver).put(url, body, format="json").status_code == 403
    assert UnionSettings.objects.get(pk=grassroots.pk).dues_rate_bp == 60
