"""Reconciliation of both halves: an employer's paid declaration and a flexible-employment payment, against the
fund wallet's operator statement and the authority's acknowledgements. Each kind of discrepancy is planted and
found; cases are worked (investigate, resolve with a reason, a correcting transfer by two people); pages, CSV,
PDF and the API are scoped to the staff member's authority; `reconcile_social --date` keeps working."""
from __future__ import annotations

import io

import pypdf
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from social_security import reconciliation, selectors, services
from social_security.flexible import services as flexible
from social_security.flexible.models import Payment, PaymentState
from social_security.models import Declaration, SocialDiscrepancyCase
from social_security.models import DeclarationState as S
from tax import services as tax_services
from tax.reconciliation.services import ReconciliationError
from tests import factories as f
from tests.clients import assert_links_lead_to
from tests.social_security.flexible.conftest import make_individual
from tests.social_security.test_declarations import confirmed
from treasury.access import roles
from treasury.access.errors import MakerCheckerViolation
from treasury.models import Transfer
from treasury.waiting import waiting_for


def now():
    return timezone.now()


class Day:
    """A day with one paid declaration and one paid flexible payment, both notified and acknowledged."""

    def __init__(self, world, fake_tips):
        self.world = world
        self.declaration = confirmed(world, fake_tips)
        services.pay_declaration(declaration_id=self.declaration.pk, user=world.approver, now=now())
        services.finish_paying_declarations(now=now())
        self.declaration.refresh_from_db()
        assert self.declaration.state == S.PAID and self.declaration.payment_notified_at
        self.person = make_individual(ecny=world.ecny, name="李四")
        today = timezone.localdate()
        enrolment = flexible.enrol(user=self.person.user, region_code="370100", base_level=100, frequency="monthly",
                                   wallet_id=self.person.wallet_id, start_month=today.replace(day=1), now=now())
        period = enrolment.periods.get()
        self.payment = flexible.pay(user=self.person.user, enrolment_id=enrolment.pk, period_ids=[period.pk],
                                    now=now())
        self.payment.refresh_from_db()
        assert self.payment.state == PaymentState.PAID and self.payment.notified_at
        self.date = timezone.localdate(self.declaration.transfer.settled_at)
        assert timezone.localdate(self.payment.transfer.settled_at) == self.date
        self.decl_key = self.declaration.transfer.idempotency_key
        self.flex_key = self.payment.transfer.idempotency_key
        self.fund = world.fund_wallet.pk

    def statement(self, **changes):
        """The operator's statement as it should be, with planted changes: {key: amount} or {key: None} to drop."""
        rows = {self.decl_key: self.declaration.total_fen, self.flex_key: self.payment.amount_fen}
        rows.update(changes)
        return [(key, "credit", amount, "transfer", self.fund) for key, amount in rows.items() if amount is not None]

    def outcomes(self, run):
        return dict(run.results.values_list("request_id", "outcome"))


@pytest.fixture
def day(world, fake_tips):
    return Day(world, fake_tips)


def test_both_halves_match_against_the_real_operator_statement(day):
    run = reconciliation.reconcile_day(check_date=day.date, now=now())  # fetched from the sandbox operator
    assert day.outcomes(run) == {day.decl_key: "matched", day.flex_key: "matched"}
    assert (run.matched_count, run.discrepancy_count) == (2, 0)
    day.declaration.refresh_from_db()
    day.payment.refresh_from_db()
    assert day.declaration.state == S.RECONCILED and day.payment.reconciled_at is not None
    flex_result = run.results.get(request_id=day.flex_key)
    assert (flex_result.source, flex_result.document_no, flex_result.tax_authority_id, flex_result.ours_fen) == (
        "flexible", day.payment.payment_no, day.world.authority.pk, day.payment.amount_fen)
    assert not SocialDiscrepancyCase.objects.exists()


