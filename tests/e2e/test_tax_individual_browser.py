"""An individual's own tax in a real browser: a person logs in as themselves, opens 我的纳税 (my tax), pays a tax
voucher from their personal wallet at the sandbox operator (a bad amount first: told why, nothing debited),
sees the payment with its receipt and downloads the receipt, a signed PDF that opens and names the amount."""
import io

import pypdf
import pytest

from tax.models import DeductionState, TaxDeduction
from tests import factories as f
from tests.tax.conftest import on_entrust_date, tax  # noqa: F401  (clock on ENTRUST_DATE; authority, staff, treasury)
from tests.tax.test_my_tax import individual

pytestmark = [pytest.mark.e2e]


def test_an_individual_pays_a_tax_voucher_and_downloads_the_receipt(
        tax, live_server, chromium_browser, browser_page):  # noqa: F811
    payer, _, user = individual(tax, balance_fen=1_000_00)
    page, base = browser_page, live_server.url
    page.goto(f"{base}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base}/")

    page.click("nav.sidenav a[data-nav=tax_mine]")
    page.wait_for_url(f"{base}/tax/mine/")
    assert page.locator("#id_wallet_id option").count() == 1  # their own wallet, nobody else's
    page.fill("#id_tax_vou_no", "320261100077")
    page.fill("#id_amount", "12.3.4")
    page.click("[data-testid=my-tax-submit]")
    assert "123.45" in page.locator("#id_amount").locator("..").inner_text()  # the amount's own error
    assert not TaxDeduction.objects.exists() and tax.balance(payer.wallet_id) == 1_000_00

    page.fill("#id_amount", "256.80")
    page.click("[data-testid=my-tax-submit]")
    page.wait_for_url(f"{base}/tax/mine/")
    assert "缴税成功 · 税票 320261100077" in page.locator(".messages").inner_text()
    deduction = TaxDeduction.objects.get()
    assert deduction.state == DeductionState.SUCCEEDED and tax.balance(payer.wallet_id) == 1_000_00 - 256_80
    row = page.locator(f"[data-testid=my-taxes] tr[data-deduction='{deduction.pk}']")
    assert row.get_attribute("data-state") == "succeeded" and "¥256.80" in row.inner_text()
    assert tax.authority.name in row.inner_text()  # the tax authority by its name

    with page.expect_download() as download_info:
        row.locator("[data-testid=receipt-link]").click()
    data = open(download_info.value.path(), "rb").read()
    assert data.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    assert "256.80" in text
