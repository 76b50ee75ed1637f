"""Payroll in a real browser: an employer operator uploads a file with errors, reads the report and
downloads it, fixes the downloaded report and drops it on the upload page, and submits it; a second employer
user approves, funds and pays; the operator's first answer is lost, so the page shows the run paying with
every line left, then, as the recovery settles them, its progress moves to every line paid without a reload
by the user; a payslip opens; all payslips are prepared and downloaded as a zip.
Celery runs eagerly: paying, and building the zip, finish in the request."""
import base64
import csv
import io
import os
import re
import zipfile

import pytest

from payroll.models import BatchState, PayrollBatch
from payroll.templates_files import EXAMPLE_USCC
from tests import factories as f
from tests.payroll import builders
from treasury.access import roles
from treasury.models import Organization, Wallet
from treasury.services.wallets import register_wallet

pytestmark = [pytest.mark.e2e]
OPERATOR_CODE = "100"  # the builders' wallet ids start with it
STAFF = 5


@pytest.fixture
def employer(transactional_db, ecny_sandbox):
    operator = f.make_operator(code=OPERATOR_CODE)
    org = Organization.objects.create(name="示范科技有限公司", org_type=Organization.Type.EMPLOYER, uscc=EXAMPLE_USCC)
    wallet = register_wallet(wallet_id="1009999999999999", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                             holder_org=org, holder_name=org.name)
    ecny_sandbox.admin.open_wallet(wallet_id=wallet.wallet_id, wallet_type="WT09", holder_name=org.name,
                                   balance_fen=10_000_000_00)
    rows = [builders.employee_row(i) for i in range(1, STAFF + 1)]
    ecny_sandbox.admin.open_wallets(wallets=[
        {"wallet_id": row[3], "wallet_type": "WT01", "wallet_class": 2, "holder_name": row[1]} for row in rows
    ])
    return {
        "rows": rows,
        "operator": f.make_user(role=roles.EMPLOYER_OPERATOR, organization=org, first_name="小王"),
        "approver": f.make_user(role=roles.EMPLOYER_APPROVER, organization=org, first_name="老李"),
    }


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def _upload(page, base_url, name, data: bytes):
    page.goto(f"{base_url}/payroll/upload/")
    page.set_input_files("input[type=file]", files=[{"name": name, "mimeType": "text/csv", "buffer": data}])
    assert page.locator("[data-testid=chosen-file]").inner_text() == name
    page.click("[data-testid=upload-submit]")
    page.wait_for_url(re.compile(rf"{re.escape(base_url)}/payroll/\d+/$"))


def _drop(page, base_url, name, data: bytes):
    """Upload by dragging the file onto the page's drop zone (a drop event carrying the file)."""
    page.goto(f"{base_url}/payroll/upload/")
    dropped = page.evaluate_handle(
        """([name, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "text/csv"}));
            return transfer;
        }""", [name, base64.b64encode(data).decode()])
    page.dispatch_event("[data-testid=dropzone]", "drop", {"dataTransfer": dropped})
    assert page.locator("[data-testid=chosen-file]").inner_text() == name
    page.click("[data-testid=upload-submit]")
    page.wait_for_url(re.compile(rf"{re.escape(base_url)}/payroll/\d+/$"))