@pytest.mark.parametrize("plant, key, outcome", [
    ("duplicate", "flex", "duplicate_operator"),
    ("unknown", None, "missing_ours"),
    ("drop", "decl", "missing_operator"),
    ("drop", "flex", "missing_operator"),
    ("amount", "decl", "amount_mismatch"),
    ("amount", "flex", "amount_mismatch"),
    ("unacknowledged", "decl", "not_acknowledged"),
    ("unacknowledged", "flex", "not_acknowledged"),
])
def test_each_planted_discrepancy_is_found_and_opens_a_case(day, plant, key, outcome):
    key = {"decl": day.decl_key, "flex": day.flex_key, None: "socialflex:payment:999999"}[key]
    rows = day.statement()
    if plant == "duplicate":
        rows.append((key, "credit", day.payment.amount_fen, "transfer", day.fund))
    elif plant == "unknown":
        rows.append((key, "credit", 12345, "transfer", day.fund))
    elif plant == "drop":
        rows = day.statement(**{key: None})
    elif plant == "amount":
        rows = day.statement(**{key: (day.declaration.total_fen if key == day.decl_key else day.payment.amount_fen) - 1})
    elif plant == "unacknowledged":
        Declaration.objects.filter(pk=day.declaration.pk).update(payment_notified_at=None)
        Payment.objects.filter(pk=day.payment.pk).update(notified_at=None)
    run = reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    found = day.outcomes(run)
    assert found[key] == outcome
    others = {k: v for k, v in found.items() if k != key}
    expected_others = "not_acknowledged" if plant == "unacknowledged" else "matched"
    assert set(others.values()) == {expected_others}
    case = SocialDiscrepancyCase.objects.get(request_id=key, outcome=outcome)
    assert case.state == "open" and case.tax_authority_id == day.world.authority.pk and case.check_date == day.date
    assert run.results.get(request_id=key).case_id == case.pk
    # Found again on a re-run: the same case, not a second one.
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    assert SocialDiscrepancyCase.objects.filter(request_id=key, outcome=outcome).count() == 1


def test_other_lines_of_the_fund_wallet_are_not_ours_to_reconcile(day):
    rows = day.statement() + [("payroll:1:1", "credit", 100, "transfer", day.fund),
                              ("tax:13701000000:20261126:1", "credit", 100, "transfer", day.fund)]
    run = reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    assert set(day.outcomes(run)) == {day.decl_key, day.flex_key}


def social_waiting(user) -> dict[str, int]:
    """What waits for the user on the dashboard, of premium reconciliation."""
    return {item.key: item.count for item in waiting_for(user) if item.key.startswith("social_")}


