"""Fiscal disbursement pages and API as finance users meet them: quota -> request with a payee file ->
report -> fix -> submit -> maker-checker approval -> paying -> returns -> reported -> reconciled;
scoping (another bureau never sees or acts on a request, employer users get nothing), auditors
read-only, CSRF, error payloads with codes. Against the sandbox operator and the sandbox budget system
over real HTTP; Celery runs eagerly, so approving pays and reports within the request."""
from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from adapters.budget.interface import BudgetFault, BudgetUnavailable
from adapters.ecny.interface import Conditions
from fiscal_disbursement import selectors, services
from fiscal_disbursement.models import PaymentLine, PaymentRequest, Quota
from fiscal_disbursement.models import RequestState as R
from tests.clients import api_as, logged_in
from tests import factories as f
from tests.fiscal_disbursement.helpers import (
    OPERATOR_CODE,
    QUOTA_ID,
    UNIT_QUOTA_ID,
    approved,
    draft,
    organization_payee,
    payee_csv,
    payee_rows,
    submitted,
)
from treasury.access import roles
from treasury.identifiers import mask_wallet_id
from treasury.models import Organization

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/fiscal"


# ---------------------------------------------------------------------------------------------
# Page and API helpers (fixtures for the service tests live in conftest.py)
# ---------------------------------------------------------------------------------------------


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def detail_url(request_id: int) -> str:
    return reverse("fiscal:request_detail", args=[request_id])


def act(client, request_id, name, **data):
    return client.post(reverse("fiscal:request_action", args=[request_id, name]), data, follow=True)


def upload(data: bytes, name="收款人.csv"):
    return SimpleUploadedFile(name, data)


def state_of(request_id: int) -> str:
    return PaymentRequest.objects.get(pk=request_id).state


@pytest.fixture
def other_bureau(finance):
    """A second finance bureau with its own clerk and approver, and an employer's operator: none of them
    may see or touch the first bureau's requests."""
    bureau = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU, name="邻市财政局")
    employer = f.make_organization(org_type=Organization.Type.EMPLOYER)
    return {
        "clerk": f.make_user(role=roles.FINANCE_CLERK, organization=bureau),
        "approver": f.make_user(role=roles.FINANCE_APPROVER, organization=bureau),
        "employer_operator": f.make_user(role=roles.EMPLOYER_OPERATOR, organization=employer),
    }


@pytest.fixture
def auditor(finance):
    return f.make_user(role=roles.AUDITOR)


@pytest.fixture
def admin_user(finance):
    return f.make_user(role=roles.ADMIN)


# ---------------------------------------------------------------------------------------------
# The whole flow, by pages
# ---------------------------------------------------------------------------------------------


def test_prepare_fix_submit_approve_pay_report_and_reconcile_through_pages(finance):
    rows = payee_rows(finance, 3)
    clerk, approver = logged_in(finance.clerk), logged_in(finance.approver)

    quotas = clerk.get(reverse("fiscal:quota_list")).content.decode()
    assert f'data-quota="{QUOTA_ID}"' in quotas and 'data-action="sync"' in quotas
    form = clerk.get(reverse("fiscal:request_create"), {"quota": QUOTA_ID})
    assert form.status_code == 200
    html = form.content.decode()
    assert reverse("fiscal:template", args=["csv"]) in html and reverse("fiscal:template", args=["xlsx"]) in html
    assert 'name="payee_category"' in html and 'name="allowed_payees"' in html and 'name="spend_by_date"' in html
    template = clerk.get(reverse("fiscal:template", args=["xlsx"]))
    assert template.status_code == 200 and template.content[:2] == b"PK"
    assert clerk.get(reverse("fiscal:template", args=["csv"])).status_code == 200
    assert clerk.get(reverse("fiscal:template", args=["pdf"])).status_code == 404

    # A file whose second payee has no wallet at the operator: a draft with problems and no line.
    broken = [list(r) for r in rows]
    broken[1][2] = f.make_wallet_id(operator_code=rows[0][2][:3])
    response = clerk.post(reverse("fiscal:request_create"), {
        "quota": QUOTA_ID, "pay_type": "1", "title": "2026年11月高龄津贴", "purpose_code": "SUBSIDY",
        "exp_eco_code": "", "payee_category": "WT01", "allowed_purposes": "SUBSIDY", "allowed_payees": "",
        "spend_by_date": "", "file": upload(payee_csv(broken)),
    }, follow=True)
    request = PaymentRequest.objects.get()
    assert response.redirect_chain[-1][0] == detail_url(request.pk)
    assert request.state == R.DRAFT and request.problem_count >= 1 and request.line_count == 0
    assert request.conditions["payee_category"] == "WT01" and request.conditions["purposes"] == ["SUBSIDY"]
    html = response.content.decode()
    assert 'data-testid="validation-report"' in html and 'data-code="wallet_unknown"' in html
    assert any("问题" in m or "problem" in m for m in messages_of(response))
    report = clerk.get(reverse("fiscal:error_report", args=[request.pk, "csv"]))
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    assert request.problems[0]["message"] in report.content.decode("utf-8-sig")
    assert clerk.get(reverse("fiscal:error_report", args=[request.pk, "xlsx"])).content[:2] == b"PK"
    assert 'data-action="submit"' not in html  # nothing to submit yet

    # The corrected file, an attachment, then submit.
    response = clerk.post(reverse("fiscal:request_payees", args=[request.pk]), {"file": upload(payee_csv(rows))},
                          follow=True)
    request.refresh_from_db()
    assert request.problem_count == 0 and request.line_count == 3 and request.total_fen == 3_000_00
    html = response.content.decode()
    assert 'data-testid="validation-report"' not in html and 'data-action="submit"' in html
    assert rows[0][1] not in html and rows[0][2] not in html  # ID numbers and wallets masked
    response = clerk.post(reverse("fiscal:request_attachment", args=[request.pk]),
                          {"file": upload(b"%PDF-1.4 memo", "批复.pdf")}, follow=True)
    assert "批复.pdf" in response.content.decode()
    attachment = request.attachments.get()
    assert clerk.get(reverse("fiscal:attachment", args=[request.pk, attachment.pk])).status_code == 200
    response = act(clerk, request.pk, "submit")
    assert state_of(request.pk) == R.SUBMITTED
    assert 'data-action="approve"' not in response.content.decode()

    # The approver's queue; approval sends the voucher, pays every line and reports the results.
    queue = approver.get(reverse("fiscal:approval_queue")).content.decode()
    assert f'data-request="{request.pk}"' in queue and 'data-action="approve"' in queue
    assert 'data-testid="needs-second"' not in queue
    response = act(approver, request.pk, "approve")
    request.refresh_from_db()
    assert request.state == R.REPORTED and request.voucher_no and request.approved_by == finance.approver
    html = response.content.decode()
    assert 'data-testid="progress"' in html and 'data-testid="paid-count">3<' in html
    assert reverse("fiscal:voucher_pdf", args=[request.pk]) in html
    assert f"/trace/batch/{request.batch_ref}/" in html
    assert f'{reverse("budget:messages")}?key={request.voucher_no}' in html
    assert 'data-testid="receipt-link"' in html  # each settled line links its signed receipt
    assert 'data-action="reconcile"' in html
    assert html.count('class="state state-settled"') == 3
    progress = clerk.get(reverse("fiscal:request_progress", args=[request.pk])).json()
    assert progress == {**progress, "state": "reported", "total": 3, "paid": 3, "open": 0, "done": True,
                        "finished": True, "paid_fen": 3_000_00}
    pdf = clerk.get(reverse("fiscal:voucher_pdf", args=[request.pk]))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    paid_only = clerk.get(detail_url(request.pk), {"lines": "paid"}).content.decode()
    assert paid_only.count('data-state="settled"') == 3
    assert 'data-state="settled"' not in clerk.get(detail_url(request.pk), {"lines": "failed"}).content.decode()

    quota = Quota.objects.get(quota_id=QUOTA_ID)
    assert quota.consumed_fen == 3_000_00 and quota.reserved_fen == 0
    listed = clerk.get(reverse("fiscal:quota_list"), {"q": QUOTA_ID}).content.decode()
    assert "¥3,000.00" in listed

    today = timezone.localdate().isoformat()
    daily = clerk.get(reverse("fiscal:daily_report"), {"day": today}).content.decode()
    assert 'data-func="2080801"' in daily and "¥3,000.00" in daily
    assert reverse("fiscal:daily_report_pdf") in daily
    daily_pdf = clerk.get(reverse("fiscal:daily_report_pdf"), {"day": today})
    assert daily_pdf.status_code == 200 and daily_pdf.content[:5] == b"%PDF-"

    response = act(clerk, request.pk, "reconcile")
    assert state_of(request.pk) == R.RECONCILED
    assert any("对账" in m or "Reconciled" in m for m in messages_of(response))
    assert clerk.get(reverse("fiscal:request_list"), {"state": "reconciled"}).content.decode().count(
        f'data-request="{request.pk}"') == 1


