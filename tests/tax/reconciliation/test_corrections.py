"""Corrections of discrepancy cases: a proper transfer through the transfer core, proposed by one tax staff
member and approved by another, linked to the case and traced; nothing is edited."""
import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from tax.handlers import TaxHandler
from tax.models import TaxDeduction
from tax.reconciliation import corrections, services
from tax.reconciliation.models import CaseCorrection, CorrectionState, DiscrepancyCase, Outcome
from tests import factories as f
from tests.clients import assert_links_lead_to
from tests.tax.reconciliation.conftest import ENTRUST_DATE, check_detail, planted_lines, planted_statement
from treasury.access import roles
from treasury.access.errors import AccessDenied, MakerCheckerViolation
from treasury.models import Transfer, TransferState
from treasury.services.ledger import check_ledger
from treasury.trace.models import TraceEvent


@pytest.fixture
def cases(day, tax):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))
    services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=planted_statement(day))
    tax.checker = f.make_user(role=roles.TAX_STAFF, organization=tax.authority)
    return {c.outcome: c for c in DiscrepancyCase.objects.all()}


def test_a_shortfall_is_collected_under_the_agreement_after_a_second_persons_approval(cases, tax, day):
    case = cases[Outcome.AMOUNT_MISMATCH]  # the tax system holds 200.01, we debited 200.00
    deduction = day["amount"]
    payer_before = tax.balance(deduction.pay_acct)
    treasury_before = tax.balance(tax.treasury_wallet.wallet_id)
    transfers_before = Transfer.objects.count()

    proposed = corrections.propose_correction(case_id=case.pk, user=tax.staff, kind="collect", amount_fen=1,
                                              reason="税务系统税票金额200.01 (the voucher says 200.01)",
                                              now=timezone.now())
    assert proposed.state == CorrectionState.PROPOSED and Transfer.objects.count() == transfers_before
    assert (proposed.payer.wallet_id, proposed.payee_id) == (deduction.pay_acct, tax.treasury_wallet.pk)
    with pytest.raises(MakerCheckerViolation):
        corrections.approve_correction(correction_id=proposed.pk, user=tax.staff, now=timezone.now())
    with pytest.raises(AccessDenied):
        corrections.approve_correction(correction_id=proposed.pk, user=tax.other_staff, now=timezone.now())

    approved = corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())
    transfer = Transfer.objects.get(pk=approved.transfer_id)
    assert transfer.state == TransferState.SETTLED and transfer.amount_fen == 1  # submitted after commit (eager)
    assert tax.balance(deduction.pay_acct) == payer_before - 1
    assert tax.balance(tax.treasury_wallet.wallet_id) == treasury_before + 1
    case.refresh_from_db()
    assert case.correcting_transfer_id == transfer.pk
    assert [h["note"][:4] for h in case.history] == ["提出更正", "批准更正"]
    kinds = list(TraceEvent.objects.filter(stream_key=f"tax-recon-case-{case.pk}").order_by("seq")
                 .values_list("kind", flat=True))
    assert kinds == ["tax.reconciliation.correction.proposed", "tax.reconciliation.correction.approved",
                     "tax.reconciliation.correction.entered"]  # entered when the transfer settled
    assert TaxDeduction.objects.get(pk=deduction.pk).amount_fen == 200_00  # the record itself is never edited
    with pytest.raises(TransitionNotAllowed):
        corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())
    services.resolve_case(case_id=case.pk, user=tax.checker, reason="补收 1 分 (collected 1 fen)", now=timezone.now())
    assert check_ledger().problems == []