def _fixed(report_path, *, wrong_name: str, right_name: str, right_total: str) -> bytes:
    """The downloaded error report, fixed as a clerk would: the holder's name and the declared total."""
    with open(report_path, encoding="utf-8-sig", newline="") as report:
        rows = list(csv.reader(report))
    for row in rows:
        if row and row[0] == "实发合计":
            row[1] = right_total
        row[:] = [right_name if cell == wrong_name else cell for cell in row]
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def test_upload_fix_approve_pay_and_open_a_payslip(employer, live_server, chromium_browser, browser_page, tmp_path,
                                                    ecny_sandbox):
    page, base = browser_page, live_server.url
    rows = employer["rows"]
    _log_in(page, base, employer["operator"].username)

    # The navigation leads to the upload page, which offers the blank template.
    page.click("nav.sidenav a[data-nav=payroll_upload]")
    page.wait_for_url(f"{base}/payroll/upload/")
    assert page.locator("[data-testid=template-xlsx]").is_visible()

    # 1. A file with errors: a wrong holder name on line 2 and a wrong control total.
    broken = [list(r) for r in rows]
    broken[1][1] = "李四"
    _upload(page, base, "工资-有误.csv", builders.to_csv(builders.payroll_rows(broken, total_net=1)))
    assert page.locator("[data-testid=batch-state]").get_attribute("data-state") == "rejected"
    report = page.locator("[data-testid=validation-report]")
    assert "姓名与钱包户名不一致" in report.inner_text()
    assert report.locator("tr[data-code=holder_mismatch]").count() == 1
    assert report.locator("tbody tr").count() >= 2
    with page.expect_download() as download_info:
        page.click("[data-testid=report-csv]")
    downloaded = download_info.value.path()
    assert "姓名与钱包户名不一致" in open(downloaded, encoding="utf-8-sig").read()

    # 2. The downloaded report, fixed and dropped on the upload page (its error column is ignored), submitted.
    total = sum(builders.net_fen(r) for r in rows)
    _drop(page, base, "工资-已改.csv",
          _fixed(downloaded, wrong_name="李四", right_name=rows[1][1], right_total=f"{total // 100}.{total % 100:02d}"))
    assert page.locator("[data-testid=batch-state]").get_attribute("data-state") == "validated"
    assert page.locator("[data-testid=payable-count]").inner_text() == str(STAFF)
    assert page.locator("table[data-testid=lines] tbody tr").count() == STAFF
    page.click("button[data-action=submit]")
    page.wait_for_load_state()
    assert page.locator("[data-testid=batch-state]").get_attribute("data-state") == "submitted"
    assert page.locator("button[data-action=approve]").count() == 0  # the preparer cannot approve
    batch = PayrollBatch.objects.get(state=BatchState.SUBMITTED)

    # 3. A second employer user approves, funds and pays. The operator applies the first payments but its answer
    # is lost: the run stays paying and the page shows what is left until the recovery asks the operator.
    from django.utils import timezone

    from treasury.services.transfers import recover_unconfirmed_transfers

    context = chromium_browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    context.set_default_timeout(15_000)
    approver = context.new_page()
    try:
        _log_in(approver, base, employer["approver"].username)
        approver.goto(f"{base}/payroll/approvals/")
        approver.click(f"tr[data-batch='{batch.pk}'] a")
        approver.wait_for_url(f"{base}/payroll/{batch.pk}/")
        for action, state in (("approve", "approved"), ("fund", "funded")):
            approver.click(f"button[data-action={action}]")
            approver.wait_for_load_state()
            assert approver.locator("[data-testid=batch-state]").get_attribute("data-state") == state
        ecny_sandbox.admin.set_fault("error_after_apply", count=1)
        approver.click("button[data-action=pay]")
        approver.wait_for_load_state()
        assert approver.locator("[data-testid=batch-state]").get_attribute("data-state") == "paying"
        progress = approver.locator("[data-testid=progress]")
        assert progress.locator("[data-testid=open-count]").inner_text() == str(STAFF)
        assert progress.locator("[data-testid=paid-count]").inner_text() == "0"
        recover_unconfirmed_transfers(now=timezone.now(), older_than_seconds=0)  # as the periodic task does
        approver.wait_for_selector("[data-testid=batch-state][data-state=paid]")  # the page polls, then reloads
        progress = approver.locator("[data-testid=progress]")
        assert progress.locator("[data-testid=paid-count]").inner_text() == str(STAFF)
        assert progress.locator("[data-testid=open-count]").inner_text() == "0"
        assert progress.locator("[data-testid=failed-count]").inner_text() == "0"
        assert approver.locator("table[data-testid=lines] .state-settled").count() == STAFF
        shot = tmp_path / "payroll-batch.png"
        approver.screenshot(path=str(shot), full_page=True)
        if os.environ.get("E2E_SCREENSHOT_DIR"):
            approver.screenshot(path=os.path.join(os.environ["E2E_SCREENSHOT_DIR"], "payroll-batch.png"),
                                full_page=True)

        # 4. A payslip opens (a PDF, fetched with the browser's session).
        href = approver.locator("[data-testid=payslip-link]").first.get_attribute("href")
        payslip = approver.request.get(f"{base}{href}")
        assert payslip.status == 200 and payslip.headers["content-type"] == "application/pdf"
        assert payslip.body()[:5] == b"%PDF-"

        # 5. All payslips: prepared in the background (eagerly here), then downloaded as one zip.
        approver.click("button[data-action=prepare-payslips]")
        approver.wait_for_selector("[data-testid=payslips-download]")
        with approver.expect_download() as download_info:
            approver.click("[data-testid=payslips-download]")
        with zipfile.ZipFile(download_info.value.path()) as archive:
            assert len(archive.namelist()) == STAFF
    finally:
        context.close()

    batch.refresh_from_db()
    assert batch.state == BatchState.PAID and batch.approved_by == employer["approver"]


def test_a_second_click_on_pay_sends_nothing_and_the_page_says_it_is_paying(employer, live_server, browser_page):
    """Pay clicked twice while the first click's request is on its way: the browser sends one request, so the
    page shows the run paying, not "the batch's state does not allow this" from a second request the run had
    already left the state for (which read as a refusal of the payment)."""
    from django.utils import timezone

    from payroll import services

    page, base = browser_page, live_server.url
    now = timezone.now()
    org = Organization.objects.get(uscc=EXAMPLE_USCC)
    batch = services.import_payroll_file(employer=org, user=employer["operator"],
                                         filename="工资.csv", now=now,
                                         data=builders.to_csv(builders.payroll_rows(employer["rows"])))
    services.submit_batch(batch_id=batch.pk, user=employer["operator"], now=now)
    services.approve_batch(batch_id=batch.pk, user=employer["approver"], now=now)
    services.fund_batch(batch_id=batch.pk, user=employer["approver"], now=now)
    _log_in(page, base, employer["approver"].username)
    page.goto(f"{base}/payroll/{batch.pk}/")

    sent = []
    page.on("request", lambda request: sent.append(request.url) if request.method == "POST" else None)
    # Two clicks 100 ms apart, well before the first answer can come back.
    page.evaluate("""() => { const pay = document.querySelector("button[data-action=pay]");
                             pay.click(); setTimeout(() => pay.click(), 100); }""")
    page.wait_for_selector("ul.messages li")  # the answer's page, with what happened
    page.wait_for_load_state()
    assert sent == [f"{base}/payroll/{batch.pk}/pay/"]
    assert page.locator("ul.messages li.error").count() == 0
    assert page.locator("[data-testid=batch-state]").get_attribute("data-state") in ("paying", "paid")