def test_a_refused_new_request_says_the_chosen_payee_file_was_not_kept(finance):
    """A browser cannot give a file input its file back: when the form comes back with an error, the page says
    which file was chosen and that it must be chosen again (the file is optional, so a second submit would
    otherwise make a draft without payees, silently)."""
    clerk = logged_in(finance.clerk)
    response = clerk.post(reverse("fiscal:request_create"), {
        "quota": QUOTA_ID, "pay_type": "1", "title": "补贴", "purpose_code": "SUBSIDY", "exp_eco_code": "3x",
        "file": upload(payee_csv(payee_rows(finance, 1)), "十一月名单.csv")})
    assert response.status_code == 400 and "exp_eco_code" in response.context["form"].errors
    html = response.content.decode()
    note = re.search(r'data-testid="file-not-kept"[^>]*>(.*?)</', html, re.S)
    assert note and "十一月名单.csv" in note.group(1) and "请重新选择" in note.group(1)
    response = clerk.post(reverse("fiscal:request_create"), {
        "quota": QUOTA_ID, "pay_type": "1", "title": "补贴", "purpose_code": "SUBSIDY", "exp_eco_code": "3x"})
    assert 'data-testid="file-not-kept"' not in response.content.decode()  # none was chosen
    assert not PaymentRequest.objects.exists()


def test_a_payee_warned_twice_keeps_both_warnings_and_only_earmark_ones_say_the_operator_will_refuse(finance):
    """A payee whose ID's region is unknown and whom the earmark does not admit shows both warnings; one with
    only the unknown region is not said to be refused."""
    foreigner = ["外籍受助人", "932682198501010017", f.make_wallet_id(operator_code=OPERATOR_CODE)]  # region 93
    admitted = ["外籍受助人乙", "932682198501010025", f.make_wallet_id(operator_code=OPERATOR_CODE)]
    for name, _, wallet_id in (foreigner, admitted):
        finance.ecny.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT01", wallet_class=2, holder_name=name)
    company = organization_payee(finance)
    request = draft(finance, [foreigner, admitted, company],
                    conditions=Conditions(payee_category="WT01", allowed_payees=(admitted[2], company[2])))
    assert request.problem_count == 0, request.problems
    by_line = dict(request.lines.values_list("line_no", "warnings"))
    assert len(by_line[2]) == 2 and "region" in by_line[2][0] and by_line[2][1] == "earmark_payee"
    assert len(by_line[3]) == 1 and "region" in by_line[3][0]
    assert by_line[4] == ["earmark_category"]
    assert selectors.earmark_warned_count(request=request) == 2

    page = logged_in(finance.clerk).get(detail_url(request.pk)).content.decode()
    assert page.count('data-testid="line-warning"') == 2  # the foreigner not admitted and the company
    assert page.count('data-testid="payee-warning"') == 2 and "region" in page


