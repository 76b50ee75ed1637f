"""Fiscal disbursement end to end through its services, over real HTTP: the sandbox operator for the
money, the sandbox budget-management system (SOAP) for quotas, vouchers and result reports.

What every path must keep true: our quota figures and the budget system's agree once a request is
reported; no line is paid twice; the ledger balances."""
import datetime as dt

import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from adapters.ecny.interface import Conditions, RefusalCode
from fiscal_disbursement import selectors, services
from fiscal_disbursement.models import PaymentRequest, Quota, ResultReport
from fiscal_disbursement.models import RequestState as R
from tests import factories as f
from tests.fiscal_disbursement.helpers import (
    QUOTA_ID,
    UNIT_QUOTA_ID,
    approved,
    draft,
    organization_payee,
    payee_csv,
    payee_rows,
    refreshed,
    submitted,
)
from treasury.access import roles
from treasury.access.errors import AccessDenied, MakerCheckerViolation
from treasury.models import Transfer, TransferState
from treasury.services import transfers as transfer_services
from treasury.services.ledger import check_ledger

pytestmark = pytest.mark.django_db(transaction=True)


def now():
    return timezone.now()


def quota(quota_id=QUOTA_ID) -> Quota:
    return Quota.objects.get(quota_id=quota_id)


def assert_quota_agrees(finance, *, consumed_fen: int, reserved_fen: int = 0, quota_id=QUOTA_ID):
    """Our figures are what we expect, and the budget system holds the same used and reserved amounts."""
    ours = quota(quota_id)
    theirs = finance.budget.admin.quota(quota_id=quota_id)
    assert (ours.consumed_fen, ours.reserved_fen) == (consumed_fen, reserved_fen)
    assert (theirs["used_fen"], theirs["reserved_fen"]) == (consumed_fen, reserved_fen)


def test_a_subsidy_run_is_paid_reported_and_reconciled(finance):
    rows = payee_rows(finance, 5)
    request = approved(finance, rows)

    request = refreshed(request)
    assert request.state == R.REPORTED
    assert request.voucher_no.startswith("3201002026" + "5201")
    assert (request.paid_count, request.paid_fen, request.returned_fen) == (5, 5_000_00, 0)
    for _, _, wallet_id in rows:
        assert finance.ecny.admin.balance(wallet_id=wallet_id) == 1000_00
    assert ResultReport.objects.filter(request=request, state=ResultReport.State.ACKNOWLEDGED).count() == 1
    assert_quota_agrees(finance, consumed_fen=5_000_00)

    request = services.reconcile_request(request_id=request.pk, now=now(), user=finance.clerk)
    assert request.state == R.RECONCILED
    assert check_ledger().problems == []


def test_every_transfer_carries_the_line_and_the_voucher_is_traceable(finance):
    request = refreshed(approved(finance, payee_rows(finance, 3)))
    lines = list(request.lines.select_related("transfer").order_by("line_no"))
    numbers = [line.line_no for line in lines]  # rows of the file as the clerk sees them (the header is row 1)
    assert numbers == [2, 3, 4]
    assert [line.transfer.idempotency_key for line in lines] == [f"fiscal:{request.pk}:{n}" for n in numbers]
    assert {line.transfer.batch_ref for line in lines} == {request.batch_ref}
    voucher = finance.budget.admin.voucher(voucher_no=request.voucher_no)
    assert [d["tracking_id"] for d in voucher["lines"]] == [f"{request.bill_no}{n:06d}" for n in numbers]


def test_preparer_cannot_approve_and_a_clerk_cannot_approve_at_all(finance):
    both = f.make_user(role=roles.FINANCE_CLERK, organization=finance.bureau)
    both.groups.add(*f.make_user(role=roles.FINANCE_APPROVER, organization=finance.bureau).groups.all())
    finance.clerk = both
    request = submitted(finance, payee_rows(finance, 2))
    with pytest.raises(MakerCheckerViolation):
        services.approve_request(request_id=request.pk, user=both, now=now())
    other_clerk = f.make_user(role=roles.FINANCE_CLERK, organization=finance.bureau)
    with pytest.raises(AccessDenied):
        services.approve_request(request_id=request.pk, user=other_clerk, now=now())
    assert refreshed(request).state == R.SUBMITTED
    assert quota().reserved_fen == 0


def test_only_the_preparer_puts_payees_in_and_submits(finance):
    """Maker-checker keeps whoever prepared a request from approving it, so the preparer alone chooses its payees
    and submits it: another clerk who also approves could otherwise put their own payees into a colleague's draft,
    submit it and approve it alone."""
    both = f.make_user(role=roles.FINANCE_CLERK, organization=finance.bureau)
    both.groups.add(*finance.approver.groups.all())
    request = draft(finance, payee_rows(finance, 1))
    with pytest.raises(AccessDenied) as refused:
        services.load_payee_file(request_id=request.pk, user=both, filename="mine.csv",
                                 data=payee_csv(payee_rows(finance, 2)), now=now())
    assert refused.value.code == "not_preparer"
    with pytest.raises(AccessDenied) as refused:
        services.submit_request(request_id=request.pk, user=both, now=now())
    assert refused.value.code == "not_preparer"
    request = refreshed(request)
    assert (request.state, request.line_count) == (R.DRAFT, 1)
    actions = selectors.request_actions(user=both, request=request)
    assert not actions.can_edit_payees and selectors.SUBMIT not in actions.available

    # What the preparer chose and submitted, the other approves.
    services.submit_request(request_id=request.pk, user=finance.clerk, now=now())
    services.approve_request(request_id=request.pk, user=both, now=now())
    assert refreshed(request).state == R.REPORTED


