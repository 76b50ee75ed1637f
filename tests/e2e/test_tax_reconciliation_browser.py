"""Tax reconciliation in a real browser: deductions made through the services against the sandbox operator,
the tax system's check detail (3111) with three planted discrepancies (a deduction it does not hold, one
at another amount, a serial we never saw); tax staff run the day's reconciliation from the page, see the
discrepancies with their totals, open one and resolve it with a reason, then open the deduction behind it and follow
its transfer to the trace."""
import dataclasses

import pytest

from tax.handlers import TaxHandler
from tax.models import DeductionState
from tax.reconciliation.models import CaseState, DiscrepancyCase, Outcome
from tests import factories as f
from tests.tax.conftest import on_entrust_date, tax  # noqa: F401  (clock on ENTRUST_DATE; authority, staff, treasury)
from tests.tax.helpers import ENTRUST_DATE
from tests.tax.reconciliation.conftest import check_detail, check_lines, deduct_each

pytestmark = [pytest.mark.e2e]


def _log_in(page, base_url, username):
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base_url}/")


@pytest.fixture(autouse=True)
def check_result_outbox(monkeypatch):
    """The 2111 sent after the run goes to a list here (tests/tax/reconciliation covers the real exchange)."""
    from adapters.tips.interface import Acknowledgement
    from tax import services as tax_services

    sent = []

    class Outbox:
        def send_check_result(self, result):
            sent.append(result)
            return Acknowledgement(ori_msg_id="0" * 20, result="90000")

    monkeypatch.setattr(tax_services, "_tips", lambda: Outbox())
    return sent


@pytest.fixture
def planted_day(tax):  # noqa: F811
    """Four deductions through the sandbox operator; the tax system's check detail drops one, changes the
    amount of another and adds a serial we never saw."""
    deductions = deduct_each(tax, [(name, 1_000_00, amount) for name, amount in
                                   [("matched", 100_00), ("matched2", 80_00), ("amount", 200_00), ("dropped", 300_00)]])
    assert {d.state for d in deductions.values()} == {DeductionState.SUCCEEDED}
    lines = check_lines([d for name, d in deductions.items() if name != "dropped"])
    lines = [dataclasses.replace(line, amount_fen=line.amount_fen + 5_00)
             if line.ori_tra_no == deductions["amount"].tra_no else line for line in lines]
    lines.append(dataclasses.replace(lines[0], ori_tra_no="88888888", amount_fen=66_00))
    ack = TaxHandler().receive_check_detail(check_detail(lines))
    assert ack.result == "90000", ack
    return deductions