def test_a_case_is_worked_and_a_refund_needs_a_second_person(day, settings):
    rows = day.statement()
    rows.append((day.flex_key, "credit", day.payment.amount_fen, "transfer", day.fund))  # collected twice
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    case = SocialDiscrepancyCase.objects.get(outcome="duplicate_operator")
    staff, other_staff = day.world.tax_staff, f.make_user(role=roles.TAX_STAFF, organization=day.world.authority)
    assert social_waiting(staff) == {"social_cases_open": 1} and social_waiting(day.world.other_tax_staff) == {}
    with pytest.raises(Exception) as denied:
        reconciliation.investigate_case(case_id=case.pk, user=day.world.other_tax_staff, now=now())
    assert type(denied.value).__name__ == "AccessDenied"
    reconciliation.investigate_case(case_id=case.pk, user=staff, note="运营机构重复入账", now=now())
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.propose_correction(case_id=case.pk, user=staff, kind="collect", amount_fen=100, reason="x",
                                          now=now())
    assert refused.value.code == "not_signed"  # a flexible payer is never debited by staff
    correction = reconciliation.propose_correction(case_id=case.pk, user=staff, kind="refund",
                                                   amount_fen=day.payment.amount_fen, reason="退还重复扣款", now=now())
    # the proposer waits for someone else; that person sees the correction waiting (and, listed, that case)
    assert social_waiting(staff) == {} and social_waiting(other_staff) == {"social_corrections_to_approve": 1}
    assert [c.pk for c in selectors.case_list(user=other_staff, correction_proposed=True)] == [case.pk]
    with pytest.raises(ReconciliationError) as pending:
        reconciliation.propose_correction(case_id=case.pk, user=other_staff, kind="refund", amount_fen=1,
                                          reason="again", now=now())
    assert pending.value.code == "correction_pending"
    with pytest.raises(MakerCheckerViolation):
        reconciliation.approve_correction(correction_id=correction.pk, user=staff, now=now())
    assert not Transfer.objects.filter(idempotency_key=f"socialcorr:{correction.pk}").exists()
    approved = reconciliation.approve_correction(correction_id=correction.pk, user=other_staff, now=now())
    transfer = Transfer.objects.get(idempotency_key=f"socialcorr:{correction.pk}")
    assert (transfer.payer_id, transfer.payee_id, transfer.amount_fen) == (
        day.fund, day.payment.wallet_id, day.payment.amount_fen)
    assert approved.transfer_id == transfer.pk
    with pytest.raises(ReconciliationError) as no_reason:
        reconciliation.resolve_case(case_id=case.pk, user=staff, reason=" ", now=now())
    assert no_reason.value.code == "reason_required"
    done = reconciliation.resolve_case(case_id=case.pk, user=staff, reason="已退还 (refunded)", now=now())
    assert done.state == "resolved" and done.correcting_transfer_id == transfer.pk
    assert [h["to"] for h in done.history] == ["investigating", "investigating", "investigating", "resolved"]
    with pytest.raises(TransitionNotAllowed):
        reconciliation.investigate_case(case_id=case.pk, user=staff, now=now())
    with pytest.raises(ReconciliationError):
        reconciliation.propose_correction(case_id=case.pk, user=staff, kind="refund", amount_fen=1, reason="x",
                                          now=now())


def test_a_correction_is_not_approved_once_its_case_is_resolved(day):
    """A case resolved after a refund was proposed was settled without that money: approving it now would pay it
    out all the same, so it is refused; rejecting it, which moves nothing, still closes it off."""
    rows = day.statement()
    rows.append((day.flex_key, "credit", day.payment.amount_fen, "transfer", day.fund))  # collected twice
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    case = SocialDiscrepancyCase.objects.get(outcome="duplicate_operator")
    staff, other_staff = day.world.tax_staff, f.make_user(role=roles.TAX_STAFF, organization=day.world.authority)
    correction = reconciliation.propose_correction(case_id=case.pk, user=staff, kind="refund",
                                                   amount_fen=day.payment.amount_fen, reason="退还重复扣款", now=now())
    assert reconciliation.correction_actions(correction, other_staff) == ["approve", "reject"]
    reconciliation.resolve_case(case_id=case.pk, user=staff, reason="运营机构已自行冲正 (the operator reversed it)",
                                now=now())

    with pytest.raises(ReconciliationError) as refused:
        reconciliation.approve_correction(correction_id=correction.pk, user=other_staff, now=now())
    assert refused.value.code == "invalid_state"
    assert not Transfer.objects.filter(idempotency_key=f"socialcorr:{correction.pk}").exists()
    correction.refresh_from_db()
    assert correction.state == "proposed" and reconciliation.correction_actions(correction, other_staff) == ["reject"]
    rejected = reconciliation.reject_correction(correction_id=correction.pk, user=other_staff, reason="差异已解决",
                                                now=now())
    assert rejected.state == "rejected" and rejected.transfer_id is None