def test_another_bureau_cannot_touch_the_request(finance):
    request = submitted(finance, payee_rows(finance, 1))
    stranger = f.make_user(role=roles.FINANCE_APPROVER)  # a finance approver of another bureau
    with pytest.raises(AccessDenied):
        services.approve_request(request_id=request.pk, user=stranger, now=now())


def test_above_the_threshold_two_different_approvers_are_needed(finance, settings):
    settings.DISBURSEMENT_SECOND_APPROVAL_FEN = 1_500_00
    request = submitted(finance, payee_rows(finance, 2))  # 2,000 yuan

    request = services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    assert request.state == R.SUBMITTED and request.first_approved_by == finance.approver
    assert quota().reserved_fen == 0
    with pytest.raises(MakerCheckerViolation):
        services.approve_request(request_id=request.pk, user=finance.approver, now=now())

    services.approve_request(request_id=request.pk, user=finance.approver2, now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED and request.approved_by == finance.approver2


def test_rejected_request_goes_back_to_the_preparer_and_can_be_resubmitted(finance):
    request = submitted(finance, payee_rows(finance, 1))
    with pytest.raises(Exception, match="reason"):
        services.reject_request(request_id=request.pk, user=finance.approver, reason=" ", now=now())
    request = services.reject_request(request_id=request.pk, user=finance.approver, reason="补充审批文件", now=now())
    assert request.state == R.REJECTED and request.reason == "补充审批文件"
    with pytest.raises(TransitionNotAllowed):
        services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    services.rework_request(request_id=request.pk, user=finance.clerk, now=now())
    services.submit_request(request_id=request.pk, user=finance.clerk, now=now())
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    assert refreshed(request).state == R.REPORTED


def test_approval_refused_when_the_quota_is_short(finance):
    request = submitted(finance, payee_rows(finance, 3), amount_yuan="400000.00")  # 1.2 million > 1 million
    with pytest.raises(services.DisbursementError) as refused:
        services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    assert refused.value.code == "quota_insufficient"
    assert refreshed(request).state == R.SUBMITTED
    assert_quota_agrees(finance, consumed_fen=0)


def test_voucher_refused_by_the_budget_system_releases_the_reservation(finance):
    finance.budget.admin.set_quota_amount(quota_id=QUOTA_ID, amount_fen=1_000_00)  # cut there, not yet synced here
    request = approved(finance, payee_rows(finance, 2))
    request = refreshed(request)
    assert request.state == R.VOUCHER_REFUSED
    assert "QUOTA_INSUFFICIENT" in request.voucher_error
    assert quota().reserved_fen == 0
    assert not Transfer.objects.filter(batch_ref=request.batch_ref).exists()


def test_payee_file_problems_keep_no_line(finance):
    rows = payee_rows(finance, 3)
    rows[1] = [rows[1][0], "110105199001011234", rows[1][2]]  # bad check digit
    unknown_wallet = payee_rows(finance, 1, open_wallets=False)[0]
    request = draft(finance, rows + [unknown_wallet])
    assert request.state == R.DRAFT
    assert request.line_count == 0 and not request.lines.exists()
    codes = {(p["line"], p["code"]) for p in request.problems}
    assert (3, "wallet_unknown") not in codes and any(line == 3 for line, _ in codes)  # the bad ID, row 3
    assert (5, "wallet_unknown") in codes
    assert refreshed(request).problem_count == len(request.problems) == 2  # as many as listed, kept so
    with pytest.raises(services.DisbursementError):
        services.submit_request(request_id=request.pk, user=finance.clerk, now=now())
    report = services.error_report(request=request).decode("utf-8-sig")
    assert "错误" in report.splitlines()[0]


def test_an_earmark_refusal_is_a_return_and_the_quota_gets_it_back(finance):
    people = payee_rows(finance, 3)
    company = organization_payee(finance)
    request = draft(finance, people + [company], conditions=Conditions(payee_category="WT01"))
    assert request.problem_count == 0
    assert request.lines.get(line_no=5).warnings == ["earmark_category"]
    services.submit_request(request_id=request.pk, user=finance.clerk, now=now())
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())

    request = refreshed(request)
    assert request.state == R.PARTIALLY_PAID
    refused = request.lines.get(line_no=5)
    assert refused.transfer.state == TransferState.FAILED
    assert refused.transfer.failure_code == RefusalCode.CONDITION_PAYEE_CATEGORY
    assert finance.ecny.admin.balance(wallet_id=company[2]) == 0
    # Paid lines are consumed; the refused one stays reserved until the clerk decides.
    assert (quota().consumed_fen, quota().reserved_fen) == (3_000_00, 1_000_00)

    services.return_lines(request_id=request.pk, line_ids=[refused.pk], user=finance.clerk,
                          reason="收款人不符合专款专用条件", now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    assert (request.returned_count, request.returned_fen) == (1, 1_000_00)
    assert "收款人不符合专款专用条件" in request.lines.get(line_no=5).return_reason
    assert_quota_agrees(finance, consumed_fen=3_000_00)
    assert services.reconcile_request(request_id=request.pk, now=now()).state == R.RECONCILED


def test_a_spend_by_date_in_the_past_refuses_every_payment(finance):
    rows = payee_rows(finance, 2)
    request = approved(finance, rows, conditions=Conditions(expires_at=timezone.now() - dt.timedelta(days=1)))
    request = refreshed(request)
    assert request.state == R.FAILED
    assert {line.transfer.failure_code for line in request.lines.select_related("transfer")} == {
        RefusalCode.CONDITION_EXPIRED}
    services.return_lines(request_id=request.pk, line_ids=list(request.lines.values_list("pk", flat=True)),
                          user=finance.clerk, reason="专款已过期", now=now())
    assert refreshed(request).state == R.REPORTED
    assert_quota_agrees(finance, consumed_fen=0)


def test_a_failed_line_retried_after_the_wallet_is_reopened_is_paid_once(finance):
    rows = payee_rows(finance, 2)
    request = submitted(finance, rows)
    finance.ecny.admin.set_status(wallet_id=rows[1][2], status="frozen")  # frozen after the file was checked
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = refreshed(request)
    assert request.state == R.PARTIALLY_PAID
    failed = request.lines.get(line_no=3)
    finance.ecny.admin.set_status(wallet_id=rows[1][2], status="active")

    services.retry_lines(request_id=request.pk, line_ids=[failed.pk], user=finance.clerk, now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    failed.refresh_from_db()
    assert failed.attempts == 2 and failed.transfer.idempotency_key == f"fiscal:{request.pk}:3:2"
    assert finance.ecny.admin.balance(wallet_id=rows[1][2]) == 1000_00
    assert_quota_agrees(finance, consumed_fen=2_000_00)


def test_cancel_after_approval_releases_the_reservation_everywhere(finance):
    request = submitted(finance, payee_rows(finance, 2))
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=1)
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = refreshed(request)
    assert request.state == R.APPROVED and request.voucher_error  # the fault is shown to the clerk
    assert quota().reserved_fen == 2_000_00

    request = services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复申请", now=now())
    assert request.state == R.CANCELLED
    assert_quota_agrees(finance, consumed_fen=0)


def test_cancel_of_an_issued_voucher_reports_every_line_returned(finance):
    # The budget unit's account holds 1,500 yuan: the voucher is accepted, paying waits for money.
    request = submitted(finance, payee_rows(finance, 2), pay_type="2", quota_id=UNIT_QUOTA_ID)
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = refreshed(request)
    assert request.state == R.VOUCHER_ISSUED and "余额不足" in request.voucher_error
    assert finance.budget.admin.quota(quota_id=UNIT_QUOTA_ID)["reserved_fen"] == 2_000_00

    services.cancel_request(request_id=request.pk, user=finance.clerk, reason="资金未到位", now=now())
    request = refreshed(request)
    assert request.state == R.CANCELLED
    assert not Transfer.objects.filter(batch_ref=request.batch_ref).exists()
    assert_quota_agrees(finance, consumed_fen=0, quota_id=UNIT_QUOTA_ID)


def test_budget_system_unavailable_then_back_sends_the_voucher_once(finance, settings):
    settings.BUDGET_SYSTEM_RETRIES = 0
    finance.budget.admin.set_fault("lost_reply", operation="SubmitVoucher", count=1)
    request = refreshed(approved(finance, payee_rows(finance, 2)))
    # The budget system applied the voucher but the reply was lost: the client's retry (or the periodic
    # task) gets the duplicate acknowledgement; either way the voucher is reserved there once.
    services.resend_pending(now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    assert_quota_agrees(finance, consumed_fen=2_000_00)


def test_lost_operator_reply_is_recovered_without_paying_twice(finance, settings):
    rows = payee_rows(finance, 3)
    finance.ecny.admin.set_fault("error_after_apply", count=1)
    request = refreshed(approved(finance, rows))
    assert request.state == R.PAYING
    from treasury.services.transfers import recover_unconfirmed_transfers

    recover_unconfirmed_transfers(now=now(), older_than_seconds=0)
    services.finish_paying_requests(now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    for _, _, wallet_id in rows:
        assert finance.ecny.admin.balance(wallet_id=wallet_id) == 1000_00
    assert_quota_agrees(finance, consumed_fen=3_000_00)
    assert check_ledger().problems == []


def test_a_line_whose_money_came_back_is_a_return_to_handle_not_a_payment(finance):
    """The operator paid both lines but its reply was lost; by the time recovery asks, one line's money came back
    (returned by the operator). That line is neither paid nor reported as PAID: it waits, reserved, for the clerk to
    retry or confirm it returned, like a refused line, and every line is counted once."""
    rows = payee_rows(finance, 2)
    finance.ecny.admin.set_fault("error_after_apply", count=1)
    request = refreshed(approved(finance, rows))
    assert request.state == R.PAYING
    back = request.lines.get(line_no=3)
    finance.ecny.admin.return_transfer(request_id=back.transfer.idempotency_key, reason="收款钱包已注销 (wallet closed)")

    transfer_services.recover_unconfirmed_transfers(now=now(), older_than_seconds=0)
    services.finish_paying_requests(now=now())
    request, back = refreshed(request), refreshed(back)
    assert back.transfer.state == TransferState.RETURNED
    assert request.state == R.PARTIALLY_PAID and (request.paid_count, request.paid_fen) == (1, 1_000_00)
    progress = services.line_progress(request=request)
    assert (progress.paid, progress.failed, progress.open, progress.returned) == (1, 1, 0, 0)
    assert (quota().consumed_fen, quota().reserved_fen) == (1_000_00, 1_000_00)
    assert [line.pk for line in selectors.returns_to_handle(user=finance.clerk)] == [back.pk]
    assert selectors.line_refusal(back) == TransferState.RETURNED.label

    services.return_lines(request_id=request.pk, line_ids=[back.pk], user=finance.clerk, reason="钱包已注销",
                          now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED and (request.returned_count, request.returned_fen) == (1, 1_000_00)
    assert_quota_agrees(finance, consumed_fen=1_000_00)
    assert services.reconcile_request(request_id=request.pk, now=now()).state == R.RECONCILED
    assert check_ledger().problems == []


def test_sending_the_voucher_and_finishing_twice_changes_nothing(finance):
    request = refreshed(approved(finance, payee_rows(finance, 2)))
    services.send_voucher(request_id=request.pk, now=now())
    services.start_paying(request_id=request.pk, now=now())
    services.finish_request_if_done(request_id=request.pk, now=now())
    services.send_reports(request_id=request.pk, now=now())
    assert Transfer.objects.filter(batch_ref=request.batch_ref).count() == 2
    assert_quota_agrees(finance, consumed_fen=2_000_00)


def test_each_report_is_its_own_task_and_the_last_acknowledgement_finishes_reporting(finance, monkeypatch):
    monkeypatch.setattr(services, "REPORT_CHUNK", 2)
    # The second report's first delivery meets a SOAP fault: it stays pending, the others go through.
    finance.budget.admin.set_fault("fault", operation="ReportPayment", count=1)
    request = refreshed(approved(finance, payee_rows(finance, 5)))
    reports = list(request.reports.order_by("report_no"))
    assert [r.line_count for r in reports] == [2, 2, 1]
    assert [r.state for r in reports] == [ResultReport.State.PENDING, ResultReport.State.ACKNOWLEDGED,
                                          ResultReport.State.ACKNOWLEDGED]
    assert request.state == R.REPORTING and "injected fault" in reports[0].error

    # Sending an acknowledged report again sends nothing and finishes nothing.
    assert services.send_report(report_id=reports[1].pk, now=now()).state == R.REPORTING
    assert finance.budget.admin.quota(quota_id=QUOTA_ID)["reserved_fen"] == 2_000_00

    request = services.send_report(report_id=reports[0].pk, now=now())
    assert request.state == R.REPORTED
    assert [r.attempts for r in request.reports.order_by("report_no")] == [2, 1, 1]
    assert_quota_agrees(finance, consumed_fen=5_000_00)


def test_authorised_payment_leaves_the_budget_units_zero_balance_account(finance):
    rows = payee_rows(finance, 2)
    request = refreshed(approved(finance, rows, pay_type="2", quota_id=UNIT_QUOTA_ID, amount_yuan="500.00"))
    assert request.state == R.REPORTED
    assert_quota_agrees(finance, consumed_fen=1_000_00, quota_id=UNIT_QUOTA_ID)
    assert request.payer_wallet == finance.unit_wallet
    assert request.voucher_no[10:14] == "8202"


def test_pay_type_must_match_the_quota(finance):
    with pytest.raises(services.DisbursementError) as refused:
        draft(finance, payee_rows(finance, 1), pay_type="2")
    assert refused.value.code == "pay_type_not_allowed"


def test_quota_sync_keeps_our_reservations(finance):
    request = submitted(finance, payee_rows(finance, 1))
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=1)
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    services.sync_quotas(now=now())
    assert quota().reserved_fen == 1_000_00 and quota().amount_fen == 1_000_000_00


def test_documents_open_and_say_what_was_paid(finance):
    import io

    from pypdf import PdfReader

    from fiscal_disbursement import documents

    request = refreshed(approved(finance, payee_rows(finance, 3)))
    voucher = PdfReader(io.BytesIO(documents.render_voucher_pdf(request=request)))
    text = voucher.pages[0].extract_text()
    assert request.voucher_no in text and "叁仟元整" in text
    report = documents.daily_report(organization=finance.bureau, day=timezone.localdate())
    assert (report.paid_count, report.paid_fen) == (3, 3_000_00)
    assert [(r.exp_func_code, r.exp_eco_code) for r in report.rows] == [("2080801", "30305")]
    pdf = PdfReader(io.BytesIO(documents.render_daily_report_pdf(organization=finance.bureau,
                                                                   day=timezone.localdate())))
    assert "3000.00" in pdf.pages[0].extract_text()


def test_trace_runs_from_quota_to_wallet(finance):
    from treasury.trace.models import TraceEvent

    request = refreshed(approved(finance, payee_rows(finance, 2)))
    kinds = list(TraceEvent.objects.filter(source_ref=request.batch_ref).exclude(subject_type="treasury.transfer")
                 .order_by("pk").values_list("kind", flat=True))
    for kind in ("fiscal.request.created", "fiscal.quota.reserved", "fiscal.request.approved", "fiscal.voucher.issued",
                 "fiscal.request.paying", "fiscal.quota.consumed", "fiscal.request.reported"):
        assert kind in kinds
    assert PaymentRequest.objects.get(pk=request.pk).lines.filter(transfer__state=TransferState.SETTLED).count() == 2


def test_the_answer_deciding_the_last_transfer_moves_the_request_on_without_a_sweep(finance, monkeypatch):
    """With workers the chunks are paid after the transfers are made: the operator's answer deciding the
    request's last transfer moves it on (paid, then reported), without waiting for the periodic sweep."""
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    chunks = []  # the broker: the submit tasks run when we say so
    monkeypatch.setattr(transfer_services, "enqueue_submission", chunks.append)
    approved(finance, payee_rows(finance, 3))
    request = PaymentRequest.objects.get()
    assert request.state == R.PAYING and [len(chunk) for chunk in chunks] == [2, 1]
    transfer_services.submit_transfer_chunk(transfer_ids=chunks[0], now=now())
    assert refreshed(request).state == R.PAYING
    transfer_services.submit_transfer_chunk(transfer_ids=chunks[1], now=now())
    assert refreshed(request).state == R.REPORTED
    assert_quota_agrees(finance, consumed_fen=3_000_00)


def test_paying_resumes_where_a_dead_task_stopped_making_transfers(finance, monkeypatch):
    """Transfers are made a chunk at a time (paid while the next are made). The task dies after the first
    chunk: the periodic task makes the rest, and no line gets two transfers."""
    monkeypatch.setattr(services, "PAY_CHUNK", 2)
    real_next = services._create_next_transfers
    calls = []

    def dies_after_first_chunk(request_id, **kwargs):
        if calls:
            raise KeyboardInterrupt("worker killed")
        calls.append(request_id)
        return real_next(request_id, **kwargs)

    monkeypatch.setattr(services, "_create_next_transfers", dies_after_first_chunk)
    rows = payee_rows(finance, 5)
    with pytest.raises(KeyboardInterrupt):
        approved(finance, rows)
    request = PaymentRequest.objects.get()
    assert request.state == R.PAYING
    assert request.lines.filter(transfer__isnull=False).count() == 2
    assert services.finish_request_if_done(request_id=request.pk, now=now()).state == R.PAYING  # not done yet

    monkeypatch.setattr(services, "_create_next_transfers", real_next)
    services.resend_pending(now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    assert Transfer.objects.filter(batch_ref=request.batch_ref).count() == 5
    for _, _, wallet_id in rows:
        assert finance.ecny.admin.balance(wallet_id=wallet_id) == 1000_00
    assert_quota_agrees(finance, consumed_fen=5_000_00)


def test_the_import_keeps_each_wallets_check_and_paying_does_not_ask_again(finance, monkeypatch):
    from treasury.models import Wallet
    from treasury.services import wallets as wallet_services

    rows = payee_rows(finance, 3, wallet_class=3)
    request = submitted(finance, rows)
    assert list(request.lines.order_by("line_no").values_list("wallet_type", "wallet_class")) == [("WT01", 3)] * 3
    asked = []
    verify = wallet_services.verify_wallets
    monkeypatch.setattr(wallet_services, "verify_wallets", lambda *, pairs: asked.extend(pairs) or verify(pairs=pairs))
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())  # eager: pays at commit
    request = refreshed(request)
    assert request.state == R.REPORTED
    assert asked == []  # registration took the import's answers
    wallets = Wallet.objects.filter(wallet_id__in=[w for _, _, w in rows])
    assert sorted((w.wallet_type, w.wallet_class) for w in wallets) == [("WT01", 3)] * 3
    assert all(line.payee_wallet_id and line.transfer_id for line in request.lines.all())
    assert check_ledger().problems == []


# ---------------------------------------------------------------------------------------------
# The budget system late, silent or twice; a paid line whose money came back; reconciliation
# ---------------------------------------------------------------------------------------------


def _budget_client_retries(settings, retries: int):
    from adapters.budget.client import get_budget_client

    settings.BUDGET_SYSTEM_RETRIES = retries
    get_budget_client.cache_clear()


@pytest.mark.parametrize("fault", [
    {"name": "lost_reply"},  # accepted there, the reply lost on the way back
    {"name": "timeout", "phase": "before_apply", "sleep_seconds": 1.5},  # answered late, after the client gave up
])
def test_cancelling_an_approved_request_whose_voucher_reached_the_budget_system_releases_it_there(
        finance, settings, fault):
    """The voucher's only delivery had no answer the service could read: the request stays approved. Cancelled now,
    the budget system, which did accept the voucher, must not keep its reservation."""
    _budget_client_retries(settings, 0)
    settings.BUDGET_SYSTEM_TIMEOUT_SECONDS = 0.5
    request = submitted(finance, payee_rows(finance, 2))
    finance.budget.admin.set_fault(operation="SubmitVoucher", **fault)
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = refreshed(request)
    assert request.state == R.APPROVED and request.voucher_error
    if fault["name"] == "timeout":
        import time

        time.sleep(fault["sleep_seconds"] + 0.5)  # the late delivery is applied there meanwhile
    services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复申请", now=now())
    request = refreshed(request)
    assert request.state == R.CANCELLED
    assert_quota_agrees(finance, consumed_fen=0)
    assert finance.budget.admin.voucher(voucher_no=request.voucher_no)["line_states"]["returned"] == 2


def test_cancelling_an_approved_request_waits_while_the_budget_system_cannot_say(finance, settings):
    _budget_client_retries(settings, 0)
    request = submitted(finance, payee_rows(finance, 2))
    finance.budget.admin.set_fault("lost_reply", operation="SubmitVoucher", count=2)
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    from adapters.budget.interface import BudgetUnavailable

    with pytest.raises(BudgetUnavailable):
        services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复申请", now=now())
    assert refreshed(request).state == R.APPROVED and quota().reserved_fen == 2_000_00  # nothing changed

    request = services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复申请", now=now())
    assert request.state == R.CANCELLED
    assert_quota_agrees(finance, consumed_fen=0)


def test_cancelling_a_voucher_the_budget_system_never_took_sends_no_returns(finance):
    """A voucher refused by a SOAP fault at every delivery was applied nowhere: cancelled, nothing is reported."""
    request = submitted(finance, payee_rows(finance, 1))
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=2)
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = services.cancel_request(request_id=request.pk, user=finance.clerk, reason="作废", now=now())
    assert request.state == R.CANCELLED and not request.reports.exists()
    assert_quota_agrees(finance, consumed_fen=0)
    assert finance.budget.admin.voucher(voucher_no=request.voucher_no)["state"] == "not_found"


def test_returning_a_paid_line_whose_money_came_back_takes_it_off_the_quota_once(finance):
    """Paying ended with one line paid (consumed) and one refused (reserved); then the paid line's money came back
    (reversed). Confirming both returned must take the first off what was consumed, not out of the reservation a
    second time: another request's reservation on the same quota stays whole, and nothing is counted both paid and
    returned."""
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=1)
    other = refreshed(approved(finance, payee_rows(finance, 5)))  # keeps 5,000 yuan reserved on the quota
    assert other.state == R.APPROVED
    company = organization_payee(finance)
    request = draft(finance, payee_rows(finance, 1) + [company], conditions=Conditions(payee_category="WT01"))
    services.submit_request(request_id=request.pk, user=finance.clerk, now=now())
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = refreshed(request)
    assert request.state == R.PARTIALLY_PAID
    assert (quota().reserved_fen, quota().consumed_fen) == (6_000_00, 1_000_00)

    paid = request.lines.get(line_no=2)
    transfer_services.reverse_transfer(transfer_id=paid.transfer_id, reason="错付", actor="operator", now=now())
    assert [line.pk for line in selectors.returns_to_handle(user=finance.clerk)] == [
        paid.pk, request.lines.get(line_no=3).pk]
    services.return_lines(request_id=request.pk, line_ids=list(request.lines.values_list("pk", flat=True)),
                          user=finance.clerk, reason="款项已退回", now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    assert (request.paid_count, request.paid_fen, request.returned_count, request.returned_fen) == (0, 0, 2, 2_000_00)
    assert (quota().reserved_fen, quota().consumed_fen) == (5_000_00, 0)  # the other request's reservation
    assert services.reconcile_request(request_id=request.pk, now=now()).state == R.RECONCILED


PLANTED = {
    "paid": "UPDATE vouchers SET paid_fen = paid_fen - 1, returned_fen = returned_fen + 1 WHERE voucher_no = ?",
    "reported": "UPDATE vouchers SET reported_count = reported_count - 1 WHERE voucher_no = ?",
    "lines": "UPDATE vouchers SET line_count = line_count + 1, reported_count = reported_count + 1 WHERE voucher_no = ?",
    "amount": "UPDATE vouchers SET amount_fen = amount_fen + 1 WHERE voucher_no = ?",
    "returned": "UPDATE vouchers SET returned_fen = returned_fen + 100 WHERE voucher_no = ?",
}


@pytest.mark.parametrize("planted", list(PLANTED))
def test_reconciliation_finds_each_difference_planted_in_the_budget_system(finance, planted):
    request = refreshed(approved(finance, payee_rows(finance, 2)))
    assert request.state == R.REPORTED
    with finance.budget.app.ledger._write() as books:  # the budget system's own books, changed behind our back
        books.execute(PLANTED[planted], (request.voucher_no,))
    request = services.reconcile_request(request_id=request.pk, now=now())
    assert request.state == R.REPORTED and "不一致" in request.reconcile_note
    from treasury.trace.models import TraceEvent

    failed = TraceEvent.objects.filter(kind="fiscal.request.reconcile_failed", source_ref=request.batch_ref).get()
    assert planted in failed.data["differences"]


def test_reconciliation_finds_a_payment_whose_money_came_back_after_it_was_reported(finance):
    request = refreshed(approved(finance, payee_rows(finance, 2)))
    line = request.lines.order_by("line_no").first()
    transfer_services.reverse_transfer(transfer_id=line.transfer_id, reason="错付", actor="operator", now=now())
    request = services.reconcile_request(request_id=request.pk, now=now())
    assert request.state == R.REPORTED
    assert "已支付 paid ¥1,000.00 / ¥2,000.00" in request.reconcile_note and "recorded" in request.reconcile_note


# ---------------------------------------------------------------------------------------------
# Text the budget system cannot take; one request never holds up the others
# ---------------------------------------------------------------------------------------------


def test_control_characters_are_refused_where_they_are_typed(finance):
    rows = payee_rows(finance, 2)
    text = payee_csv(rows).decode().replace("2026年高龄津贴", "高龄\x01津贴", 1).encode()
    request = services.create_request(user=finance.clerk, quota_id=QUOTA_ID, pay_type="1", title="高龄津贴",
                                      now=now(), filename="payees.csv", data=text)
    assert request.line_count == 0
    assert [(p["line"], p["column"], p["code"]) for p in request.problems] == [(2, "用途", "control_character")]
    with pytest.raises(services.DisbursementError) as refused:
        services.create_request(user=finance.clerk, quota_id=QUOTA_ID, pay_type="1", title="高龄\x07津贴", now=now())
    assert refused.value.code == "control_character"
    request = refreshed(approved(finance, rows))
    assert request.state == R.PARTIALLY_PAID or request.state == R.REPORTED
    with pytest.raises(services.DisbursementError) as refused:
        services.cancel_request(request_id=request.pk, user=finance.clerk, reason="重复\x0b申请", now=now())
    assert refused.value.code == "control_character"


def test_a_request_that_cannot_move_does_not_hold_up_the_others(finance, monkeypatch):
    """The periodic task sends every approved request's voucher: one that fails with an error (here a bug) is logged
    and the others still go out."""
    finance.budget.admin.set_fault("fault", operation="SubmitVoucher", count=2)
    first = refreshed(approved(finance, payee_rows(finance, 1)))
    second = refreshed(approved(finance, payee_rows(finance, 1)))
    assert (first.state, second.state) == (R.APPROVED, R.APPROVED)
    real_build = services.build_voucher

    def broken_for_the_first(request):
        if request.pk == first.pk:
            raise RuntimeError("a bug in building this voucher")
        return real_build(request)

    monkeypatch.setattr(services, "build_voucher", broken_for_the_first)
    assert services.resend_pending(now=now())["errors"] == 1
    assert (refreshed(first).state, refreshed(second).state) == (R.APPROVED, R.REPORTED)


def test_an_older_rows_control_characters_never_reach_the_voucher_or_report(finance):
    """Lines stored before files were checked for control characters (and what the operator writes in a refusal) are
    sent without them: the voucher and the report can always be written."""
    from fiscal_disbursement.models import PaymentLine

    request = submitted(finance, payee_rows(finance, 2))
    PaymentLine.objects.filter(request=request, line_no=2).update(memo="高龄\x01津贴")
    services.approve_request(request_id=request.pk, user=finance.approver, now=now())
    request = refreshed(request)
    assert request.state == R.REPORTED
    voucher = finance.budget.admin.voucher(voucher_no=request.voucher_no)
    assert voucher["lines"][0]["purpose"] == "高龄津贴"


# ---------------------------------------------------------------------------------------------
# A request is never emptied or approved without payees
# ---------------------------------------------------------------------------------------------


def test_a_refused_file_does_not_empty_a_request_submitted_while_it_was_read(finance, monkeypatch):
    """The preparer uploads a corrected file with a mistake and, while it is read, submits the request (its previous
    payees, from another tab). The refused file's bookkeeping comes after: it must leave the submitted request whole,
    not delete the payees the approver is about to approve."""
    request = draft(finance, payee_rows(finance, 2))
    assert request.line_count == 2
    from django.db import transaction

    class SubmitBeforeTheSecondTransaction:
        """services.transaction, with the preparer's submit (another tab) run just before the refused file's second
        transaction opens: the submit got the request's row lock first."""

        calls = 0

        def atomic(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 2:
                assert services.submit_request(request_id=request.pk, user=finance.clerk, now=now()).state == R.SUBMITTED
            return transaction.atomic(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(transaction, name)

    monkeypatch.setattr(services, "transaction", SubmitBeforeTheSecondTransaction())
    bad = payee_rows(finance, 1)
    bad[0][1] = "110105199001011234"  # wrong check digit
    with pytest.raises(services.DisbursementError) as refused:
        services.load_payee_file(request_id=request.pk, user=finance.clerk, filename="p.csv", data=payee_csv(bad),
                                 now=now())
    assert refused.value.code == "not_draft"
    monkeypatch.setattr(services, "transaction", transaction)
    request = refreshed(request)
    assert (request.state, request.line_count, request.total_fen, request.lines.count()) == (R.SUBMITTED, 2,
                                                                                              2_000_00, 2)


def test_a_file_with_more_lines_than_a_voucher_carries_is_refused_at_upload(finance, monkeypatch):
    from adapters.budget.interface import MAX_VOUCHER_DETAILS
    from adapters.budget.messages import XSD_PATH

    assert f'name="Detail" type="b:VoucherDetail" maxOccurs="{MAX_VOUCHER_DETAILS}"' in XSD_PATH.read_text()
    monkeypatch.setattr(services, "MAX_VOUCHER_DETAILS", 2)
    request = draft(finance, payee_rows(finance, 3))
    assert (request.line_count, request.problem_count) == (0, 1)
    assert request.problems[0]["code"] == "too_many_lines" and not request.lines.exists()
    assert refreshed(draft(finance, payee_rows(finance, 2))).line_count == 2


def test_a_worker_killed_after_the_operator_paid_a_chunk_pays_every_payee_once(finance,
                                                                              worker_dies_after_operator_applies):
    """The operator applies the request's chunk and the worker dies before recording the answers: the lines stay
    submitted, the request paying. Recovery asks the operator, records the payments, and the request moves on
    (reported) with each payee paid once and the quota consumed once."""
    rows = payee_rows(finance, 3)
    with pytest.raises(KeyboardInterrupt):
        approved(finance, rows)  # the voucher accepted, paying started, the chunk sent: the worker dies there
    worker_dies_after_operator_applies()  # a worker is back
    request = PaymentRequest.objects.get()
    assert request.state == R.PAYING
    assert set(Transfer.objects.filter(batch_ref=request.batch_ref).values_list("state", flat=True)) == {
        TransferState.SUBMITTED}
    assert services.finish_request_if_done(request_id=request.pk, now=now()).state == R.PAYING
    services.start_paying(request_id=request.pk, now=now())  # the sweep's start again: nothing new made
    assert Transfer.objects.filter(batch_ref=request.batch_ref).count() == 3

    transfer_services.recover_unconfirmed_transfers(now=now() + dt.timedelta(minutes=5))
    request = refreshed(request)
    assert request.state == R.REPORTED and (request.paid_count, request.paid_fen) == (3, 3_000_00)
    for _, _, wallet_id in rows:
        assert finance.ecny.admin.balance(wallet_id=wallet_id) == 1000_00
    assert_quota_agrees(finance, consumed_fen=3_000_00)
    assert check_ledger().problems == []


def test_a_request_waits_while_another_paying_from_the_same_account_still_needs_its_money(finance, monkeypatch):
    """The unit's account holds 1,500 yuan; two requests of 1,000 each. The first started paying and its transfers
    are not sent yet (the workers are busy): the account's balance still shows its money. The second waits with
    the reason rather than starting to pay with money the first is about to spend (its payee would fail)."""
    first = submitted(finance, payee_rows(finance, 1), pay_type="2", quota_id=UNIT_QUOTA_ID)
    second_rows = payee_rows(finance, 1)
    second = submitted(finance, second_rows, pay_type="2", quota_id=UNIT_QUOTA_ID)
    with monkeypatch.context() as busy:
        busy.setattr(transfer_services, "enqueue_submission", lambda transfer_ids: None)
        services.approve_request(request_id=first.pk, user=finance.approver, now=now())
        assert refreshed(first).state == R.PAYING
        services.approve_request(request_id=second.pk, user=finance.approver, now=now())
    second = refreshed(second)
    assert second.state == R.VOUCHER_ISSUED and "余额不足" in second.voucher_error
    assert "1,000.00" in second.voucher_error  # what the other request still needs is said
    assert not Transfer.objects.filter(batch_ref=second.batch_ref).exists()

    transfer_services.submit_stranded_pending_transfers(now=now() + dt.timedelta(minutes=5))  # the workers get to it
    services.finish_paying_requests(now=now())
    assert refreshed(first).state == R.REPORTED
    services.resend_pending(now=now())  # 500 yuan left: still waiting, nothing sent to fail
    assert refreshed(second).state == R.VOUCHER_ISSUED
    assert not Transfer.objects.filter(state=TransferState.FAILED).exists()
    finance.ecny.admin.fund(wallet_id=finance.unit_wallet.wallet_id, amount_fen=500_00)
    services.resend_pending(now=now())
    assert refreshed(second).state == R.REPORTED
    assert finance.ecny.admin.balance(wallet_id=second_rows[0][2]) == 1000_00
    assert check_ledger().problems == []
