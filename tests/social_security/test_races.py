"""Integration (PostgreSQL row locks): a declaration paid by two approvers at the same moment is collected once;
corrections of reconciliation cases approved at the same moment never pay back more than the fund holds."""
import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from social_security import reconciliation, services
from social_security.models import Declaration, SocialCaseCorrection, SocialDiscrepancyCase
from social_security.models import DeclarationState as S
from tax.reconciliation.services import ReconciliationError
from tests import factories as f
from tests.concurrency import at_once
from tests.social_security.test_declarations import confirmed
from tests.social_security.test_reconciliation import day  # noqa: F401 (the fixture)
from treasury.access import roles
from treasury.models import Transfer
from treasury.services.ledger import check_ledger

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("needs_postgresql")]


def test_a_declaration_paid_by_two_approvers_at_once_is_collected_once(world, fake_tips):
    declaration = confirmed(world, fake_tips)
    outcomes = at_once(*[lambda user=user: services.pay_declaration(declaration_id=declaration.pk, user=user,
                                                                    now=timezone.now())
                         for user in (world.approver, world.second_approver)])
    refused = [o for o in outcomes if isinstance(o, services.SocialError)]
    assert sum(isinstance(o, Declaration) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code == "not_payable", outcomes
    services.finish_paying_declarations(now=timezone.now())
    declaration.refresh_from_db()
    assert declaration.state == S.PAID and declaration.payment_attempts == 1
    assert Transfer.objects.filter(batch_ref=f"social-{declaration.pk}").count() == 1
    assert world.ecny.admin.balance(wallet_id=world.fund_wallet.wallet_id) == declaration.confirmed_total_fen
    assert check_ledger().problems == []


def test_a_paying_declarations_answer_recorded_twice_at_once_finishes_it_once(world, fake_tips):
    """The sweep and a second sweep (or the notice's task) record the operator's answer at the same moment."""
    declaration = confirmed(world, fake_tips)
    services.pay_declaration(declaration_id=declaration.pk, user=world.approver, now=timezone.now())
    outcomes = at_once(*[lambda: services.finish_payment(declaration_id=declaration.pk, now=timezone.now())] * 2)
    assert all(isinstance(o, Declaration) and o.state == S.PAID for o in outcomes), outcomes
    declaration.refresh_from_db()
    assert declaration.state == S.PAID
    from treasury.trace.models import TraceEvent

    assert TraceEvent.objects.filter(kind="social.declaration.paid", subject_id=str(declaration.pk)).count() == 1
    assert check_ledger().problems == []


def _two_cases_of_one_payment(day):
    """The operator credited the declaration's premium twice and its notice went unacknowledged: two cases of
    one payment, which the fund holds once by our records."""
    total = day.declaration.total_fen
    reconciliation.reconcile_day(check_date=day.date, now=timezone.now(), statement_rows=day.statement() + [
        (day.decl_key, "credit", total, "transfer", day.fund)])
    Declaration.objects.filter(pk=day.declaration.pk).update(payment_notified_at=None)
    reconciliation.reconcile_day(check_date=day.date, now=timezone.now(), statement_rows=day.statement())
    return (SocialDiscrepancyCase.objects.get(request_id=day.decl_key, outcome="duplicate_operator"),
            SocialDiscrepancyCase.objects.get(request_id=day.decl_key, outcome="not_acknowledged"))


def test_refunds_of_one_payment_on_two_cases_approved_at_once_pay_back_what_the_fund_holds_once(day):
    total = day.declaration.total_fen
    duplicate, unacknowledged = _two_cases_of_one_payment(day)
    staff = day.world.tax_staff
    checkers = [f.make_user(role=roles.TAX_STAFF, organization=day.world.authority) for _ in range(2)]
    proposed = [reconciliation.propose_correction(case_id=case.pk, user=staff, kind="refund", amount_fen=total,
                                                  reason="退还重复入账", now=timezone.now())
                for case in (duplicate, unacknowledged)]
    payer = day.declaration.payer_wallet.wallet_id
    before = day.world.ecny.admin.balance(wallet_id=payer)
    outcomes = at_once(*[lambda c=c, u=u: reconciliation.approve_correction(correction_id=c.pk, user=u,
                                                                            now=timezone.now())
                         for c, u in zip(proposed, checkers)])
    refused = [o for o in outcomes if isinstance(o, ReconciliationError)]
    assert sum(isinstance(o, SocialCaseCorrection) for o in outcomes) == 1, outcomes
    assert len(refused) == 1 and refused[0].code == "exceeds_held", outcomes
    assert Transfer.objects.filter(idempotency_key__startswith="socialcorr:").count() == 1
    assert day.world.ecny.admin.balance(wallet_id=payer) == before + total
    assert reconciliation.held_fen(Declaration.objects.get(pk=day.declaration.pk), None) == 0
    assert check_ledger().problems == []


def test_one_correction_approved_by_two_checkers_at_once_moves_its_money_once(day):
    total = day.declaration.total_fen
    duplicate, _ = _two_cases_of_one_payment(day)
    checkers = [f.make_user(role=roles.TAX_STAFF, organization=day.world.authority) for _ in range(2)]
    proposed = reconciliation.propose_correction(case_id=duplicate.pk, user=day.world.tax_staff, kind="refund",
                                                 amount_fen=total, reason="退还重复入账", now=timezone.now())
    payer = day.declaration.payer_wallet.wallet_id
    before = day.world.ecny.admin.balance(wallet_id=payer)
    outcomes = at_once(*[lambda u=u: reconciliation.approve_correction(correction_id=proposed.pk, user=u,
                                                                       now=timezone.now())
                         for u in checkers])
    assert sum(isinstance(o, SocialCaseCorrection) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, TransitionNotAllowed) for o in outcomes) == 1, outcomes  # decided, said as such
    assert Transfer.objects.filter(idempotency_key=f"socialcorr:{proposed.pk}").count() == 1
    assert day.world.ecny.admin.balance(wallet_id=payer) == before + total
    assert check_ledger().problems == []