def test_a_collection_needs_the_agreement_in_force_when_proposed_and_when_approved(day):
    """Collecting debits the employer's wallet under the three-party agreement its declaration was paid under:
    not while that agreement is suspended (approving waits for it to resume), never once it is revoked."""
    rows = day.statement(**{day.decl_key: day.declaration.total_fen - 100})  # the operator credited 1 yuan less
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    case = SocialDiscrepancyCase.objects.get(request_id=day.decl_key, outcome="amount_mismatch")
    staff, other_staff = day.world.tax_staff, f.make_user(role=roles.TAX_STAFF, organization=day.world.authority)
    agreement_id = day.declaration.agreement_id
    correction = reconciliation.propose_correction(case_id=case.pk, user=staff, kind="collect", amount_fen=100,
                                                   reason="补收差额", now=now())

    tax_services.suspend_agreement(agreement_id=agreement_id, user=staff, reason="核查 (checking)", now=now())
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.approve_correction(correction_id=correction.pk, user=other_staff, now=now())
    assert refused.value.code == "not_signed"
    assert not Transfer.objects.filter(idempotency_key=f"socialcorr:{correction.pk}").exists()
    tax_services.resume_agreement(agreement_id=agreement_id, user=staff, reason="核查完毕 (checked)", now=now())
    reconciliation.approve_correction(correction_id=correction.pk, user=other_staff, now=now())
    transfer = Transfer.objects.get(idempotency_key=f"socialcorr:{correction.pk}")
    assert (transfer.payer_id, transfer.payee_id, transfer.amount_fen) == (
        day.declaration.payer_wallet_id, day.fund, 100)

    tax_services.revoke_agreement(agreement_id=agreement_id, user=staff,
                                  reason="纳税人解约 (the taxpayer ended the agreement)", now=now())
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.propose_correction(case_id=case.pk, user=staff, kind="collect", amount_fen=100,
                                          reason="再补收", now=now())
    assert refused.value.code == "not_signed"
    assert case.corrections.count() == 1


def test_reconcile_social_command_reports_both_halves(day, capsys):
    Payment.objects.filter(pk=day.payment.pk).update(notified_at=None)
    with pytest.raises(SystemExit) as exit_code:
        call_command("reconcile_social", "--date", day.date.isoformat())
    assert exit_code.value.code == 1
    out = capsys.readouterr().out
    assert "matched 1, discrepancies 1" in out and f"not_acknowledged: flexible {day.payment.payment_no}" in out