def test_an_over_debit_is_returned_from_the_treasury_and_a_rejected_correction_moves_nothing(cases, tax, day):
    case = cases[Outcome.MISSING_TAX]  # we debited 300.00 the tax system does not hold
    payer = day["dropped"].pay_acct
    before = tax.balance(payer)
    first = corrections.propose_correction(case_id=case.pk, user=tax.staff, kind="refund", amount_fen=300_00,
                                           reason="税务系统无此税票 (no such voucher)", now=timezone.now())
    with pytest.raises(services.ReconciliationError) as pending:  # one waits for approval at a time
        corrections.propose_correction(case_id=case.pk, user=tax.checker, kind="refund", amount_fen=1, reason="x",
                                       now=timezone.now())
    assert pending.value.code == "correction_pending"
    with pytest.raises(services.ReconciliationError):
        corrections.reject_correction(correction_id=first.pk, user=tax.checker, reason=" ", now=timezone.now())
    corrections.reject_correction(correction_id=first.pk, user=tax.checker, reason="先核实 (check first)",
                                  now=timezone.now())
    assert tax.balance(payer) == before and CaseCorrection.objects.get(pk=first.pk).transfer_id is None

    second = corrections.propose_correction(case_id=case.pk, user=tax.checker, kind="refund", amount_fen=300_00,
                                            reason="核实无误 (checked)", now=timezone.now())
    approved = corrections.approve_correction(correction_id=second.pk, user=tax.staff, now=timezone.now())
    assert tax.balance(payer) == before + 300_00
    transfer = Transfer.objects.get(pk=approved.transfer_id)
    assert (transfer.payer_id, transfer.state) == (tax.treasury_wallet.pk, TransferState.SETTLED)
    assert check_ledger().problems == []
    # Approved again (a second checker a moment later): refused as decided, not as a refund exceeding what is held.
    with pytest.raises(TransitionNotAllowed):
        corrections.approve_correction(correction_id=second.pk, user=f.make_user(
            role=roles.TAX_STAFF, organization=tax.authority), now=timezone.now())
    with pytest.raises(services.ReconciliationError) as twice:  # the treasury holds nothing more of that serial
        corrections.propose_correction(case_id=case.pk, user=tax.checker, kind="refund", amount_fen=1, reason="again",
                                       now=timezone.now())
    assert twice.value.code == "exceeds_held" and tax.balance(payer) == before + 300_00


def test_what_cannot_be_corrected_by_a_transfer_is_refused(cases, tax):
    def propose(case, **kwargs):
        with pytest.raises(services.ReconciliationError) as error:
            corrections.propose_correction(case_id=case.pk, user=tax.staff, now=timezone.now(),
                                           **{"kind": "refund", "amount_fen": 1, "reason": "r", **kwargs})
        return error.value.code

    assert propose(cases[Outcome.MISSING_OURS]) == "no_deduction"  # the unknown serial: no deduction of ours
    assert propose(cases[Outcome.MISSING_TAX], amount_fen=0) == "invalid_amount"
    assert propose(cases[Outcome.MISSING_TAX], amount_fen=10**19) == "invalid_amount"  # beyond any TIPS amount
    assert propose(cases[Outcome.MISSING_TAX], amount_fen=300_01) == "exceeds_held"  # 300.00 was debited
    assert propose(cases[Outcome.MISSING_TAX], reason="") == "reason_required"
    assert propose(cases[Outcome.MISSING_TAX], kind="gift") == "invalid_kind"
    with pytest.raises(AccessDenied):
        corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.other_staff, kind="refund",
                                       amount_fen=1, reason="r", now=timezone.now())
    assert not CaseCorrection.objects.exists()


