"""Fiscal disbursement in a real browser: a finance clerk prepares an earmarked subsidy (personal wallets
only) whose payee file holds a company's corporate wallet; a second finance user approves; the voucher
goes to the sandbox budget system and the lines are paid, with the progress shown; the company's line
comes back refused by the earmark condition, the clerk confirms it returned with a reason, the request
reaches "reported", and its trace runs from the quota through the request and its transfers to the
payees' wallets. Celery runs eagerly: approving pays within the request."""
import os
import re

import pytest
from django.utils import timezone

from fiscal_disbursement import services
from fiscal_disbursement.models import PaymentRequest
from fiscal_disbursement.models import RequestState as R
from tests import factories as f
from tests.fiscal_disbursement.helpers import payee_csv
from treasury.access import roles
from treasury.models import LedgerAccount, Organization, Wallet
from treasury.services.wallets import register_wallet

pytestmark = [pytest.mark.e2e]
OPERATOR_CODE = "200"
QUOTA_ID = "ZB2026-E2E1"
PEOPLE = 3


@pytest.fixture
def bureau(transactional_db, ecny_sandbox, budget_sandbox):
    """A finance bureau with a clerk and an approver, its fiscal zero-balance wallet funded at the operator,
    a quota of 1 million yuan at the budget system (synchronised), three people and a company as payees."""
    operator = f.make_operator(code=OPERATOR_CODE)
    org = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU, name="示范市财政局")
    agency = f.make_organization(org_type=Organization.Type.BUDGET_UNIT, name="示范市民政局", code="101001")
    wallet = register_wallet(wallet_id="2000000000000001", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                             holder_org=org, holder_name=org.name, account_kind=LedgerAccount.Kind.FISCAL_ZERO_BALANCE)
    ecny_sandbox.admin.open_wallet(wallet_id=wallet.wallet_id, wallet_type="WT09", holder_name=org.name,
                                   balance_fen=100_000_000_00)
    budget_sandbox.admin.create_quota(
        quota_id=QUOTA_ID, pay_type_code="1", amount_fen=1_000_000_00, adm_div_code="320100", fiscal_year=2026,
        agency_code="101001", agency_name=agency.name, exp_func_code="2080801", exp_eco_code="30305",
        fund_type_code="1")
    services.sync_quotas(now=timezone.now())
    people = [[f"受助人{n}", f.make_resident_id(), f.make_wallet_id(operator_code=OPERATOR_CODE)]
              for n in range(1, PEOPLE + 1)]
    ecny_sandbox.admin.open_wallets(wallets=[
        {"wallet_id": w, "wallet_type": "WT01", "wallet_class": 2, "holder_name": name} for name, _, w in people
    ])
    company = ["示范养老服务有限公司", f.make_uscc(), f.make_wallet_id(operator_code=OPERATOR_CODE)]
    ecny_sandbox.admin.open_wallet(wallet_id=company[2], wallet_type="WT09", holder_name=company[0])
    return {
        "payees": people + [company], "people": people, "company": company, "ecny": ecny_sandbox,
        "clerk": f.make_user(role=roles.FINANCE_CLERK, organization=org, first_name="小陈"),
        "approver": f.make_user(role=roles.FINANCE_APPROVER, organization=org, first_name="老周"),
    }


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def _state(page) -> str:
    return page.locator("[data-testid=request-state]").get_attribute("data-state")


