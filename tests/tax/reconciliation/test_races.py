"""Integration (PostgreSQL row locks): the beat's reconciliation and a person's `reconcile_tax` of the same day
at the same moment make one run and open each case once."""
import pytest
from django.utils import timezone

from tax.handlers import TaxHandler
from tax.reconciliation import services
from tax.reconciliation.models import DiscrepancyCase, ReconciliationRun
from tests.concurrency import at_once
from tests.tax.reconciliation.conftest import ENTRUST_DATE, check_detail, planted_lines, planted_statement

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("needs_postgresql")]


def test_two_reconciliations_of_a_day_at_once_make_one_run_and_one_case_a_discrepancy(day):
    TaxHandler().receive_check_detail(check_detail(planted_lines(day)))  # the day is complete: reconciled once
    before = ReconciliationRun.objects.get().runs
    statement = planted_statement(day)
    runs = at_once(*[lambda: services.reconcile(check_date=ENTRUST_DATE, now=timezone.now(),
                                                statement_rows=statement)] * 2)
    assert all(isinstance(r, ReconciliationRun) for r in runs), runs
    run = ReconciliationRun.objects.get()
    assert (run.runs, run.matched_count, run.discrepancy_count) == (before + 2, 2, 7)
    assert DiscrepancyCase.objects.count() == 7  # found three times, opened once each
