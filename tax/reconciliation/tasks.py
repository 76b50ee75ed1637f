"""Celery tasks of tax reconciliation: a few lines each, calling a service. All idempotent."""
import datetime as dt
import logging

from celery import shared_task
from django.utils import timezone

from tax.services import local_date
from treasury.services.transfers import OperatorRejected, OperatorUnavailable

from . import services
from .models import RunState

logger = logging.getLogger(__name__)


@shared_task(name="tax_reconciliation.reconcile", acks_late=True, reject_on_worker_lost=True)
def reconcile_task(*, check_date: str, tax_org_code: str = "", requested: bool = False) -> int | None:
    """`requested`: a person asked for it (`services.request_run`) and watches the run's page, which shows why it
    stopped when the operator's statement could not be fetched; they ask again. Otherwise that is an error here."""
    try:
        run = services.reconcile(check_date=dt.date.fromisoformat(check_date), tax_org_code=tax_org_code,
                                 now=timezone.now())
    except (OperatorUnavailable, OperatorRejected) as exc:
        if not requested:
            raise
        logger.warning("reconciliation of %s (%s) asked for by a person stopped: %s", check_date,
                       tax_org_code or "all", exc)
        return None
    if run.state == RunState.DONE and not run.tax_org_code:
        send_check_result_task.apply_async(kwargs={"run_id": run.pk})
    return run.pk


@shared_task(name="tax_reconciliation.send_check_result", acks_late=True, reject_on_worker_lost=True)
def send_check_result_task(*, run_id: int) -> int:
    """The day's 2111 to the tax system, once the all-authority run is done."""
    return services.send_check_result(run_id=run_id, now=timezone.now()).pk


@shared_task(name="tax_reconciliation.resend_check_results", acks_late=True, reject_on_worker_lost=True)
def resend_check_results_task() -> int:
    """2111s not yet acknowledged, sent again (beat, every ten minutes)."""
    return services.resend_check_results(now=timezone.now())


@shared_task(name="tax_reconciliation.reconcile_yesterday", acks_late=True, reject_on_worker_lost=True)
def reconcile_yesterday_task() -> int:
    now = timezone.now()
    run = services.reconcile(check_date=local_date(now) - dt.timedelta(days=1), now=now)
    if run.state == RunState.DONE:  # sends only when the answer is new or changed
        send_check_result_task.apply_async(kwargs={"run_id": run.pk})
    return run.pk


@shared_task(name="tax_reconciliation.send_entry_details", acks_late=True, reject_on_worker_lost=True)
def send_entry_details_task(*, entry_date: str = "") -> dict:
    """The day's treasury entry detail (3139) to the tax system: yesterday's unless a date is given."""
    from tax import entries

    from .corrections import book_correction_entries

    now = timezone.now()
    day = dt.date.fromisoformat(entry_date) if entry_date else local_date(now) - dt.timedelta(days=1)
    book_correction_entries(now=now)  # a correction settled that day is a line of its detail
    return entries.send_entry_details(entry_date=day, now=now)


@shared_task(name="tax_reconciliation.book_correction_entries", acks_late=True, reject_on_worker_lost=True)
def book_correction_entries_task() -> int:
    """The sweep: treasury entries of settled corrections whose transfer's announcement was lost."""
    from .corrections import book_correction_entries

    return book_correction_entries(now=timezone.now())