def _pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_pages_reports_and_api_are_scoped_to_the_staff_members_authority(day, client):
    rows = day.statement(**{day.flex_key: day.payment.amount_fen + 100})
    run = reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    case = SocialDiscrepancyCase.objects.get()
    client.force_login(day.world.tax_staff)
    listing = client.get(reverse("social:reconciliation")).content.decode()
    assert f'data-run="{run.pk}"' in listing and 'data-testid="discrepancies">1<' in listing
    detail = client.get(reverse("social:reconciliation-run", args=[run.pk])).content.decode()
    assert 'data-testid="count-matched">1<' in detail and 'data-testid="count-amount_mismatch">1<' in detail
    only_flexible = client.get(reverse("social:reconciliation-run", args=[run.pk]), {"source": "flexible"}).content.decode()
    assert f'data-request-id="{day.flex_key}"' in only_flexible and day.decl_key not in only_flexible
    csv_text = client.get(reverse("social:reconciliation-run-csv", args=[run.pk])).content.decode("utf-8-sig")
    assert csv_text.count("\n") == 3 and f"{day.flex_key},{day.payment.payment_no},amount_mismatch" in csv_text
    pdf = client.get(reverse("social:reconciliation-run-pdf", args=[run.pk]))
    assert pdf["Content-Type"] == "application/pdf" and day.payment.payment_no in _pdf_text(pdf.content)
    cases = client.get(reverse("social:reconciliation-cases"), {"source": "flexible", "state": "open"}).content.decode()
    assert f'data-case="{case.pk}"' in cases
    response = client.post(reverse("social:reconciliation-case-investigate", args=[case.pk]), {"note": "查"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.state == "investigating"
    # The API says the same.
    api = client.get(f"/api/v1/social/reconciliation/runs/{run.pk}/results/", {"outcome": "amount_mismatch"}).json()
    assert [r["request_id"] for r in api["results"]] == [day.flex_key]
    assert client.get(f"/api/v1/social/reconciliation/runs/{run.pk}/").json()["totals"]["discrepancies"] == 1
    resolved = client.post(f"/api/v1/social/reconciliation/cases/{case.pk}/resolve/", {"reason": ""},
                           content_type="application/json")
    assert resolved.status_code == 400 and resolved.json()["code"] == "reason_required"
    resolved = client.post(f"/api/v1/social/reconciliation/cases/{case.pk}/resolve/", {"reason": "运营机构更正"},
                           content_type="application/json")
    assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
    assert client.post(f"/api/v1/social/reconciliation/cases/{case.pk}/investigate/", {},
                       content_type="application/json").status_code == 409
    # Another authority's staff see the day but none of its payments, and the case is a 404.
    client.force_login(day.world.other_tax_staff)
    assert 'data-testid="discrepancies">0<' in client.get(reverse("social:reconciliation")).content.decode()
    assert client.get(reverse("social:reconciliation-case", args=[case.pk])).status_code == 404
    assert client.get(f"/api/v1/social/reconciliation/cases/{case.pk}/").status_code == 404
    assert client.get(f"/api/v1/social/reconciliation/runs/{run.pk}/results/").json()["results"] == []
    # Auditors read everything and act on nothing; employers see nothing here.
    auditor = f.make_user(role=roles.AUDITOR)
    client.force_login(auditor)
    assert client.get(reverse("social:reconciliation-case", args=[case.pk])).status_code == 200
    assert client.post("/api/v1/social/reconciliation/runs/", {"check_date": day.date.isoformat()},
                       content_type="application/json").status_code == 403
    client.force_login(day.world.operator_user)
    assert client.get(reverse("social:reconciliation")).status_code == 403
    assert client.get("/api/v1/social/reconciliation/runs/").status_code == 403


def _staff_pair(day):
    return day.world.tax_staff, f.make_user(role=roles.TAX_STAFF, organization=day.world.authority)


def test_a_paid_premium_returned_by_the_operator_the_same_day_is_a_mismatch_of_the_declaration(day):
    """The fund's credit came back that day (returned): the statement nets to nothing while the declaration says
    paid. Found as an amount mismatch of that declaration (not as a credit of nobody's), so staff can collect it
    under the agreement; nothing can be refunded, as the fund holds nothing for it."""
    from treasury.services.transfers import refresh_transfers

    day.world.ecny.admin.return_transfer(request_id=day.decl_key, reason="基金账户状态异常")
    refresh_transfers(transfer_ids=[day.declaration.transfer_id], now=now())
    run = reconciliation.reconcile_day(check_date=day.date, now=now())  # the real operator statement
    result = run.results.get(request_id=day.decl_key)
    assert (result.outcome, result.declaration_id, result.ours_fen, result.expected_fen, result.operator_fen) == (
        "amount_mismatch", day.declaration.pk, 0, day.declaration.total_fen, 0)
    assert run.results.get(request_id=day.flex_key).outcome == "matched"
    day.declaration.refresh_from_db()
    assert day.declaration.state == S.PAID  # not reconciled
    case = SocialDiscrepancyCase.objects.get(request_id=day.decl_key)
    assert case.document_no == day.declaration.declaration_no
    staff, other_staff = _staff_pair(day)
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.propose_correction(case_id=case.pk, user=staff, kind="refund", amount_fen=1, reason="x",
                                          now=now())
    assert refused.value.code == "exceeds_held"
    correction = reconciliation.propose_correction(case_id=case.pk, user=staff, kind="collect",
                                                   amount_fen=day.declaration.total_fen, reason="补收退回的保费",
                                                   now=now())
    reconciliation.approve_correction(correction_id=correction.pk, user=other_staff, now=now())
    transfer = Transfer.objects.get(idempotency_key=f"socialcorr:{correction.pk}")
    assert (transfer.payer_id, transfer.payee_id, transfer.amount_fen) == (
        day.declaration.payer_wallet_id, day.fund, day.declaration.total_fen)


def test_a_reversal_on_a_later_day_is_that_days_difference_and_the_paying_day_still_matches(day):
    """Reversed the next day under `<key>:reversal`: the paying day matched as it stood; the next day the
    operator's debit and ours agree, but the fund no longer holds the confirmed premium: a mismatch of that
    declaration on the day of the reversal."""
    import datetime as dt

    from treasury.services.transfers import reverse_transfer

    tomorrow = now() + dt.timedelta(days=1)
    reverse_transfer(transfer_id=day.declaration.transfer_id, reason="重复缴费", actor="ops", now=tomorrow)
    run = reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=day.statement())
    assert day.outcomes(run) == {day.decl_key: "matched", day.flex_key: "matched"}
    next_day = timezone.localdate(tomorrow)
    rows = [(f"{day.decl_key}:reversal", "debit", day.declaration.total_fen, "reversal", day.fund)]
    run = reconciliation.reconcile_day(check_date=next_day, now=tomorrow, statement_rows=rows)
    result = run.results.get()
    assert (result.request_id, result.outcome, result.declaration_id, result.ours_fen, result.expected_fen,
            result.operator_fen) == (day.decl_key, "amount_mismatch", day.declaration.pk,
                                     -day.declaration.total_fen, 0, -day.declaration.total_fen)
    case = SocialDiscrepancyCase.objects.get(request_id=day.decl_key)
    assert case.check_date == next_day and case.document_no == day.declaration.declaration_no


def test_refunds_never_pay_back_more_than_the_fund_holds_for_the_payment(day):
    """Two cases of the same declaration (the operator credited it twice; its notice was not acknowledged): the
    fund holds the premium once by our records, so refunds of it add up to that at most, whichever case they
    are proposed on and in whatever order they are approved."""
    total = day.declaration.total_fen
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=day.statement() + [
        (day.decl_key, "credit", total, "transfer", day.fund)])
    Declaration.objects.filter(pk=day.declaration.pk).update(payment_notified_at=None)
    reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=day.statement())
    duplicate = SocialDiscrepancyCase.objects.get(request_id=day.decl_key, outcome="duplicate_operator")
    unacknowledged = SocialDiscrepancyCase.objects.get(request_id=day.decl_key, outcome="not_acknowledged")
    staff, other_staff = _staff_pair(day)
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.propose_correction(case_id=duplicate.pk, user=staff, kind="refund", amount_fen=total + 1,
                                          reason="x", now=now())
    assert refused.value.code == "exceeds_held"
    first = reconciliation.propose_correction(case_id=duplicate.pk, user=staff, kind="refund", amount_fen=total,
                                              reason="退还重复入账", now=now())
    second = reconciliation.propose_correction(case_id=unacknowledged.pk, user=staff, kind="refund",
                                               amount_fen=total, reason="再退一次", now=now())
    reconciliation.approve_correction(correction_id=first.pk, user=other_staff, now=now())
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.approve_correction(correction_id=second.pk, user=other_staff, now=now())
    assert refused.value.code == "exceeds_held"
    # The first approved again (a second checker a moment later) is refused as decided, not as too much.
    with pytest.raises(TransitionNotAllowed):
        reconciliation.approve_correction(correction_id=first.pk, user=f.make_user(
            role=roles.TAX_STAFF, organization=day.world.authority), now=now())
    with pytest.raises(ReconciliationError) as refused:  # nor on the first case again
        reconciliation.propose_correction(case_id=duplicate.pk, user=staff, kind="refund", amount_fen=1,
                                          reason="x", now=now())
    assert refused.value.code == "exceeds_held"
    assert Transfer.objects.filter(idempotency_key__startswith="socialcorr:").count() == 1
    assert reconciliation.held_fen(Declaration.objects.get(pk=day.declaration.pk), None) == 0