def test_an_earmark_refusal_appears_in_returns_and_is_confirmed_returned(finance):
    people = payee_rows(finance, 2)
    company = organization_payee(finance)
    request = submitted(finance, people + [company], conditions=Conditions(payee_category="WT01"))
    approver, clerk = logged_in(finance.approver), logged_in(finance.clerk)
    warned = clerk.get(detail_url(request.pk)).content.decode()
    assert 'data-testid="line-warning"' in warned  # the clerk was told before paying

    act(approver, request.pk, "approve")
    assert state_of(request.pk) == R.PARTIALLY_PAID
    returns = clerk.get(reverse("fiscal:returns")).content.decode()
    assert f'data-request="{request.pk}"' in returns and "CONDITION_PAYEE_CATEGORY" in returns
    assert returns.count('data-testid="pick-line"') == 1
    page = clerk.get(detail_url(request.pk), {"lines": "failed"}).content.decode()
    assert 'data-testid="line-actions"' in page and "CONDITION_PAYEE_CATEGORY" in page
    refused = request.lines.get(wallet_id=company[2])
    assert 'data-testid="attention-count">1<' in clerk.get("/").content.decode()  # the dashboard asks for a person

    # A reason is required; then the line is returned, the quota gets it back and the results are reported.
    response = clerk.post(reverse("fiscal:request_lines", args=[request.pk]),
                          {"line_ids": [refused.pk], "do": "return", "reason": " ", "from": "returns"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("fiscal:returns")
    assert any("原因" in m or "reason" in m for m in messages_of(response))
    response = clerk.post(reverse("fiscal:request_lines", args=[request.pk]),
                          {"line_ids": [refused.pk, "x"], "do": "return", "reason": "对公钱包不符合专款条件"}, follow=True)
    refused.refresh_from_db()
    assert refused.returned and "对公钱包不符合专款条件" in refused.return_reason
    assert state_of(request.pk) == R.REPORTED
    html = response.content.decode()
    assert 'data-testid="returned-count">1<' in html and 'data-state="returned_line"' in html
    assert 'data-testid="no-returns"' in clerk.get(reverse("fiscal:returns")).content.decode()
    assert 'data-testid="attention-count">0<' in clerk.get("/").content.decode()  # dealt with: asked no more
    quota = Quota.objects.get(quota_id=QUOTA_ID)
    assert (quota.consumed_fen, quota.reserved_fen) == (2_000_00, 0)


def test_the_returns_page_counts_and_sums_every_return_not_only_the_lines_it_lists(finance, monkeypatch):
    """A long run's refused lines are listed in part; the group's count and amount are the whole request's."""
    from fiscal_disbursement import views

    request = submitted(finance, payee_rows(finance, 3), conditions=Conditions(payee_category="WT09"))
    act(logged_in(finance.approver), request.pk, "approve")
    assert state_of(request.pk) == R.FAILED
    monkeypatch.setattr(views, "RETURNS_LISTED", 2)
    page = logged_in(finance.clerk).get(reverse("fiscal:returns")).content.decode()
    assert page.count('data-testid="pick-line"') == 2
    assert 'data-testid="return-count">3<' in page and 'data-testid="return-amount">¥3,000.00<' in page
    assert 'data-testid="returns-cut"' in page


def test_refusals_are_messages_not_errors(finance, monkeypatch):
    clerk = logged_in(finance.clerk)
    request = draft(finance, payee_rows(finance, 1))
    response = act(clerk, request.pk, "reconcile")  # not reported
    assert response.status_code == 200 and messages_of(response)
    response = act(clerk, request.pk, "cancel", reason="  ")
    assert any("原因" in m or "reason" in m for m in messages_of(response))
    response = act(clerk, request.pk, "cancel", reason="名单有误")
    assert state_of(request.pk) == R.CANCELLED and "名单有误" in response.content.decode()
    response = clerk.post(reverse("fiscal:request_payees", args=[request.pk]), {"file": upload(b"x")}, follow=True)
    assert response.status_code == 200 and messages_of(response)  # no longer a draft

    # Not a payee spreadsheet at all: the draft stays, without payees, and says why.
    other = draft(finance, payee_rows(finance, 1))
    response = clerk.post(reverse("fiscal:request_payees", args=[other.pk]),
                          {"file": upload(b"\x00\x01binary", "payees.pdf")}, follow=True)
    assert response.status_code == 200 and any("收款人文件" in m or "payee file" in m for m in messages_of(response))
    answer = api_as(finance.clerk).post(f"{API}/requests/{other.pk}/payees/",
                                        {"file": upload(b"\x00\x01binary", "payees.pdf")}, format="multipart")
    assert answer.status_code == 400 and answer.json()["code"] not in ("", "error") and answer.json()["message"]

    # The form: a purpose code the earmark forbids, a bad wallet id and an unknown quota are said clearly.
    response = clerk.post(reverse("fiscal:request_create"), {
        "quota": QUOTA_ID, "pay_type": "1", "title": "补贴", "purpose_code": "SUBSIDY",
        "allowed_purposes": "PENSION", "allowed_payees": "12345"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "allowed_purposes" in errors and "allowed_payees" in errors
    response = clerk.post(reverse("fiscal:request_create"), {
        "quota": QUOTA_ID, "pay_type": "2", "title": "补贴", "purpose_code": "SUBSIDY"})
    assert response.status_code == 400 and response.context["form"].non_field_errors()

    # The budget system cannot be reached, or refuses: the sync says so.
    class Unreachable:
        def query_quotas(self, **kwargs):
            raise BudgetUnavailable("connection refused")

    class Refusing:
        def query_quotas(self, **kwargs):
            raise BudgetFault("bad credentials", code="AUTH")

    monkeypatch.setattr(services, "_budget", lambda: Unreachable())
    response = clerk.post(reverse("fiscal:quota_sync"), {"fiscal_year": "2026"}, follow=True)
    assert response.status_code == 200 and any("connection refused" in m for m in messages_of(response))
    monkeypatch.setattr(services, "_budget", lambda: Refusing())
    response = clerk.post(reverse("fiscal:quota_sync"), {}, follow=True)
    assert any("bad credentials" in m for m in messages_of(response))
    api = api_as(finance.clerk)
    answer = api.post(f"{API}/quotas/sync/", {}, format="json")
    assert answer.status_code == 502 and answer.json()["code"] == "budget_fault"
    monkeypatch.setattr(services, "_budget", lambda: Unreachable())
    answer = api.post(f"{API}/quotas/sync/", {}, format="json")
    assert answer.status_code == 503 and answer.json()["code"] == "budget_unavailable"


def test_quota_sync_and_filters(finance):
    clerk = logged_in(finance.clerk)
    finance.budget.admin.create_quota(
        quota_id="ZB2026-0099", pay_type_code="1", amount_fen=50_000_00, adm_div_code="320100", fiscal_year=2026,
        agency_code="101009", agency_name="示范市教育局", exp_func_code="2050201", exp_eco_code="30308",
        fund_type_code="1")
    response = clerk.post(reverse("fiscal:quota_sync"), {"fiscal_year": "2026"}, follow=True)
    assert any("3" in m for m in messages_of(response))
    page = clerk.get(reverse("fiscal:quota_list"), {"classification": "205"}).content.decode()
    assert 'data-quota="ZB2026-0099"' in page and f'data-quota="{QUOTA_ID}"' not in page
    page = clerk.get(reverse("fiscal:quota_list"), {"agency": "教育"}).content.decode()
    assert 'data-quota="ZB2026-0099"' in page and f'data-quota="{QUOTA_ID}"' not in page
    page = clerk.get(reverse("fiscal:quota_list"), {"fiscal_year": "2025"}).content.decode()
    assert 'data-quota="' not in page
    listed = api_as(finance.clerk).get(f"{API}/quotas/", {"q": "ZB2026-0099"}).json()
    assert [q["quota_id"] for q in listed["results"]] == ["ZB2026-0099"]
    assert listed["results"][0]["available_fen"] == 50_000_00
    assert api_as(finance.approver).post(f"{API}/quotas/sync/", {}, format="json").json()["code"] == "role_required"
    assert logged_in(finance.approver).post(reverse("fiscal:quota_sync")).status_code == 403


def test_voucher_held_up_by_the_budget_system_is_sent_again_from_the_page_and_the_api(finance, monkeypatch):
    request = submitted(finance, payee_rows(finance, 2))
    real = services._budget()

    class VoucherUnreachable:
        def __getattr__(self, name):
            return getattr(real, name)

        def submit_voucher(self, voucher):
            raise BudgetUnavailable("read timeout")

    monkeypatch.setattr(services, "_budget", lambda: VoucherUnreachable())
    approver = logged_in(finance.approver)
    response = act(approver, request.pk, "approve")
    assert state_of(request.pk) == R.APPROVED
    assert any("read timeout" in m for m in messages_of(response))
    html = response.content.decode()
    assert 'data-testid="voucher-error"' in html and 'data-action="resend_voucher"' in html
    response = act(approver, request.pk, "resend_voucher")  # still unreachable
    assert state_of(request.pk) == R.APPROVED and messages_of(response)
    answer = api_as(finance.clerk).post(f"{API}/requests/{request.pk}/resend-voucher/")
    assert answer.status_code == 200 and answer.json()["state"] == "approved" and answer.json()["voucher_error"]

    monkeypatch.setattr(services, "_budget", lambda: real)
    response = act(logged_in(finance.clerk), request.pk, "resend_voucher")
    assert state_of(request.pk) == R.REPORTED
    assert any("预算" in m or "budget" in m for m in messages_of(response))
    answer = api_as(finance.clerk).post(f"{API}/requests/{request.pk}/resend-voucher/")
    assert answer.status_code == 409 and answer.json()["code"] == "invalid_state"


def test_progress_while_paying_is_polled_and_moves_the_request_on_when_done(finance, monkeypatch):
    """While the run is open the page carries the polling script; the progress endpoint finishes a run
    whose lines are all decided, without waiting for the periodic task."""
    request = submitted(finance, payee_rows(finance, 2))
    monkeypatch.setattr(services, "finish_request_if_done",
                        lambda *, request_id, now: PaymentRequest.objects.get(pk=request_id))
    act(logged_in(finance.approver), request.pk, "approve")
    assert state_of(request.pk) == R.PAYING
    clerk = logged_in(finance.clerk)
    page = clerk.get(detail_url(request.pk)).content.decode()
    assert reverse("fiscal:request_progress", args=[request.pk]) in page and "followProgress(panel.dataset.progressUrl" in page
    held = clerk.get(reverse("fiscal:request_progress", args=[request.pk])).json()
    assert held == {**held, "state": "paying", "finished": False, "paid": 2, "open": 0, "done": True}
    monkeypatch.undo()
    moved = clerk.get(reverse("fiscal:request_progress", args=[request.pk])).json()
    assert moved == {**moved, "state": "reported", "finished": True, "paid": 2}
    page = clerk.get(detail_url(request.pk)).content.decode()
    assert "followProgress(panel.dataset.progressUrl" not in page


def test_paying_waits_for_a_short_payer_account_and_starts_from_the_button(finance):
    """The budget unit's zero-balance account holds 1,500 yuan: a 2,000-yuan authorised payment waits with
    the reason shown until the account is topped up and a clerk starts paying."""
    request = submitted(finance, payee_rows(finance, 2), pay_type="2", quota_id=UNIT_QUOTA_ID)
    response = act(logged_in(finance.approver), request.pk, "approve")
    assert state_of(request.pk) == R.VOUCHER_ISSUED
    html = response.content.decode()
    assert 'data-testid="voucher-error"' in html and 'data-action="pay"' in html
    assert any("余额不足" in m or "short" in m for m in messages_of(response))
    finance.ecny.admin.fund(wallet_id=finance.unit_wallet.wallet_id, amount_fen=1_000_00)
    response = act(logged_in(finance.clerk), request.pk, "pay")
    assert state_of(request.pk) == R.REPORTED
    assert 'data-testid="paid-count">2<' in response.content.decode()
    answer = api_as(finance.clerk).post(f"{API}/requests/{request.pk}/pay/")
    assert answer.status_code == 200 and answer.json()["state"] == "reported"  # a second start changes nothing


# ---------------------------------------------------------------------------------------------
# Maker-checker
# ---------------------------------------------------------------------------------------------


def test_maker_checker_refusals_are_shown_clearly(finance):
    both = f.make_user(role=roles.FINANCE_CLERK, organization=finance.bureau)
    both.groups.add(*finance.approver.groups.all())
    finance.clerk = both
    request = submitted(finance, payee_rows(finance, 1))
    page = logged_in(both).get(detail_url(request.pk)).content.decode()
    assert 'data-action="approve"' not in page and 'data-testid="maker-checker-note"' in page
    response = act(logged_in(both), request.pk, "approve")
    assert any("经办人不能审批自己准备的业务" in m for m in messages_of(response))
    answer = api_as(both).post(f"{API}/requests/{request.pk}/approve/")
    assert answer.status_code == 403 and answer.json()["code"] == "maker_checker"
    assert state_of(request.pk) == R.SUBMITTED


def test_above_the_threshold_the_queue_shows_the_first_approver_and_needs_another(finance, settings):
    settings.DISBURSEMENT_SECOND_APPROVAL_FEN = 1_500_00
    request = submitted(finance, payee_rows(finance, 2))  # 2,000 yuan
    first, second = logged_in(finance.approver), logged_in(finance.approver2)
    queue = first.get(reverse("fiscal:approval_queue")).content.decode()
    assert 'data-testid="needs-second"' in queue and 'data-testid="first-approver"' not in queue
    response = first.post(reverse("fiscal:request_action", args=[request.pk, "approve"]), {"from": "queue"},
                          follow=True)
    assert response.redirect_chain[-1][0] == reverse("fiscal:approval_queue")
    assert state_of(request.pk) == R.SUBMITTED
    assert 'data-testid="maker-checker-note"' in response.content.decode()  # no second approval from the first
    response = act(first, request.pk, "approve")
    assert any("同一人不能审批两次" in m for m in messages_of(response))
    queue = second.get(reverse("fiscal:approval_queue")).content.decode()
    assert 'data-testid="first-approver"' in queue and finance.approver.username in queue
    detail = second.get(detail_url(request.pk)).content.decode()
    assert 'data-testid="first-approval"' in detail and 'data-action="approve"' in detail
    act(second, request.pk, "approve")
    request.refresh_from_db()
    assert request.state == R.REPORTED
    assert (request.first_approved_by, request.approved_by) == (finance.approver, finance.approver2)


def test_reject_rework_and_resubmit_through_pages(finance):
    request = submitted(finance, payee_rows(finance, 1))
    approver, clerk = logged_in(finance.approver), logged_in(finance.clerk)
    response = approver.post(reverse("fiscal:request_action", args=[request.pk, "reject"]),
                             {"reason": "", "from": "queue"}, follow=True)
    assert state_of(request.pk) == R.SUBMITTED and messages_of(response)
    act(approver, request.pk, "reject", reason="缺少批复文件")
    assert state_of(request.pk) == R.REJECTED
    page = clerk.get(detail_url(request.pk)).content.decode()
    assert "缺少批复文件" in page and 'data-action="rework"' in page
    act(clerk, request.pk, "rework")
    assert state_of(request.pk) == R.DRAFT
    act(clerk, request.pk, "submit")
    assert state_of(request.pk) == R.SUBMITTED


# ---------------------------------------------------------------------------------------------
# Roles and scoping
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["clerk", "approver", "auditor", "admin"])
def test_pages_render_for_each_role(finance, auditor, admin_user, who):
    request = draft(finance, payee_rows(finance, 2))
    user = {"clerk": finance.clerk, "approver": finance.approver, "auditor": auditor, "admin": admin_user}[who]
    client = logged_in(user)
    pages = [reverse("fiscal:quota_list"), reverse("fiscal:request_list"), reverse("fiscal:returns"),
             reverse("fiscal:daily_report"), detail_url(request.pk),
             reverse("fiscal:request_progress", args=[request.pk])]
    for url in pages:
        assert client.get(url).status_code == 200, url
    queue = client.get(reverse("fiscal:approval_queue")).status_code
    assert queue == (403 if who == "clerk" else 200)
    create = client.get(reverse("fiscal:request_create")).status_code
    assert create == (200 if who in ("clerk", "admin") else 403)
    nav = client.get(reverse("fiscal:request_list")).content.decode()
    assert 'data-nav="fiscal_requests"' in nav and 'data-nav="fiscal_quotas"' in nav


def test_another_bureau_and_employer_users_never_see_or_act_on_a_request(finance, other_bureau):
    request = submitted(finance, payee_rows(finance, 1))
    for key in ("clerk", "approver"):
        user = other_bureau[key]
        client = logged_in(user)
        for url in (detail_url(request.pk), reverse("fiscal:request_progress", args=[request.pk]),
                    reverse("fiscal:voucher_pdf", args=[request.pk]),
                    reverse("fiscal:error_report", args=[request.pk, "csv"])):
            assert client.get(url).status_code == 404, url
        assert client.post(reverse("fiscal:request_action", args=[request.pk, "approve"])).status_code == 404
        assert client.post(reverse("fiscal:request_action", args=[request.pk, "cancel"]),
                           {"reason": "x"}).status_code == 404
        assert f'data-request="{request.pk}"' not in client.get(reverse("fiscal:request_list")).content.decode()
        api = api_as(user)
        assert api.get(f"{API}/requests/{request.pk}/").status_code == 404
        answer = api.post(f"{API}/requests/{request.pk}/approve/")
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"
        assert api.get(f"{API}/requests/").json()["count"] == 0
    daily = logged_in(other_bureau["clerk"]).get(reverse("fiscal:daily_report"),
                                                 {"organization": finance.bureau.pk})
    assert daily.status_code == 404

    employer = other_bureau["employer_operator"]
    client = logged_in(employer)
    for url in (reverse("fiscal:request_list"), reverse("fiscal:quota_list"), detail_url(request.pk),
                reverse("fiscal:daily_report")):
        assert client.get(url).status_code == 403, url
    assert client.post(reverse("fiscal:request_action", args=[request.pk, "approve"])).status_code == 403
    api = api_as(employer)
    for url in (f"{API}/requests/", f"{API}/requests/{request.pk}/", f"{API}/quotas/", f"{API}/daily-report/"):
        answer = api.get(url)
        assert answer.status_code == 403 and answer.json()["code"] == "role_required", url
    assert state_of(request.pk) == R.SUBMITTED


def test_auditors_read_everything_and_change_nothing(finance, auditor):
    request = submitted(finance, payee_rows(finance, 1))
    client = logged_in(auditor)
    page = client.get(detail_url(request.pk)).content.decode()
    assert 'data-testid="request-actions"' not in page and 'data-action=' not in page
    queue = client.get(reverse("fiscal:approval_queue")).content.decode()
    assert f'data-request="{request.pk}"' in queue and 'data-action="approve"' not in queue
    assert client.post(reverse("fiscal:request_action", args=[request.pk, "approve"])).status_code == 403
    assert client.post(reverse("fiscal:quota_sync")).status_code == 403
    api = api_as(auditor)
    assert api.get(f"{API}/requests/{request.pk}/").json()["available_actions"] == []
    answer = api.post(f"{API}/requests/{request.pk}/cancel/", {"reason": "x"}, format="json")
    assert answer.status_code == 403 and answer.json()["code"] == "read_only_role"
    report = api.get(f"{API}/daily-report/", {"organization": finance.bureau.pk})
    assert report.status_code == 200 and report.json()["organization_name"] == finance.bureau.name
    assert state_of(request.pk) == R.SUBMITTED


def test_csrf_is_enforced_on_every_form(finance):
    request = draft(finance, payee_rows(finance, 1))
    client = logged_in(finance.clerk, enforce_csrf_checks=True)
    page = client.get(detail_url(request.pk)).content.decode()
    forms = re.findall(r'<form method="post".*?</form>', page, re.S)
    assert forms and all("csrfmiddlewaretoken" in form for form in forms)
    assert "csrfmiddlewaretoken" in client.get(reverse("fiscal:request_create")).content.decode()
    assert client.post(reverse("fiscal:request_action", args=[request.pk, "submit"])).status_code == 403
    assert client.post(reverse("fiscal:request_create"), {"quota": QUOTA_ID}).status_code == 403
    assert client.post(reverse("fiscal:quota_sync")).status_code == 403
    # The API with a session (no token) needs the CSRF token too.
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(finance.clerk)
    assert api.post(f"{API}/requests/{request.pk}/submit/").status_code == 403
    assert state_of(request.pk) == R.DRAFT


# ---------------------------------------------------------------------------------------------
# The whole flow, by the API
# ---------------------------------------------------------------------------------------------


def test_create_fix_submit_approve_and_pay_through_the_api(finance):
    rows = payee_rows(finance, 3)
    company = organization_payee(finance)
    clerk, approver = api_as(finance.clerk), api_as(finance.approver)
    broken = [list(r) for r in rows]
    broken[2][2] = f.make_wallet_id(operator_code=rows[0][2][:3])
    answer = clerk.post(f"{API}/requests/", {
        "quota_id": QUOTA_ID, "pay_type": "1", "title": "2026年冬季取暖补贴", "payee_category": "WT01",
        "allowed_purposes": "SUBSIDY", "file": upload(payee_csv(broken)),
    }, format="multipart")
    assert answer.status_code == 201, answer.content
    created = answer.json()
    url = f"{API}/requests/{created['id']}"
    assert created["state"] == "draft" and created["problems"][0]["code"] == "wallet_unknown"
    assert created["conditions"]["payee_category"] == "WT01" and created["available_actions"] == ["cancel"]
    report = clerk.get(f"{url}/error-report/", {"fmt": "csv"})
    assert report.status_code == 200 and created["problems"][0]["message"] in report.content.decode("utf-8-sig")
    assert clerk.get(f"{url}/error-report/", {"fmt": "pdf"}).json()["code"] == "invalid"
    answer = clerk.post(f"{url}/submit/")
    assert answer.status_code == 409 and answer.json()["code"] == "payees_not_ready"

    fixed = clerk.post(f"{url}/payees/", {"file": upload(payee_csv(rows + [company]))}, format="multipart").json()
    assert fixed["problem_count"] == 0 and fixed["line_count"] == 4 and fixed["total_fen"] == 4_000_00
    attachment = clerk.post(f"{url}/attachments/", {"file": upload(b"memo", "memo.txt")}, format="multipart")
    assert attachment.status_code == 201 and attachment.json()["filename"] == "memo.txt"
    empty = clerk.post(f"{url}/attachments/", {"file": upload(b"", "empty.txt")}, format="multipart")
    assert empty.status_code == 400
    assert clerk.post(f"{url}/submit/").json()["state"] == "submitted"
    answer = clerk.post(f"{url}/approve/")
    assert answer.status_code == 403 and answer.json()["code"] in ("role_required", "not_an_approver")
    answer = approver.post(f"{url}/submit/")
    assert answer.status_code in (403, 409)
    approved = approver.post(f"{url}/approve/").json()
    assert approved["state"] == "partially_paid" and approved["voucher_no"]
    assert approved["approved_by"] == finance.approver.username

    progress = clerk.get(f"{url}/progress/").json()
    assert progress == {**progress, "state": "partially_paid", "total": 4, "paid": 3, "failed": 1, "open": 0,
                        "done": True, "finished": True}
    lines = clerk.get(f"{url}/lines/", {"limit": 2}).json()
    assert lines["count"] == 4 and len(lines["results"]) == 2 and lines["next"]
    first = lines["results"][0]
    assert first["state"] == "settled" and "*" in first["id_number"] and "*" in first["wallet_id"]
    assert first["id_number"] != rows[0][1] and first["payee_name"] != rows[0][0]
    failed = clerk.get(f"{url}/lines/", {"status": "failed"}).json()["results"]
    assert [line["id"] for line in failed] == [PaymentLine.objects.get(wallet_id=company[2]).pk]
    assert failed[0]["refusal"].startswith("CONDITION_PAYEE_CATEGORY")
    assert failed[0]["id_number"] == company[1]  # an organization's credit code is not personal data
    assert clerk.get(f"{url}/lines/", {"status": "nonsense"}).status_code == 400

    # A retry is refused again by the same condition; returning it reports the request.
    retried = clerk.post(f"{url}/retry/", {"line_ids": [failed[0]["id"]]}, format="json").json()
    assert retried["state"] == "partially_paid"
    again = clerk.get(f"{url}/lines/", {"status": "failed"}).json()["results"]
    assert again[0]["attempts"] == 2
    answer = clerk.post(f"{url}/return/", {"line_ids": [failed[0]["id"]]}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid" and "reason" in answer.json()["details"]
    answer = clerk.post(f"{url}/return/", {"line_ids": [first["id"]], "reason": "x"}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "line_not_failed"
    reported = clerk.post(f"{url}/return/", {"line_ids": [failed[0]["id"]], "reason": "非个人钱包"},
                          format="json").json()
    assert reported["state"] == "reported" and reported["returned_count"] == 1 and reported["paid_fen"] == 3_000_00
    pdf = clerk.get(f"{url}/voucher-pdf/")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    reconciled = approver.post(f"{url}/reconcile/").json()
    assert reconciled["state"] == "reconciled"
    answer = clerk.post(f"{url}/cancel/", {"reason": "too late"}, format="json")
    assert answer.status_code == 409 and answer.json()["code"] == "invalid_state"

    listed = clerk.get(f"{API}/requests/", {"state": "reconciled"}).json()
    assert [r["id"] for r in listed["results"]] == [created["id"]]
    assert clerk.get(f"{API}/requests/", {"state": "nonsense"}).status_code == 400
    daily = clerk.get(f"{API}/daily-report/", {"day": timezone.localdate().isoformat()}).json()
    assert daily["paid_count"] == 3 and daily["paid_fen"] == 3_000_00 and daily["returned_count"] == 1
    assert daily["rows"][0]["exp_func_code"] == "2080801"
    daily_pdf = clerk.get(daily["pdf_url"])
    assert daily_pdf.status_code == 200 and daily_pdf.content[:5] == b"%PDF-"
    assert clerk.post(f"{API}/quotas/sync/", {"fiscal_year": 2026}, format="json").json()["received"] == 2
    quota = clerk.get(f"{API}/quotas/", {"q": QUOTA_ID}).json()["results"][0]
    assert (quota["consumed_fen"], quota["reserved_fen"]) == (3_000_00, 0)
    assert (quota["budget_used_fen"], quota["budget_reserved_fen"]) == (3_000_00, 0)  # both sides agree


def test_the_request_api_masks_the_allowed_payees_wallet_ids(finance):
    """The earmark's allowed payees are persons' wallets: the page counts them, the lines mask every wallet id,
    and so does the request in the API."""
    rows = payee_rows(finance, 2)
    request = draft(finance, rows, conditions=Conditions(allowed_payees=tuple(w for _, _, w in rows),
                                                          payee_category="WT01"))
    answer = api_as(finance.clerk).get(f"{API}/requests/{request.pk}/")
    assert answer.json()["conditions"]["allowed_payees"] == [mask_wallet_id(w) for _, _, w in rows]
    assert [w for _, _, w in rows if w in answer.content.decode()] == []


def test_an_administrator_of_no_bureau_is_refused_a_new_request_clearly(finance, admin_user):
    """An administrator acts on every bureau's requests, but a new request is prepared for the preparer's own
    bureau: without one, a 403 saying so (not a 500 from a request of no organization), on the API and the page."""
    client = api_as(admin_user)
    client.raise_request_exception = False
    answer = client.post(f"{API}/requests/", {"quota_id": UNIT_QUOTA_ID, "pay_type": "2", "title": "补贴"},
                         format="multipart")
    assert answer.status_code == 403 and answer.json()["code"] == "no_organization"
    response = logged_in(admin_user).post(reverse("fiscal:request_create"), {
        "quota": UNIT_QUOTA_ID, "pay_type": "2", "title": "补贴", "purpose_code": "SUBSIDY"})
    assert response.status_code == 400 and "no finance bureau" in response.context["form"].non_field_errors()[0]
    assert not PaymentRequest.objects.exists()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_a_daily_report_of_a_day_out_of_range_is_refused_not_a_server_error(finance, day):
    """The report's day becomes the instants that bound it; for these days no datetime holds them (500)."""
    page = logged_in(finance.clerk, raise_request_exception=False)
    assert page.get(reverse("fiscal:daily_report"), {"day": day}).status_code == 404  # as any day that is not one
    assert page.get(reverse("fiscal:daily_report_pdf"), {"day": day}).status_code == 404
    api = api_as(finance.clerk)
    api.raise_request_exception = False
    answer = api.get(f"{API}/daily-report/", {"day": day})
    assert answer.status_code == 400 and "day" in answer.json()["details"]


def test_api_reject_rework_cancel_and_error_codes(finance):
    clerk, approver = api_as(finance.clerk), api_as(finance.approver)
    answer = clerk.post(f"{API}/requests/", {"quota_id": "NO-SUCH", "pay_type": "1", "title": "x"},
                        format="multipart")
    assert answer.status_code == 400 and answer.json()["code"] == "quota_not_found"
    answer = clerk.post(f"{API}/requests/", {"quota_id": QUOTA_ID, "pay_type": "1", "title": "x",
                                             "allowed_payees": "123"}, format="multipart")
    assert answer.status_code == 400 and "allowed_payees" in answer.json()["details"]
    answer = approver.post(f"{API}/requests/", {"quota_id": QUOTA_ID, "pay_type": "1", "title": "x"},
                           format="multipart")
    assert answer.status_code == 403 and answer.json()["code"] == "role_required"

    request = submitted(finance, payee_rows(finance, 1))
    url = f"{API}/requests/{request.pk}"
    answer = approver.post(f"{url}/reject/", {}, format="json")
    assert answer.status_code == 400 and answer.json()["code"] == "invalid"
    assert approver.post(f"{url}/reject/", {"reason": "金额有误"}, format="json").json()["state"] == "rejected"
    answer = clerk.post(f"{url}/attachments/", {"file": upload(b"memo", "m.txt")}, format="multipart")
    assert answer.status_code == 201
    assert clerk.post(f"{url}/rework/").json()["state"] == "draft"
    answer = clerk.post(f"{url}/reconcile/")
    assert answer.status_code == 409 and answer.json()["code"] == "not_reported"
    assert clerk.get(f"{url}/voucher-pdf/").json()["code"] == "no_voucher"
    cancelled = clerk.post(f"{url}/cancel/", {"reason": "重复申请"}, format="json").json()
    assert cancelled["state"] == "cancelled" and cancelled["reason"] == "重复申请"
    answer = clerk.post(f"{url}/payees/", {"file": upload(payee_csv([]))}, format="multipart")
    assert answer.status_code == 409 and answer.json()["code"] == "not_draft"
    assert clerk.get(f"{API}/requests/999999/").status_code == 404


def test_the_quota_stream_a_trace_links_to_opens_for_the_bureau_that_drew_on_it(finance, other_bureau):
    request = approved(finance, payee_rows(finance, 1))
    quota_stream = reverse("trace:document", args=[f"quota:{QUOTA_ID}"])
    clerk = logged_in(finance.clerk)
    assert quota_stream in clerk.get(reverse("trace:batch", args=[request.batch_ref])).content.decode()
    page = clerk.get(quota_stream)  # the quota's movements that name this bureau's requests
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("data-event-id=") >= 2 and f"quota:{QUOTA_ID}" in html and request.batch_ref in html
    assert logged_in(other_bureau["clerk"]).get(quota_stream).status_code == 404  # none of its requests drew on it


@pytest.mark.parametrize("eco_code", ["3030501", "30x05", "3030"])
def test_an_economic_classification_the_voucher_cannot_carry_is_refused_when_the_request_is_made(finance, eco_code):
    """budget.xsd takes 3 or 5 digits (类 or 款; 3030 is neither): a request made with another code would be approved and reserved, and its
    voucher refused by every delivery as not valid, for ever. The API and the page refuse it at once."""
    answer = api_as(finance.clerk).post(f"{API}/requests/", {
        "quota_id": QUOTA_ID, "pay_type": "1", "title": "2026年冬季取暖补贴", "exp_eco_code": eco_code,
    }, format="multipart")
    assert answer.status_code == 400 and answer.json()["code"] == "bad_eco_code"
    page = logged_in(finance.clerk).post(reverse("fiscal:request_create"), {
        "quota": QUOTA_ID, "pay_type": "1", "title": "2026年冬季取暖补贴", "purpose_code": "SUBSIDY",
        "exp_eco_code": eco_code})
    assert page.status_code == 400 and page.context["form"].errors["exp_eco_code"]
    assert not PaymentRequest.objects.exists()


def test_an_operator_that_cannot_be_reached_is_said_so_and_changes_nothing(finance, settings):
    """Checking a payee file's wallets and the payer account's balance ask the e-CNY operator: when it cannot be
    reached the page says so and the API answers 503, not a server error, and the draft keeps what it had."""
    from adapters.ecny.client import get_operator_client

    rows = payee_rows(finance, 2)
    request = draft(finance, rows)
    authorised = submitted(finance, payee_rows(finance, 1), pay_type="2", quota_id=UNIT_QUOTA_ID,
                           amount_yuan="2000.00")  # more than the unit's account holds: paying waits
    services.approve_request(request_id=authorised.pk, user=finance.approver, now=timezone.now())
    assert state_of(authorised.pk) == R.VOUCHER_ISSUED
    settings.ECNY_OPERATOR_URL = "http://127.0.0.1:9/"  # nobody listens
    get_operator_client.cache_clear()
    try:
        clerk = logged_in(finance.clerk)
        response = clerk.post(reverse("fiscal:request_payees", args=[request.pk]),
                              {"file": upload(payee_csv(rows[:1]))}, follow=True)
        assert response.status_code == 200 and any("运营机构" in m or "operator" in m for m in messages_of(response))
        answer = api_as(finance.clerk).post(f"{API}/requests/{request.pk}/payees/",
                                            {"file": upload(payee_csv(rows[:1]))}, format="multipart")
        assert answer.status_code == 503 and answer.json()["code"] == "operator_unavailable"
        response = act(clerk, authorised.pk, "pay")
        assert response.status_code == 200 and any("运营机构" in m or "operator" in m for m in messages_of(response))
        answer = api_as(finance.clerk).post(f"{API}/requests/{authorised.pk}/pay/")
        assert answer.status_code == 503 and answer.json()["code"] == "operator_unavailable"
    finally:
        get_operator_client.cache_clear()
    request.refresh_from_db()
    assert (request.line_count, request.lines.count()) == (2, 2) and state_of(authorised.pk) == R.VOUCHER_ISSUED