def test_staff_run_the_days_reconciliation_see_the_discrepancies_and_resolve_one(
        tax, planted_day, live_server, chromium_browser, browser_page):  # noqa: F811
    page, base = browser_page, live_server.url
    _log_in(page, base, tax.staff.username)

    # 1. The reconciliation page, from the navigation; run the day now.
    page.click("nav.sidenav a[data-nav=tax_reconciliation]")
    page.wait_for_url(f"{base}/tax/reconciliation/")
    page.fill("#id_check_date", ENTRUST_DATE.isoformat())
    # The run works inside the request: after the first click the button says it is working and a second click
    # sends nothing. (Watched with a listener after the page's own that keeps the form from leaving.)
    button = page.locator("[data-testid=run-now] button[type=submit]")
    page.evaluate("""() => { window.submits = [];
        document.querySelector('[data-testid=run-now]').addEventListener('submit', event => {
            window.submits.push(event.defaultPrevented); event.preventDefault(); }); }""")
    button.click()
    button.click()
    assert page.evaluate("window.submits") == [False, True]  # sent once; the second refused by the page
    assert button.get_attribute("aria-busy") == "true" and "正在对账" in button.inner_text()
    page.reload()
    page.fill("#id_check_date", ENTRUST_DATE.isoformat())
    page.click("[data-testid=run-now] button[type=submit]")
    page.wait_for_url(f"{base}/tax/reconciliation/runs/**")
    assert page.locator("[data-testid=run-state]").get_attribute("data-state") == "done"

    # 2. The totals show the three planted discrepancies and the two matches.
    for outcome, count in [(Outcome.MATCHED, 2), (Outcome.AMOUNT_MISMATCH, 1), (Outcome.MISSING_TAX, 1),
                           (Outcome.MISSING_OURS, 1)]:
        assert page.locator(f"[data-testid=count-{outcome}]").inner_text() == str(count), outcome
    assert page.locator("[data-testid=discrepancy-total]").inner_text() == "3"
    page.select_option("#id_outcome", Outcome.AMOUNT_MISMATCH)
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**outcome=amount_mismatch**")
    rows = page.locator("[data-testid=results] tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-tra-no") == planted_day["amount"].tra_no
    assert planted_day["amount"].pay_acct not in page.content()  # the wallet id is masked

    # 3. Open the case and resolve it with a reason (an empty reason is refused by the browser).
    rows.first.locator("a[data-case]").click()
    page.wait_for_url(f"{base}/tax/reconciliation/cases/**")
    assert page.locator("[data-testid=case-state]").get_attribute("data-state") == CaseState.OPEN
    page.fill("#investigate-note", "asked the tax system for its record")
    page.click("[data-action=investigate]")
    page.wait_for_function("document.querySelector('[data-testid=case-state]')?.dataset.state === 'investigating'")
    page.fill("#resolve-reason", "税务方已更正金额 (the tax system corrected the amount)")
    page.click("[data-action=resolve]")
    page.wait_for_function("document.querySelector('[data-testid=case-state]')?.dataset.state === 'resolved'")
    assert "税务方已更正金额" in page.locator("[data-testid=case-reason]").inner_text()
    assert page.locator("[data-testid=case-actions]").count() == 0
    case = DiscrepancyCase.objects.get(outcome=Outcome.AMOUNT_MISMATCH, tra_no=planted_day["amount"].tra_no)
    assert case.state == CaseState.RESOLVED and case.resolved_by == tax.staff.username

    # 4. The dashboard says two cases wait to be taken up; its link lists them.
    page.click("nav.sidenav a[data-nav=dashboard]")
    waiting = page.locator("[data-waiting=tax_cases_open]")
    assert waiting.locator(".count").inner_text() == "2"
    waiting.locator("a").click()
    page.wait_for_url(f"{base}/tax/reconciliation/cases/?state=open")
    assert page.locator("[data-testid=cases] tbody tr").count() == 2

    # 5. The deduction behind the case, from the deductions list: its page leads on to the transfer's trace.
    deduction = planted_day["amount"]
    page.goto(f"{base}/tax/deductions/")
    page.click(f"tr[data-deduction='{deduction.pk}'] a[href='/tax/deductions/{deduction.pk}/']")
    page.wait_for_url(f"{base}/tax/deductions/{deduction.pk}/")
    assert page.locator("[data-testid=deduction-state]").get_attribute("data-state") == DeductionState.SUCCEEDED
    assert page.locator("[data-testid=entries] tbody tr").count() == 1
    assert deduction.pay_acct not in page.content()  # masked here too
    page.click("[data-testid=trace-link]")
    page.wait_for_url(f"{base}/trace/transfer/{deduction.transfer_id}/")


def test_a_queued_run_shows_its_steps_and_the_page_shows_the_new_figures_when_it_ends(
        tax, planted_day, live_server, chromium_browser, browser_page, monkeypatch):  # noqa: F811
    """With a worker apart from the web process (here: the test, which runs the queued task when it chooses),
    "run now" queues the day and the run's page follows it: the steps as the worker reaches them, then the
    run's figures without a reload by hand."""
    from tax.reconciliation import tasks
    from tax.reconciliation.models import ReconciliationRun, RunStep

    queued = []
    monkeypatch.setattr(tasks.reconcile_task, "apply_async", lambda kwargs: queued.append(kwargs))
    page, base = browser_page, live_server.url
    _log_in(page, base, tax.staff.username)
    page.goto(f"{base}/tax/reconciliation/")
    page.fill("#id_check_date", ENTRUST_DATE.isoformat())
    page.click("[data-testid=run-now] button[type=submit]")
    page.wait_for_url(f"{base}/tax/reconciliation/runs/**")
    progress = page.locator("[data-testid=run-progress]")
    assert progress.locator("[aria-current=step]").get_attribute("data-step") == RunStep.QUEUED
    assert page.locator("[data-testid=run-step]").get_attribute("data-step") == RunStep.QUEUED
    assert len(queued) == 1

    # The worker takes it: the page moves on to the step it reached, by itself.
    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code=tax.authority.code)
    ReconciliationRun.objects.filter(pk=run.pk).update(step=RunStep.MATCHING)
    page.wait_for_function("document.querySelector('[aria-current=step]')?.dataset.step === 'matching'")
    assert progress.locator(".run-step-done").count() == 2
    assert page.locator("[data-testid=run-step]").inner_text().startswith("核对并立案")

    # It ends: the page shows the run's figures.
    tasks.reconcile_task(**queued[0])
    page.wait_for_selector("[data-testid=run-state][data-state=done]")
    assert page.locator("[data-testid=run-progress]").count() == 0
    assert page.locator("[data-testid=discrepancy-total]").inner_text() == "3"