def test_the_case_page_and_the_api_propose_approve_and_reject(cases, tax, day):
    from django.test import Client
    from rest_framework.test import APIClient

    case = cases[Outcome.MISSING_TAX]
    maker, checker = Client(), Client()
    maker.force_login(tax.staff)
    checker.force_login(tax.checker)
    page = f"/tax/reconciliation/cases/{case.pk}/"
    assert 'data-testid="correction-form"' in maker.get(page).content.decode()
    response = maker.post(f"{page}corrections/", {"kind": "refund", "amount": "300.00", "reason": "多扣 (over-debit)"},
                          follow=True)
    assert "待另一位税务人员审批" in response.content.decode()
    correction = CaseCorrection.objects.get()
    assert correction.amount_fen == 300_00
    assert 'data-action="approve-correction"' not in maker.get(page).content.decode()  # not the maker's to approve
    assert 'data-action="approve-correction"' in checker.get(page).content.decode()
    maker.post(f"{page}corrections/{correction.pk}/approve/")
    assert CaseCorrection.objects.get().state == CorrectionState.PROPOSED
    before = tax.balance(day["dropped"].pay_acct)
    checker.post(f"{page}corrections/{correction.pk}/approve/")
    correction.refresh_from_db()
    assert correction.state == CorrectionState.APPROVED and tax.balance(day["dropped"].pay_acct) == before + 300_00

    api = APIClient()
    api.force_authenticate(tax.staff)
    url = f"/api/v1/tax/reconciliation/cases/{cases[Outcome.AMOUNT_MISMATCH].pk}"
    refused = api.post(f"{url}/corrections/", {"kind": "collect", "amount_fen": 0, "reason": "r"}, format="json")
    assert refused.status_code == 400
    body = api.post(f"{url}/corrections/", {"kind": "collect", "amount_fen": 1, "reason": "少扣 1 分"},
                    format="json").json()
    (proposed,) = body["corrections"]
    assert proposed["state"] == "proposed" and proposed["available_actions"] == ["reject"]
    assert "*" in proposed["payer"]  # wallets masked
    own = api.post(f"{url}/corrections/{proposed['id']}/approve/", format="json")
    assert (own.status_code, own.json()["code"]) == (403, "maker_checker")
    api.force_authenticate(tax.checker)
    assert api.post(f"{url}/corrections/{proposed['id']}/reject/", {}, format="json").json()["code"] == "reason_required"
    rejected = api.post(f"{url}/corrections/{proposed['id']}/reject/", {"reason": "核实后无需 (not needed)"},
                        format="json")
    assert rejected.status_code == 200 and rejected.json()["corrections"][0]["state"] == "rejected"
    assert api.post(f"{url}/corrections/{proposed['id']}/approve/", format="json").status_code == 409
    api.force_authenticate(tax.other_staff)
    assert api.post(f"{url}/corrections/", {"kind": "collect", "amount_fen": 1, "reason": "x"},
                    format="json").status_code == 404


def test_a_rerun_counts_settled_corrections_against_the_serial_of_their_case(cases, tax, day):
    """The correcting transfer (`taxcorr:<id>`) belongs to its case's serial: on our side (what we hold for the
    serial) and in the operator's statement; the shortfall collected matches, the over-debit returned in full
    is consistent (nothing held, nothing net, not listed)."""
    from tax.reconciliation.models import ReconciliationResult

    for outcome, kind, amount_fen in [(Outcome.AMOUNT_MISMATCH, "collect", 1), (Outcome.MISSING_TAX, "refund", 300_00)]:
        proposed = corrections.propose_correction(case_id=cases[outcome].pk, user=tax.staff, kind=kind,
                                                  amount_fen=amount_fen, reason="核实 (checked)", now=timezone.now())
        corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(), statement_rows=planted_statement(day))
    results = {r.tra_no: r for r in ReconciliationResult.objects.filter(run=run)}
    assert day["amount"].tra_no not in results  # matched: 200.01 at the tax system, held by us, net at the operator
    refunded = results[day["dropped"].tra_no]
    assert (refunded.outcome, refunded.ours_amount_fen, refunded.operator_amount_fen) == (Outcome.BOTH_FAILED, 0, 0)
    assert run.matched_count == 3 and run.discrepancy_count == 5
    assert run.totals[Outcome.MATCHED] == {"count": 3, "tax_fen": 350_01, "ours_fen": 350_01, "operator_fen": 350_01}


def test_a_correction_of_a_case_resolved_meanwhile_is_not_approved(cases, tax, day):
    case = cases[Outcome.AMOUNT_MISMATCH]
    proposed = corrections.propose_correction(case_id=case.pk, user=tax.staff, kind="collect", amount_fen=1,
                                              reason="少扣 1 分 (1 fen short)", now=timezone.now())
    services.resolve_case(case_id=case.pk, user=tax.staff, reason="已线下处理 (settled otherwise)", now=timezone.now())
    before, transfers = tax.balance(day["amount"].pay_acct), Transfer.objects.count()
    with pytest.raises(services.ReconciliationError) as refused:
        corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())
    assert refused.value.code == "invalid_state"
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(tax.checker)
    response = api.post(f"/api/v1/tax/reconciliation/cases/{case.pk}/corrections/{proposed.pk}/approve/", format="json")
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    assert tax.balance(day["amount"].pay_acct) == before and Transfer.objects.count() == transfers
    assert CaseCorrection.objects.get(pk=proposed.pk).state == CorrectionState.PROPOSED


