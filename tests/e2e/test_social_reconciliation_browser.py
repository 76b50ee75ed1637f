"""Premium reconciliation in a real browser: a day with an employer's declaration and a flexible-employment
payment, the operator's statement crediting the flexible payment twice. A tax staff member finds the day's
discrepancy, filters to flexible payments, takes the case into investigation and proposes a refund; a second
staff member approves it (the refund transfer is made); the first resolves the case with a reason."""
import pytest

from social_security import reconciliation
from social_security.models import SocialCaseCorrection, SocialDiscrepancyCase
from tests import factories as f
from tests.social_security.conftest import fake_tips, world  # noqa: F401  (employer, fund account, stand-in TIPS)
from tests.social_security.test_reconciliation import Day, now
from treasury.access import roles
from treasury.models import Transfer

pytestmark = [pytest.mark.e2e]


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def test_staff_work_a_duplicate_credit_through_to_a_refund(world, fake_tips, live_server,  # noqa: F811
                                                            chromium_browser, browser_page):
    page, base = browser_page, live_server.url
    day = Day(world, fake_tips)
    rows = day.statement() + [(day.flex_key, "credit", day.payment.amount_fen, "transfer", day.fund)]
    run = reconciliation.reconcile_day(check_date=day.date, now=now(), statement_rows=rows)
    checker = f.make_user(role=roles.TAX_STAFF, organization=world.authority)

    # 1. The day's run: one matched, one duplicate; only the flexible payment when filtered.
    _log_in(page, base, world.tax_staff.username)
    page.click("nav.sidenav a[data-nav=social_reconciliation]")
    page.wait_for_url(f"{base}/social/reconciliation/")
    page.click(f"tr[data-run='{run.pk}'] a")
    assert page.locator("[data-testid=count-matched]").inner_text() == "1"
    assert page.locator("[data-testid=count-duplicate_operator]").inner_text() == "1"
    page.select_option("#id_source", "flexible")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**source=flexible**")
    assert page.locator("[data-testid=results] tbody tr").count() == 1
    assert page.locator(f"tr[data-request-id='{day.flex_key}']").get_attribute("data-outcome") == "duplicate_operator"

    # 2. The case: investigate, then propose returning the second debit to the person's wallet.
    page.click(f"tr[data-request-id='{day.flex_key}'] a[data-case]")
    page.fill("#investigate-note", "运营机构重复入账")
    page.click("[data-action=investigate]")
    assert page.locator("[data-testid=case-state]").get_attribute("data-state") == "investigating"
    page.select_option("#id_kind", "refund")
    page.fill("#id_amount", f"{day.payment.amount_fen / 100:.2f}")
    page.fill("#id_reason", "退还重复扣款")
    page.click("[data-action=propose-correction]")
    page.locator("[data-testid=case-corrections] tr[data-correction]").wait_for()
    assert page.locator("[data-action=approve-correction]").count() == 0  # not by the one who proposed it
    case_url = page.url
    page.click("[data-testid=logout]")

    # 3. A second staff member approves: the refund transfer is made through the transfer core.
    _log_in(page, base, checker.username)
    page.goto(case_url)
    page.click("[data-action=approve-correction]")
    page.locator(".messages, [role=alert], .message").first.wait_for()
    correction = SocialCaseCorrection.objects.get()
    transfer = Transfer.objects.get(pk=correction.transfer_id)
    assert (transfer.payee_id, transfer.amount_fen) == (day.payment.wallet_id, day.payment.amount_fen)
    page.click("[data-testid=logout]")

    # 4. The first resolves the case with the reason; the history shows every step.
    _log_in(page, base, world.tax_staff.username)
    page.goto(case_url)
    page.fill("#resolve-reason", "已退还重复扣款 (refunded)")
    page.click("[data-action=resolve]")
    assert page.locator("[data-testid=case-state]").get_attribute("data-state") == "resolved"
    assert page.locator("[data-testid=case-history] tbody tr").count() == 4
    case = SocialDiscrepancyCase.objects.get()
    assert case.state == "resolved" and case.correcting_transfer_id == transfer.pk
