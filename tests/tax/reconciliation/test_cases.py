import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from tax.handlers import TaxHandler
from tax.reconciliation import services
from tax.reconciliation.models import CaseState, DiscrepancyCase, Outcome
from tests.tax.reconciliation.conftest import ENTRUST_DATE, check_detail, planted_lines, planted_statement
from treasury.access.errors import AccessDenied


@pytest.fixture
def case(day):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=planted_statement(day))
    return DiscrepancyCase.objects.get(outcome=Outcome.MISSING_OPERATOR)


def test_open_investigating_resolved_with_reason_and_resolver(case, tax):
    services.investigate_case(case_id=case.pk, user=tax.staff, note="asked the operator", now=timezone.now())
    resolved = services.resolve_case(case_id=case.pk, user=tax.staff, reason="operator booked it late, next day",
                                     now=timezone.now())
    assert resolved.state == CaseState.RESOLVED and resolved.resolved_by == tax.staff.username
    assert [h["to"] for h in resolved.history] == [CaseState.INVESTIGATING, CaseState.RESOLVED]
    with pytest.raises(TransitionNotAllowed):
        services.investigate_case(case_id=case.pk, user=tax.staff, now=timezone.now())
    with pytest.raises(TransitionNotAllowed):
        services.resolve_case(case_id=case.pk, user=tax.staff, reason="again", now=timezone.now())


def test_a_reason_is_required(case, tax):
    with pytest.raises(services.ReconciliationError) as error:
        services.resolve_case(case_id=case.pk, user=tax.staff, reason="   ", now=timezone.now())
    assert error.value.code == "reason_required"
    case.refresh_from_db()
    assert case.state == CaseState.OPEN


def test_the_state_cannot_be_assigned(case):
    with pytest.raises(AttributeError):
        case.state = CaseState.RESOLVED


def test_only_staff_of_the_cases_tax_authority_act_on_it(case, tax):
    with pytest.raises(AccessDenied):
        services.investigate_case(case_id=case.pk, user=tax.other_staff, now=timezone.now())
    with pytest.raises(AccessDenied):
        services.resolve_case(case_id=case.pk, user=tax.other_staff, reason="not mine", now=timezone.now())
    case.refresh_from_db()
    assert case.state == CaseState.OPEN