def test_a_correction_amount_beyond_any_transfer_is_refused_not_a_crash(day, client):
    reconciliation.reconcile_day(check_date=day.date, now=now(),
                                 statement_rows=day.statement(**{day.decl_key: day.declaration.total_fen - 1}))
    case = SocialDiscrepancyCase.objects.get(request_id=day.decl_key)
    client.force_login(day.world.tax_staff)
    response = client.post(f"/api/v1/social/reconciliation/cases/{case.pk}/corrections/",
                           {"kind": "collect", "amount_fen": 10**20, "reason": "x"}, content_type="application/json")
    assert response.status_code == 400
    with pytest.raises(ReconciliationError) as refused:
        reconciliation.propose_correction(case_id=case.pk, user=day.world.tax_staff, kind="collect",
                                          amount_fen=10**20, reason="x", now=now())
    assert refused.value.code == "invalid_amount"
    assert not case.corrections.exists()


def test_a_flexible_payment_whose_money_came_back_before_it_finished_is_owed_again_and_matches(world, fake_tips,
                                                                                                settings):
    """The answer was lost and the money came back (returned) before recovery asked: the payment fails and its
    month is due again (a payment left paying would block every later month), the person pays again once, and
    the day reconciles: the first attempt went in and out, the second stands."""
    from adapters.ecny.client import get_operator_client
    from treasury.services.transfers import recover_unconfirmed_transfers

    person = make_individual(ecny=world.ecny, name="李四")
    today = timezone.localdate()
    enrolment = flexible.enrol(user=person.user, region_code="370100", base_level=100, frequency="monthly",
                               wallet_id=person.wallet_id, start_month=today.replace(day=1), now=now())
    period = enrolment.periods.get()
    before = world.ecny.admin.balance(wallet_id=person.wallet_id)
    settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 0.5
    get_operator_client.cache_clear()
    world.ecny.admin.set_fault("timeout_after_apply", count=1, sleep_seconds=1.5)
    first = flexible.pay(user=person.user, enrolment_id=enrolment.pk, period_ids=[period.pk], now=now())
    assert first.state == PaymentState.PAYING
    world.ecny.admin.return_transfer(request_id=first.transfer.idempotency_key, reason="收款账户状态异常")
    recover_unconfirmed_transfers(now=now(), older_than_seconds=0)
    assert flexible.finish_paying_payments(now=now()) == 1
    first.refresh_from_db()
    period.refresh_from_db()
    assert first.state == PaymentState.FAILED and "退回" in first.failure_reason
    assert period.state == "due" and period.payment is None
    second = flexible.pay(user=person.user, enrolment_id=enrolment.pk, period_ids=[period.pk], now=now())
    assert second.state == PaymentState.PAID and second.pk != first.pk
    assert world.ecny.admin.balance(wallet_id=person.wallet_id) == before - second.amount_fen
    run = reconciliation.reconcile_day(check_date=today, now=now())
    outcomes = dict(run.results.values_list("request_id", "outcome"))
    assert outcomes == {first.transfer.idempotency_key: "matched", second.transfer.idempotency_key: "matched"}
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.reconciled_at is None and second.reconciled_at is not None


def test_a_refused_proposal_on_the_case_page_keeps_what_was_typed_and_names_the_field(day, client):
    """As on the tax case page: the proposal comes back with what was typed and the problem at its field."""
    reconciliation.reconcile_day(check_date=day.date, now=now(),
                                 statement_rows=day.statement(**{day.decl_key: day.declaration.total_fen - 1}))
    case = SocialDiscrepancyCase.objects.get(request_id=day.decl_key)
    client.force_login(day.world.tax_staff)
    url = reverse("social:reconciliation-correction-propose", args=[case.pk])
    response = client.post(url, {"kind": "collect", "amount": "0.0x", "reason": "少收一分"})
    assert response.status_code == 400
    assert list(response.context["correction_form"].errors) == ["amount"]
    html = response.content.decode()
    assert 'value="0.0x"' in html and "少收一分" in html
    assert not case.corrections.exists()
    assert_links_lead_to(client, response, reverse("social:reconciliation-case", args=[case.pk]))