def test_what_held_at_the_proposal_is_checked_again_at_the_approval(cases, tax, day):
    """Between the maker and the checker the agreement may be revoked, or the debit reversed at the tax system's
    request (1021): the approval then moves nothing."""
    from adapters.tips.interface import Reversal
    from tax import services as tax_services
    from tests.tax.helpers import head

    collect = corrections.propose_correction(case_id=cases[Outcome.AMOUNT_MISMATCH].pk, user=tax.staff, kind="collect",
                                             amount_fen=1, reason="少扣 1 分 (1 fen short)", now=timezone.now())
    refund = corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.staff, kind="refund",
                                            amount_fen=300_00, reason="多扣 (over-debit)", now=timezone.now())
    tax_services.revoke_agreement(agreement_id=day["amount"].agreement_id, user=tax.staff, reason="taxpayer withdrew",
                                  now=timezone.now())
    dropped = day["dropped"]
    tax.ecny.admin.fund(wallet_id=tax.treasury_wallet.wallet_id, amount_fen=10_000_00)
    reply = TaxHandler().reverse_deduction(Reversal(
        head=head("1021"), tax_org_code=dropped.tax_org_code, entrust_date=ENTRUST_DATE, cancel_no="00000001",
        ori_entrust_date=dropped.entrust_date, ori_tra_no=dropped.tra_no, cancel_reason="wrong voucher"))
    assert reply.cancel_answer == "0"  # the 300.00 went back to the taxpayer once
    balances = (tax.balance(day["amount"].pay_acct), tax.balance(dropped.pay_acct))
    transfers = Transfer.objects.count()

    for correction, code in ((collect, "not_signed"), (refund, "exceeds_held")):
        with pytest.raises(services.ReconciliationError) as refused:
            corrections.approve_correction(correction_id=correction.pk, user=tax.checker, now=timezone.now())
        assert refused.value.code == code
    assert (tax.balance(day["amount"].pay_acct), tax.balance(dropped.pay_acct)) == balances
    assert Transfer.objects.count() == transfers
    assert set(CaseCorrection.objects.values_list("state", flat=True)) == {CorrectionState.PROPOSED}


def test_a_debit_a_correction_refunded_is_not_reversed_whole(cases, tax, day):
    """The other order: once a correction paid money of a deduction back, the tax system's 1021 for it is refused
    (reversing the whole debit would pay that money back twice)."""
    from adapters.tips.interface import Reversal
    from tests.tax.helpers import head

    dropped = day["dropped"]
    refund = corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.staff, kind="refund",
                                            amount_fen=100_00, reason="部分多扣 (part over-debited)", now=timezone.now())
    corrections.approve_correction(correction_id=refund.pk, user=tax.checker, now=timezone.now())
    before = tax.balance(dropped.pay_acct)
    reply = TaxHandler().reverse_deduction(Reversal(
        head=head("1021"), tax_org_code=dropped.tax_org_code, entrust_date=ENTRUST_DATE, cancel_no="00000002",
        ori_entrust_date=dropped.entrust_date, ori_tra_no=dropped.tra_no, cancel_reason="wrong voucher"))
    assert reply.cancel_answer == "1" and "对账更正" in reply.add_word
    assert tax.balance(dropped.pay_acct) == before
    assert TaxDeduction.objects.get(pk=dropped.pk).state == "succeeded"


