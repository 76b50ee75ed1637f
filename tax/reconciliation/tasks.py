"""Celery tasks of tax reconciliation: a few lines each, calling a service. All idempotent."""
import datetime as dt

from celery import shared_task
from django.utils import timezone

from tax.services import local_date

from . import services


@shared_task(name="tax_reconciliation.reconcile", acks_late=True, reject_on_worker_lost=True)
def reconcile_task(*, check_date: str, tax_org_code: str = "") -> int:
    return services.reconcile(check_date=dt.date.fromisoformat(check_date), tax_org_code=tax_org_code,
                              now=timezone.now()).pk


@shared_task(name="tax_reconciliation.reconcile_yesterday", acks_late=True, reject_on_worker_lost=True)
def reconcile_yesterday_task() -> int:
    now = timezone.now()
    return services.reconcile(check_date=local_date(now) - dt.timedelta(days=1), now=now).pk
