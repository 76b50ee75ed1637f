"""Social insurance in a real browser: an employer's operator imports a month's declaration file (one base below
the floor, shown with its note), an approver declares it to the sandbox tax system over the TIPS channel (5101 ->
5102 with a voucher number) and pays it from the employer's wallet under its three-party agreement; the page shows
it paid with its signed receipt, and the fund wallet holds the premiums."""
import pytest
from django.utils import timezone

from social_security import services
from social_security.models import Declaration, DeclarationState
from tests import factories as f
from tests.social_security.conftest import world  # noqa: F401  (the employer, its wallet and agreement)

pytestmark = [pytest.mark.e2e]

FILE = "费款所属期,2026-03\n\n姓名,身份证号,缴费基数\n张三,110101199003071233,8000.00\n李四,310104198511124567,3500.00\n"


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


def _log_out(page):
    page.click("[data-testid=logout]")


def test_an_employer_declares_and_pays_a_month(world, tips_sandbox, live_server, chromium_browser,  # noqa: F811
                                               browser_page, tmp_path):
    page, base = browser_page, live_server.url
    upload = tmp_path / "declaration.csv"
    upload.write_bytes(FILE.encode("utf-8"))

    # 1. The operator imports the month's file; the draft shows the lines, the floor note and the totals.
    _log_in(page, base, world.operator_user.username)
    page.click("nav.sidenav a[data-nav=social_declarations]")
    page.wait_for_url(f"{base}/social/declarations/")
    page.click("[data-testid=new-declaration]")
    page.select_option("#id_region", "370100")
    page.fill("#id_period", "2026-03")
    page.check("input[name=source][value=imported]")
    page.set_input_files("#id_file", str(upload))
    page.click("[data-testid=create-declaration]")
    state = page.locator("[data-testid=declaration-state]")
    state.wait_for()
    assert state.get_attribute("data-state") == DeclarationState.DRAFT
    assert page.locator("[data-testid=line-count]").inner_text() == "2"
    assert "低于下限，按下限 ¥4,680.00 计" in page.locator("[data-testid=lines]").inner_text()
    assert page.locator("[data-testid=total]").inner_text().startswith("¥4,336.56")
    assert page.locator("[data-action=declare]").count() == 0  # the preparer never declares
    declaration = Declaration.objects.get()
    _log_out(page)

    # 2. The approver declares it: the tax system confirms it with a voucher number (5101 -> 5102 over SOAP).
    _log_in(page, base, world.approver.username)
    page.goto(f"{base}/social/declarations/{declaration.pk}/")
    page.click("[data-action=declare]")
    page.locator("[data-testid=declaration-state][data-state=confirmed]").wait_for()
    declaration.refresh_from_db()
    assert page.locator("[data-testid=voucher]").inner_text() == declaration.voucher_no != ""
    (record,) = tips_sandbox.admin.social_declarations()
    assert (record["state"], record["all_amount_fen"]) == ("confirmed", 433656)

    # 3. The approver pays it; the operator settles it; the page shows it paid with its receipt.
    before = world.balance(world.wallet)
    page.click("[data-action=pay]")
    page.locator("[data-testid=declaration-state]").wait_for()
    services.finish_paying_declarations(now=timezone.now())  # the periodic task's work
    page.reload()
    assert page.locator("[data-testid=declaration-state]").get_attribute("data-state") == DeclarationState.PAID
    receipt = page.locator("[data-testid=receipt-link]")
    assert receipt.is_visible() and receipt.inner_text().endswith(".pdf")
    assert world.balance(world.wallet) == before - 433656
    assert world.balance(world.fund_wallet) == 433656
    (record,) = tips_sandbox.admin.social_declarations()
    assert record["paid_amount_fen"] == 433656  # the payment notice (5103) reached the authority
    with page.expect_download() as download:
        receipt.click()
    assert download.value.suggested_filename.endswith(".pdf")
