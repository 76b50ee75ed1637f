"""Integration: a reconciliation asked for on the page is done by a real Celery worker, and the page's progress
follows it. The worker is killed while it fetches the operator's statement: nothing of the run changes, the run
shows the step it stopped at until that step is stale, and asked for again it is done once by a new worker, its
discrepancies the cases the day's all-authority run opened, not new ones."""
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from tax.reconciliation import services
from tax.reconciliation.models import STALLED_AFTER, DiscrepancyCase, ReconciliationRun, RunState, RunStep
from tests.clients import logged_in
from tests.tax.reconciliation.conftest import ENTRUST_DATE, TAX_ORG_CODE
from tests.tax.reconciliation.test_run_progress import checked_day  # noqa: F401 (the fixture)
from tests.workers import broker_url, celery_to_broker, wait_for, worker_factory  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]


def test_a_run_asked_for_on_the_page_is_done_by_a_worker_even_when_one_dies_on_it(
        checked_day, tax, celery_to_broker, worker_factory):  # noqa: F811
    client = logged_in(tax.staff)
    cases = DiscrepancyCase.objects.count()  # the all-authority run's, made when the check detail arrived

    def progress(run):
        return client.get(reverse("tax:reconciliation-run-progress", args=[run.pk])).json()

    tax.ecny.admin.set_fault("latency_ms", value=3000)  # each operator call takes 3 s
    first = worker_factory(queues="treasury")
    client.post(reverse("tax:reconciliation-run-now"), {"check_date": ENTRUST_DATE.isoformat()})
    run = ReconciliationRun.objects.get(check_date=ENTRUST_DATE, tax_org_code=TAX_ORG_CODE)
    wait_for(lambda: progress(run)["step"] == RunStep.FETCHING, seconds=60,
             what="the worker fetching the operator's statement")
    time.sleep(0.5)  # inside the operator's call
    first.kill()
    tax.ecny.admin.set_fault("latency_ms", value=0)

    run.refresh_from_db()
    assert (run.state, run.step, run.runs, run.failure) == (RunState.WAITING, RunStep.FETCHING, 0, "")
    assert DiscrepancyCase.objects.count() == cases
    assert progress(run)["in_progress"] is True  # not stale yet: asking again queues nothing
    assert services.request_run(check_date=ENTRUST_DATE, tax_org_code=TAX_ORG_CODE, user=tax.staff,
                                now=timezone.now())[1] is False

    # Once the step is stale, asked for again: a new worker does it.
    worker_factory(queues="treasury")
    later = timezone.now() + STALLED_AFTER
    assert services.request_run(check_date=ENTRUST_DATE, tax_org_code=TAX_ORG_CODE, user=tax.staff, now=later)[1]
    wait_for(lambda: progress(run)["step"] == "", seconds=60, what="the new worker finishing the run")
    run.refresh_from_db()
    assert (run.state, run.step, run.runs, run.failure) == (RunState.DONE, "", 1, "")
    assert run.discrepancy_count > 0
    assert DiscrepancyCase.objects.count() == cases  # the same discrepancies are the same cases, opened once
    assert progress(run)["in_progress"] is False
