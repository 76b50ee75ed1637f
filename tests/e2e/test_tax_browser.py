"""Tax in a real browser: tax staff sign a three-party agreement on the page; the sandbox tax system (TIPS)
verifies it with a signed 9114 over SOAP to the live server; it then sends a real-time deduction (3001),
debited from the taxpayer's wallet at the sandbox operator into the treasury; the deductions page shows
it with its result, and the daily treasury entry report shows the amount with its central/local split."""
import pytest
from django.utils import timezone

from tax.models import AgreementState, TaxAgreement
from tests import factories as f
from tests.tax.conftest import on_entrust_date, tax  # noqa: F401  (clock on ENTRUST_DATE; authority, staff, treasury)
from tests.tax.helpers import TAX_ORG_CODE

pytestmark = [pytest.mark.e2e]
PROTOCOL_NO = "P2026-E2E-0001"


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_agreement_signed_verified_by_tips_then_a_deduction_shows_in_lists_and_report(
        tax, tips_sandbox, live_server, chromium_browser, browser_page):  # noqa: F811
    payer = tax.taxpayer(balance_fen=5_000_00)
    page, base = browser_page, live_server.url
    _log_in(page, base, tax.staff.username)

    # 1. The clerk signs the agreement on the page.
    page.click("nav.sidenav a[data-nav=tax_agreements]")
    page.wait_for_url(f"{base}/tax/")
    page.click("[data-testid=sign-link]")
    assert page.input_value("#id_tax_org_code") == TAX_ORG_CODE
    page.fill("#id_taxpayer_id", payer.taxpayer_id)
    page.fill("#id_taxpayer_name", payer.name)
    page.fill("#id_wallet_id", "123")  # a typo first: the error is shown, nothing is recorded
    page.fill("#id_protocol_no", PROTOCOL_NO)
    page.click("[data-testid=sign-submit]")
    errors = page.locator("[data-testid=form-errors]")
    errors.wait_for()
    assert errors.inner_text().strip()
    assert not TaxAgreement.objects.exists()
    page.fill("#id_wallet_id", payer.wallet_id)
    page.click("[data-testid=sign-submit]")
    state = page.locator("[data-testid=agreement-state]")
    state.wait_for()
    assert state.get_attribute("data-state") == AgreementState.PENDING
    assert TaxAgreement.objects.get().wallet.wallet_id == payer.wallet_id  # one agreement, on the wallet named

    # 2. The tax system verifies it (9114 -> 9115, signed both ways); the agreement becomes active.
    answer = tips_sandbox.admin.register_agreement(
        tax_pay_code=payer.taxpayer_id, tax_pay_name=payer.name, pay_acct=payer.wallet_id, protocol_no=PROTOCOL_NO,
        hand_org_name=payer.name, tax_org_code=TAX_ORG_CODE)
    assert (answer["vc_result"], answer["state"]) == ("0", "verified"), answer
    page.reload()
    assert page.locator("[data-testid=agreement-state]").get_attribute("data-state") == AgreementState.ACTIVE
    assert page.locator("[data-testid=history] tr[data-kind='tax.agreement.verification_passed']").count() == 1
    assert page.locator("[data-testid=agreement-actions] [data-action=suspend]").is_visible()

    # 3. A real-time deduction arrives (3001 -> 2001) and is debited at once.
    deduction = tips_sandbox.admin.send_deduction(protocol_no=PROTOCOL_NO, amount_fen=1_234_56)
    assert deduction["result"] == "90000", deduction
    assert tax.balance(payer.wallet_id) == 5_000_00 - 1_234_56
    assert tax.balance(tax.treasury_wallet.wallet_id) == 1_234_56

    # 4. The deductions page shows it with its result; the wallet id is masked.
    page.click("nav.sidenav a[data-nav=tax_deductions]")
    page.wait_for_url(f"{base}/tax/deductions/")
    row = page.locator(f"[data-testid=deductions] tr[data-tra-no='{deduction['tra_no']}']")
    assert row.get_attribute("data-result") == "90000" and row.get_attribute("data-state") == "succeeded"
    assert row.locator("[data-testid=amount]").inner_text() == "¥1,234.56"
    assert payer.wallet_id not in page.content()
    page.select_option("#id_result_code", "24007")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**result_code=24007**")
    assert page.locator("[data-testid=deductions]").count() == 0

    # 5. The daily treasury entry report shows the amount, split 50/50 for VAT.
    page.click("nav.sidenav a[data-nav=tax_entry_report]")
    page.wait_for_url(f"{base}/tax/entries/")
    page.fill("#report-day", timezone.localdate().isoformat())
    page.click("[data-testid=report-form] button[type=submit]")
    page.wait_for_url("**day=**")
    assert page.locator("[data-testid=entry-report] tr[data-tax-type='增值税']").count() == 1
    assert page.locator("[data-testid=report-amount]").inner_text() == "¥1,234.56"
    assert page.locator("[data-testid=report-central]").inner_text() == "¥617.28"
    assert page.locator("[data-testid=report-local]").inner_text() == "¥617.28"


def test_a_batch_packages_page_follows_its_deduction_until_done(tax, live_server, chromium_browser, browser_page,  # noqa: F811
                                                                 monkeypatch):
    """A 3102 package received and waiting for its worker: its page shows nothing decided yet, follows the
    deduction as the worker (here the test, when it chooses) runs, and shows the package done with its figures."""
    from adapters.tips.interface import Acknowledgement
    from tax import services
    from tax.models import DeductionPackage, PackageState
    from tax.tasks import process_package_task
    from tests.tax.helpers import batch, item

    class TaxSystem:  # the 2102 goes here (tests/tax covers the real exchange)
        def send_batch_result(self, result):
            return Acknowledgement(ori_msg_id="0" * 20, result="90000")

    monkeypatch.setattr(services, "_tips", lambda: TaxSystem())
    queued = []
    monkeypatch.setattr(process_package_task, "apply_async", lambda kwargs: queued.append(kwargs))
    payers = [tax.taxpayer(balance_fen=100_00) for _ in range(3)]
    items = [item(payer=p, protocol_no=tax.signed_and_verified(p).protocol_no, amount_fen=10_00 + i)
             for i, p in enumerate(payers)]
    assert services.receive_batch(message=batch(tax, items), now=timezone.now()).result == "90000"
    package = DeductionPackage.objects.get()
    assert queued == [{"package_id": package.pk}]

    page, base = browser_page, live_server.url
    _log_in(page, base, tax.staff.username)
    page.goto(f"{base}/tax/packages/{package.pk}/")
    assert page.locator("[data-testid=decided-count]").inner_text() == "0"
    assert page.locator("[data-testid=total-count]").inner_text() == "3"
    services.process_package(package_id=package.pk, now=timezone.now())  # as the worker does
    page.wait_for_selector(f"[data-testid=package-state][data-state={PackageState.DONE}]")
    assert page.locator("[data-testid=succeeded-count]").inner_text() == "3"
    assert page.locator("[data-testid=decided-count]").inner_text() == "3"
