"""Flexible-employment premiums in a real browser: an individual logs in as themselves, sees an overdue month
with its late fee, confirms and pays it from their personal wallet at the sandbox operator, sees the payment
with its receipt, and downloads the statement of contributions (a PDF whose text has the month paid).

The clock is pinned to 2026-11-26 10:00 (Asia/Shanghai) for the server thread too: September 2026 fell due on
2026-10-31 and is 26 days overdue (226,200 fen x 0.05% x 26 = 2,941 fen late fee)."""
import datetime as dt
import io
from unittest import mock

import pypdf
import pytest

from social_security.flexible.models import Payment, PaymentState, PeriodState
from tests import factories as f
from tests.social_security.flexible.conftest import NOW, flex  # noqa: F401  (region fund, staff, sandbox)

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def pinned_clock():
    with mock.patch("django.utils.timezone.now", return_value=NOW):
        yield


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_an_individual_pays_an_overdue_month_and_downloads_the_statement(
        flex, pinned_clock, live_server, chromium_browser, browser_page):  # noqa: F811
    who = flex.individual(name="周九", balance_fen=10_000_00)
    enrolment = flex.enrol(who, start=dt.date(2026, 9, 1))
    page, base = browser_page, live_server.url
    _log_in(page, base, who.user.username)

    # 1. My social insurance: September is overdue with its late fee to today.
    page.click("nav.sidenav a[data-nav=social_flexible_mine]")
    page.wait_for_url(f"{base}/social/flexible/")
    september = page.locator("[data-testid=periods] tr[data-month='2026-09']")
    assert september.get_attribute("data-state") == "due" and september.get_attribute("data-overdue") == "1"
    assert september.locator("[data-testid=late-fee]").inner_text() == "¥29.41"
    assert "¥2,262.00" in page.locator("[data-testid=arrears]").inner_text()
    assert page.locator("[data-testid=periods] tr[data-month='2026-10']").get_attribute("data-overdue") is None

    # 2. Pay through September: the confirmation shows the late fee and the total before anything moves.
    page.click("[data-testid=pay-through-2026-09]")
    page.wait_for_url("**/social/flexible/pay/?through=*")
    assert page.locator("[data-testid=quote-late-fees]").inner_text() == "¥29.41"
    assert page.locator("[data-testid=quote-total]").inner_text() == "¥2,291.41"
    # The total to pay reads as a figure, as large and dark as the months above it (a table footer's cells are
    # headers: they were drawn in the column titles' small grey type).
    style = "el => [parseFloat(getComputedStyle(el).fontSize), getComputedStyle(el).color]"
    total_size, total_color = page.locator("[data-testid=quote-total]").evaluate(style)
    row_size, row_color = page.locator("table[data-testid=quote] tbody td").last.evaluate(style)
    assert total_size >= row_size and total_color == row_color
    assert not Payment.objects.exists()
    page.click("[data-testid=pay-submit]")
    page.wait_for_url(f"{base}/social/flexible/payments/")
    payment = Payment.objects.get()
    assert payment.state == PaymentState.PAID and payment.amount_fen == 229141
    assert flex.balance(who.wallet_id) == 10_000_00 - 229141
    assert flex.balance(flex.fund_wallet.wallet_id) == 229141
    row = page.locator(f"[data-testid=payments] tr[data-payment='{payment.pk}']")
    assert row.get_attribute("data-state") == "paid"
    assert row.locator("[data-testid=receipt-link]").inner_text() == payment.transfer.receipt.number
    assert enrolment.periods.get(month=dt.date(2026, 9, 1)).state == PeriodState.PAID

    # 3. The statement downloads as a PDF that opens and lists the month paid with its late fee.
    with page.expect_download() as download_info:
        page.click("[data-testid=statement-link]")
    data = open(download_info.value.path(), "rb").read()
    assert data.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    assert "2026-09" in text and "29.41" in text and "2291.41" in text and "周九" in text
    assert who.person.resident_id not in text  # the ID is masked

    # 4. Back on the page, September is paid and October is the next month due.
    page.click("nav.sidenav a[data-nav=social_flexible_mine]")
    assert page.locator("[data-testid=periods] tr[data-month='2026-09']").get_attribute("data-state") == "paid"
    assert page.locator("[data-testid=pay-through-2026-10]").is_visible()
