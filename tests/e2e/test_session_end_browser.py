"""A page following long work (a payroll run paying) whose session ended, or whose user may no longer see it, shows
so: it went on asking for progress that came back as the sign-in page (or a refusal), could not read it, and asked
again every few seconds for ever, still showing the run as it was."""
import pytest
from django.contrib.sessions.models import Session

from tests import factories as f
from tests.payroll.test_payslips import Payroll
from treasury.access.models import Membership
from treasury.models import TransferState

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("how", ["signed_out_elsewhere", "membership_removed"])
def test_a_paying_run_page_whose_session_ended_shows_why(how, transactional_db, live_server, browser_page):
    payroll = Payroll()
    payroll.line(state=TransferState.PENDING)  # still being paid: the page follows it
    page, base = browser_page, live_server.url
    page.goto(f"{base}/login/")
    page.fill("#id_username", payroll.clerk.username)
    page.fill("#id_password", f.PASSWORD)
    page.click("form.login-card button[type=submit]")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/payroll/{payroll.batch.pk}/")
    assert page.locator("[data-testid=batch-state]").get_attribute("data-state") == "paying"

    if how == "signed_out_elsewhere":
        Session.objects.all().delete()  # signed out in another tab, or the password changed at another desk
        page.wait_for_url(f"{base}/login/**", timeout=10_000)  # the page goes to the sign-in page
    else:
        Membership.objects.filter(user=payroll.clerk).delete()  # moved away from the employer
        page.wait_for_selector("[data-testid=batch-state]", state="detached", timeout=10_000)
        assert page.url == f"{base}/payroll/{payroll.batch.pk}/"  # reloaded: not theirs to see any more
