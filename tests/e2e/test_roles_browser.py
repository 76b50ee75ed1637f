"""Each role, in a real browser: signs in, sees its own navigation and no other organization's data,
opens a transfer, its trace (and not another organization's) and the receipt verification page;
the language switch works."""
import os
import re

import pytest

from tests import factories as f
from tests.access.test_navigation import EXPECTED
from treasury.models import Organization

pytestmark = [pytest.mark.e2e]

# The same expectation as the page tests: one table, two ways of looking.
EXPECTED_NAV = EXPECTED


@pytest.fixture
def world(transactional_db):
    """Four organizations, each with one transfer of its own batch, and a user of every role."""
    finance = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU, name="市财政局")
    tax = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="市税务局")
    employer_a = f.make_organization(name="甲科技有限公司")
    employer_b = f.make_organization(name="乙贸易有限公司")
    batches = {}
    for org, batch in ((finance, "FIN-001"), (tax, "TAX-001"), (employer_a, "PAY-A-001"), (employer_b, "PAY-B-001")):
        payer = f.make_wallet(holder_org=org)
        transfer = f.make_transfer(payer=payer, payee=f.make_wallet(holder_person=f.make_person(name="李小龙")),
                                   batch_ref=batch, state="settled", amount_fen=8_888_00)
        batches[batch] = transfer
    f.make_transfer(payer=employer_a.wallets.first(), batch_ref="PAY-A-001", state="failed", amount_fen=1_00,
                    failure_message="payee wallet closed")
    users = {
        "finance_clerk": f.make_user(role="finance_clerk", organization=finance),
        "finance_approver": f.make_user(role="finance_approver", organization=finance),
        "tax_staff": f.make_user(role="tax_staff", organization=tax),
        "employer_operator": f.make_user(role="employer_operator", organization=employer_a),
        "employer_approver": f.make_user(role="employer_approver", organization=employer_a),
        "auditor": f.make_user(role="auditor"),
        "admin": f.make_user(role="admin", is_staff=True),  # administrators use the admin site too
    }
    own_batch = {
        "finance_clerk": "FIN-001",
        "finance_approver": "FIN-001",
        "tax_staff": "TAX-001",
        "employer_operator": "PAY-A-001",
        "employer_approver": "PAY-A-001",
    }
    return {"users": users, "batches": batches, "own_batch": own_batch}


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


@pytest.mark.parametrize("role", sorted(EXPECTED_NAV))
def test_role_sees_own_navigation_and_data(role, world, live_server, browser_page):
    page, base = browser_page, live_server.url
    _log_in(page, base, world["users"][role].username)

    nav_keys = set(page.locator("nav.sidenav [data-nav]").evaluate_all("els => els.map(e => e.dataset.nav)"))
    assert nav_keys == EXPECTED_NAV[role]
    assert page.locator("h1").inner_text() == "工作台"  # Chinese by default

    page.click("nav.sidenav a[data-nav=transfers]")
    page.wait_for_url(f"{base}/transfers/")
    shown_batches = set(page.locator("table[data-testid=transfers] td.mono").all_inner_texts())
    if role in ("auditor", "admin"):
        assert shown_batches == set(world["batches"])
        own = world["batches"]["PAY-A-001"]
    else:
        assert shown_batches == {world["own_batch"][role]}
        own = world["batches"][world["own_batch"][role]]
        # Another organization's transfer, asked for by its URL: not found, not forbidden.
        foreign = next(t for b, t in world["batches"].items() if b != world["own_batch"][role])
        response = page.goto(f"{base}/transfers/{foreign.pk}/")
        assert response.status == 404
        assert "乙贸易" not in page.content() and "8,888.00" not in page.content()

    # Personal data is masked in the list: the payee's name never appears whole.
    page.goto(f"{base}/transfers/")
    assert "李小龙" not in page.content() and "李*龙" in page.content()

    page.goto(f"{base}/transfers/{own.pk}/")
    assert page.locator("[data-testid=state]").inner_text() == "已结算"
    trace_href = page.get_attribute("[data-testid=trace-link]", "href")
    assert trace_href == f"/trace/transfer/{own.pk}/"
    page.click("[data-testid=trace-link]")
    page.wait_for_url(base + trace_href)
    assert str(own.pk) in page.locator("main").inner_text()
    if role not in ("auditor", "admin"):
        assert page.goto(f"{base}/trace/transfer/{foreign.pk}/").status == 404

    page.goto(f"{base}/transfers/")
    page.click("nav.sidenav a[data-nav=receipt_verify]")
    page.wait_for_url(f"{base}/receipts/verify/")
    assert page.locator("main input[type=file]").count() == 1


def test_dashboard_in_chinese_then_english(world, live_server, browser_page, tmp_path_factory):
    page, base = browser_page, live_server.url
    _log_in(page, base, world["users"]["employer_operator"].username)

    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("h1").inner_text() == "工作台"
    assert page.locator("[data-testid=total-count]").inner_text() == "2"
    assert page.locator("[data-testid=attention-count]").inner_text() == "1"
    assert page.locator("table[data-testid=by-state]").inner_text().count("¥8,888.00") >= 1
    shots = tmp_path_factory.mktemp("screenshots")
    page.screenshot(path=str(shots / "dashboard-zh.png"), full_page=True)

    page.click("form.lang-switch button[data-lang=en]")
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.locator("html").get_attribute("lang") == "en"
    page.screenshot(path=str(shots / "dashboard-en.png"), full_page=True)
    # Keep a copy where a person can look at it when asked to (CI artifacts).
    keep = os.environ.get("E2E_SCREENSHOT_DIR")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for name in ("dashboard-zh.png", "dashboard-en.png"):
            (shots / name).replace(os.path.join(keep, name))

    page.click("[data-testid=logout]")
    page.wait_for_url(re.compile(r".*/login/$"))


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_top_bar_fits_a_phone(language, world, live_server, browser_page):
    """At 390 px (a phone) the top bar wraps onto lines of its own: the page never scrolls sideways, the
    language names and "Log out" stay on one line each (简体中文 was stacked a character a line)."""
    page, base = browser_page, live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    _log_in(page, base, world["users"]["finance_clerk"].username)
    if language == "en":
        page.click("form.lang-switch button[data-lang=en]")
        page.wait_for_load_state()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for selector in ("form.lang-switch button[data-lang=zh-hans]", "form.lang-switch button[data-lang=en]",
                     "[data-testid=logout]"):
        box = page.locator(selector).bounding_box()
        line = page.locator(selector).evaluate("el => parseFloat(getComputedStyle(el).lineHeight)")
        assert box["height"] < 2 * line, f"{selector} wraps onto several lines"