def test_earmarked_subsidy_paid_refused_line_returned_and_traced(bureau, live_server, chromium_browser,
                                                                  browser_page, tmp_path, monkeypatch):
    page, base = browser_page, live_server.url
    _log_in(page, base, bureau["clerk"].username)

    # 1. The clerk finds the quota and starts a request from it.
    page.click("nav.sidenav a[data-nav=fiscal_quotas]")
    page.wait_for_url(f"{base}/fiscal/quotas/")
    row = page.locator(f"tr[data-quota='{QUOTA_ID}']")
    assert "¥1,000,000.00" in row.locator("[data-testid=available]").inner_text()
    row.locator("[data-testid=new-request]").click()
    page.wait_for_url(re.compile(rf"{re.escape(base)}/fiscal/new/"))
    assert page.locator("[data-testid=template-xlsx]").is_visible()
    assert page.locator("#id_quota").input_value() == QUOTA_ID
    page.select_option("#id_pay_type", "1")
    page.fill("#id_title", "2026年冬季困难群众取暖补贴")
    page.fill("#id_purpose_code", "SUBSIDY")
    page.select_option("#id_payee_category", "WT01")  # personal wallets only: the company will be refused
    page.fill("#id_allowed_purposes", "SUBSIDY")
    page.set_input_files("#id_file", files=[{"name": "收款人.csv", "mimeType": "text/csv",
                                             "buffer": payee_csv(bureau["payees"], "800.00")}])
    assert page.locator("[data-testid=chosen-file]").inner_text() == "收款人.csv"
    page.click("[data-testid=create-submit]")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/fiscal/\d+/$"))
    assert _state(page) == "draft"
    assert page.locator("[data-testid=line-count]").inner_text() == str(PEOPLE + 1)
    assert page.locator("[data-testid=line-warning]").count() == 1  # warned before paying
    assert page.locator("[data-testid=condition-category]").inner_text().endswith("(WT01)")
    page.click("button[data-action=submit]")
    page.wait_for_load_state()
    assert _state(page) == "submitted"
    assert page.locator("button[data-action=approve]").count() == 0  # the preparer cannot approve
    request = PaymentRequest.objects.get()

    # 2. Another finance user approves from the queue; paying runs and the progress shows it.
    context = chromium_browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    approver = context.new_page()
    try:
        _log_in(approver, base, bureau["approver"].username)
        approver.click("nav.sidenav a[data-nav=fiscal_approvals]")
        approver.wait_for_url(f"{base}/fiscal/approvals/")
        approver.click(f"tr[data-request='{request.pk}'] a")
        approver.wait_for_url(f"{base}/fiscal/{request.pk}/")
        # Hold the run open after the payments (as while a worker still pays) to watch the page follow it.
        monkeypatch.setattr(services, "finish_request_if_done",
                            lambda *, request_id, now: PaymentRequest.objects.get(pk=request_id))
        approver.click("button[data-action=approve]")
        approver.wait_for_selector("[data-testid=request-state][data-state=paying]")
        assert approver.locator("[data-testid=paid-count]").inner_text() == str(PEOPLE)
        assert approver.locator("[data-testid=open-count]").inner_text() == "0"
        monkeypatch.undo()  # the run may finish now: the page's next poll moves it on and the page reloads
        approver.wait_for_selector("[data-testid=request-state][data-state=partially_paid]")  # no reload by us
        progress = approver.locator("[data-testid=progress]")
        assert progress.locator("[data-testid=paid-count]").inner_text() == str(PEOPLE)
        assert progress.locator("[data-testid=total-count]").inner_text() == str(PEOPLE + 1)
        assert progress.locator("[data-testid=failed-count]").inner_text() == "1"
        assert progress.locator("[data-testid=open-count]").inner_text() == "0"
        assert approver.locator("[data-testid=voucher-no]").inner_text().startswith("3201002026")
        voucher = approver.request.get(f"{base}{approver.locator('[data-testid=voucher-pdf]').get_attribute('href')}")
        assert voucher.status == 200 and voucher.body()[:5] == b"%PDF-"
        if os.environ.get("E2E_SCREENSHOT_DIR"):
            approver.screenshot(path=os.path.join(os.environ["E2E_SCREENSHOT_DIR"], "fiscal-request.png"),
                                full_page=True)
    finally:
        context.close()

    # 3. The clerk handles the return: the operator's refusal is shown; a reason is given.
    page.click("nav.sidenav a[data-nav=fiscal_returns]")
    page.wait_for_url(f"{base}/fiscal/returns/")
    group = page.locator(f"[data-testid=return-group][data-request='{request.pk}']")
    assert "CONDITION_PAYEE_CATEGORY" in group.locator("[data-testid=refusal]").inner_text()
    assert group.locator("tbody tr").count() == 1
    group.locator("[data-testid=pick-line]").check()
    group.locator("input[name=reason]").fill("收款人为对公钱包，不符合专款专用条件")
    group.locator("button[data-action=return]").click()
    page.wait_for_url(f"{base}/fiscal/returns/")
    assert page.locator("[data-testid=no-returns]").is_visible()

    page.goto(f"{base}/fiscal/{request.pk}/")
    assert _state(page) == "reported"
    assert page.locator("[data-testid=returned-count]").inner_text() == "1"
    assert page.locator("table[data-testid=lines] .state-settled").count() == PEOPLE
    # The operator's refusal once, then the clerk's reason (stored together for the budget system).
    assert page.locator("[data-testid=return-reason]").inner_text() == "退回原因：收款人为对公钱包，不符合专款专用条件"
    assert "CONDITION_PAYEE_CATEGORY" in page.locator("table[data-testid=lines] [data-testid=refusal]").inner_text()
    shot = tmp_path / "fiscal-request.png"
    page.screenshot(path=str(shot), full_page=True)

    # 4. The trace: the quota's reservation, the request's steps, every transfer and the wallets reached.
    page.click("[data-testid=trace-link]")
    page.wait_for_url(f"{base}/trace/batch/{request.batch_ref}/")
    timeline = page.locator("table[data-testid=timeline]").inner_text()
    assert f"quota:{QUOTA_ID}" in timeline  # the quota's stream names the request
    assert request.batch_ref in timeline
    transfers = page.locator("table[data-testid=trace-transfers] tbody tr")
    assert transfers.count() == PEOPLE + 1
    payees = page.locator("table[data-testid=trace-payees]").inner_text()
    for _name, _id_number, wallet_id in bureau["people"]:
        assert wallet_id[-4:] in payees

    request.refresh_from_db()
    assert request.state == R.REPORTED and request.approved_by == bureau["approver"]
    assert (request.paid_count, request.returned_count) == (PEOPLE, 1)
    for _name, _id_number, wallet_id in bureau["people"]:
        assert bureau["ecny"].admin.balance(wallet_id=wallet_id) == 800_00
    assert bureau["ecny"].admin.balance(wallet_id=bureau["company"][2]) == 0