def test_a_refund_waits_while_a_reversal_of_the_debit_has_no_answer(cases, tax, day, monkeypatch):
    """A 1021 asks the operator to give the debit back; its answer is lost (the operator did reverse it). Until the
    reversal is recorded the debit may be on its way back, so a refund correction of it is not approved: the
    taxpayer is not paid back twice, whichever comes first. A reversal the operator refused leaves the debit with
    the treasury, and a refund may then be approved."""
    from adapters.tips.interface import Reversal
    from tests.tax.helpers import head
    from treasury.errors import TransferNotReversible
    from treasury.services import transfers as transfer_services

    dropped = day["dropped"]
    tax.ecny.admin.fund(wallet_id=tax.treasury_wallet.wallet_id, amount_fen=10_000_00)
    before = tax.balance(dropped.pay_acct)

    def reversal(cancel_no):
        return TaxHandler().reverse_deduction(Reversal(
            head=head("1021"), tax_org_code=dropped.tax_org_code, entrust_date=ENTRUST_DATE, cancel_no=cancel_no,
            ori_entrust_date=dropped.entrust_date, ori_tra_no=dropped.tra_no, cancel_reason="wrong voucher"))

    refund = corrections.propose_correction(case_id=cases[Outcome.MISSING_TAX].pk, user=tax.staff, kind="refund",
                                            amount_fen=300_00, reason="多扣 (over-debit)", now=timezone.now())
    tax.ecny.admin.set_fault("error_after_apply", count=1)
    assert (reversal("00000003").cancel_answer, tax.balance(dropped.pay_acct)) == ("1", before + 300_00)
    with pytest.raises(services.ReconciliationError) as waiting:
        corrections.approve_correction(correction_id=refund.pk, user=tax.checker, now=timezone.now())
    assert waiting.value.code == "exceeds_held"
    assert reversal("00000003").cancel_answer == "0"  # asked again: the same reversal, recorded now
    with pytest.raises(services.ReconciliationError):
        corrections.approve_correction(correction_id=refund.pk, user=tax.checker, now=timezone.now())
    assert tax.balance(dropped.pay_acct) == before + 300_00  # given back once

    other = day["amount"]  # a debit whose reversal the operator refuses
    deduction = TaxDeduction.objects.get(pk=other.pk)

    def refused(**kwargs):
        raise TransferNotReversible("运营机构拒绝冲正: INSUFFICIENT_BALANCE")

    monkeypatch.setattr(transfer_services, "reverse_transfer", refused)
    reply = TaxHandler().reverse_deduction(Reversal(
        head=head("1021"), tax_org_code=other.tax_org_code, entrust_date=ENTRUST_DATE, cancel_no="00000004",
        ori_entrust_date=other.entrust_date, ori_tra_no=other.tra_no, cancel_reason="wrong voucher"))
    assert reply.cancel_answer == "1"
    deduction.refresh_from_db()
    assert deduction.reversal_asked_at is None and corrections.held_fen(deduction) == deduction.amount_fen


def test_the_api_refuses_an_amount_or_a_correcting_transfer_it_cannot_take(cases, tax):
    from rest_framework.test import APIClient

    case = cases[Outcome.MISSING_TAX]
    api = APIClient()
    api.force_authenticate(tax.staff)
    too_much = api.post(f"/api/v1/tax/reconciliation/cases/{case.pk}/corrections/",
                        {"kind": "refund", "amount_fen": 10**19, "reason": "typo"}, format="json")
    assert too_much.status_code == 400 and "amount_fen" in too_much.json()["details"]
    other = Transfer.objects.first()  # a transfer, but not one of this case's corrections
    for transfer_id in (987654, other.pk):
        response = api.post(f"/api/v1/tax/reconciliation/cases/{case.pk}/resolve/",
                            {"reason": "checked", "correcting_transfer": transfer_id}, format="json")
        assert (response.status_code, response.json()["code"]) == (400, "invalid_transfer")
    case.refresh_from_db()
    assert case.state == "open" and not CaseCorrection.objects.exists()


def test_a_correction_booked_on_a_later_day_is_fetched_for_the_day_of_its_case(cases, tax, day, monkeypatch):
    import dataclasses
    import datetime as dt

    from tax.reconciliation.models import ReconciliationResult
    from tests.tax.helpers import OPERATOR_CODE
    from treasury.models import LedgerAccount, Organization, Wallet
    from treasury.services import wallets

    district = f.make_organization(org_type=Organization.Type.TREASURY, name="国家金库示范市区支库", code="3702000000")
    other_treasury = wallets.register_wallet(
        wallet_id=f.make_wallet_id(operator_code=OPERATOR_CODE), wallet_type=Wallet.Type.CORPORATE,
        operator=tax.treasury_wallet.operator, holder_org=district, holder_name=district.name,
        account_kind=LedgerAccount.Kind.TREASURY_SINGLE)
    tax.ecny.admin.open_wallet(wallet_id=other_treasury.wallet_id, wallet_type="WT09", holder_name=district.name)
    proposed = corrections.propose_correction(case_id=cases[Outcome.AMOUNT_MISMATCH].pk, user=tax.staff,
                                              kind="collect", amount_fen=1, reason="少扣 1 分", now=timezone.now())
    approved = corrections.approve_correction(correction_id=proposed.pk, user=tax.checker, now=timezone.now())
    transfer = Transfer.objects.get(pk=approved.transfer_id)
    Transfer.objects.filter(pk=transfer.pk).update(settled_at=transfer.settled_at + dt.timedelta(days=1))
    today, key = timezone.localdate(), f"taxcorr:{approved.pk}"
    real, asked = wallets.operator_statement, []

    def booked_next_day(*, wallet, day):  # the operator booked the correction on the following business day
        asked.append((wallet.wallet_id, day))
        lines = real(wallet=wallet, day=today)
        if day == today:
            return [line for line in lines if line.request_id != key]
        return [dataclasses.replace(line, booked_at=line.booked_at + dt.timedelta(days=1))
                for line in lines if line.request_id == key]

    monkeypatch.setattr(wallets, "operator_statement", booked_next_day)
    run = services.reconcile(check_date=ENTRUST_DATE, now=timezone.now())
    assert not ReconciliationResult.objects.filter(run=run, tra_no=day["amount"].tra_no).exists()  # matched
    # the check date of every treasury wallet, the next day only of the one the correction was booked on
    assert sorted(asked) == sorted([(tax.treasury_wallet.wallet_id, today), (other_treasury.wallet_id, today),
                                    (tax.treasury_wallet.wallet_id, today + dt.timedelta(days=1))])
    # the next day's own statement carries the line, but it belongs to its case's day, not to the next day's serials
    (line,) = services.fetch_statement(check_date=today + dt.timedelta(days=1))
    assert line[2] == key and line[-1] == ""


def test_open_cases_and_corrections_wait_on_the_dashboard_for_the_staff_who_may_act(cases, tax):
    from django.urls import reverse

    from tests.clients import logged_in
    from treasury.waiting import waiting_for

    def waiting(user) -> dict[str, int]:
        return {item.key: item.count for item in waiting_for(user) if item.key.startswith("tax_")}

    open_count = len(cases)
    assert waiting(tax.staff) == {"tax_cases_open": open_count}
    case = cases[Outcome.MISSING_TAX]
    services.investigate_case(case_id=case.pk, user=tax.staff, note="", now=timezone.now())
    corrections.propose_correction(case_id=case.pk, user=tax.staff, kind="refund", amount_fen=300_00,
                                   reason="税务系统无此税票 (no such voucher)", now=timezone.now())
    assert waiting(tax.staff) == {"tax_cases_open": open_count - 1}  # the proposer does not approve
    assert waiting(tax.checker) == {"tax_cases_open": open_count - 1, "tax_corrections_to_approve": 1}
    assert waiting(tax.other_staff) == {}  # another tax authority's cases
    assert waiting(f.make_user(role=roles.AUDITOR)) == {}

    client = logged_in(tax.checker)
    html = client.get(reverse("dashboard")).content.decode()
    link = f'{reverse("tax:reconciliation-cases")}?correction_proposed=on'
    assert 'data-waiting="tax_corrections_to_approve"' in html and f'href="{link}"' in html
    listed = client.get(link).content.decode()  # the list the count links to shows that case alone
    assert f'data-case="{case.pk}"' in listed and listed.count("data-case=") == 1


def test_a_refused_proposal_on_the_case_page_keeps_what_was_typed_and_names_the_field(cases, tax):
    """A proposal the page cannot take comes back on the case page with the kind, amount and reason as typed and
    the problem next to its field, where it was a redirect that emptied the form and said only the message."""
    from django.test import Client

    case = cases[Outcome.MISSING_TAX]  # 300.00 was debited
    maker = Client()
    maker.force_login(tax.staff)
    page = f"/tax/reconciliation/cases/{case.pk}/"

    response = maker.post(f"{page}corrections/", {"kind": "refund", "amount": "3OO", "reason": "多扣，退还纳税人"})
    assert response.status_code == 400
    form = response.context["correction_form"]
    assert list(form.errors) == ["amount"]
    html = response.content.decode()
    assert 'value="3OO"' in html and "多扣，退还纳税人" in html
    assert 'id="id_amount_error"' in html or 'aria-invalid="true"' in html

    response = maker.post(f"{page}corrections/", {"kind": "refund", "amount": "300.01", "reason": "多扣，退还纳税人"})
    assert response.status_code == 400  # the service refuses: more than was debited
    html = response.content.decode()
    assert 'value="300.01"' in html and "多扣，退还纳税人" in html
    assert list(response.context["correction_form"].errors) == ["amount"]  # more than was debited
    assert not CaseCorrection.objects.exists()
    assert_links_lead_to(maker, response, page)  # not to the proposal's address, which only takes a POST
