"""Celery tasks of fiscal disbursement: a few lines each, calling a service. All idempotent."""
from celery import shared_task
from django.utils import timezone

from fiscal_disbursement import services


@shared_task(name="fiscal_disbursement.send_voucher", acks_late=True, reject_on_worker_lost=True)
def send_voucher_task(*, request_id: int) -> str:
    return services.send_voucher(request_id=request_id, now=timezone.now()).state


@shared_task(name="fiscal_disbursement.send_report", acks_late=True, reject_on_worker_lost=True)
def send_report_task(*, report_id: int) -> str:
    return services.send_report(report_id=report_id, now=timezone.now()).state


@shared_task(name="fiscal_disbursement.resend_pending", acks_late=True, reject_on_worker_lost=True)
def resend_pending_task() -> dict:
    return services.resend_pending(now=timezone.now())


@shared_task(name="fiscal_disbursement.finish_paying_requests", acks_late=True, reject_on_worker_lost=True)
def finish_paying_requests_task() -> int:
    return services.finish_paying_requests(now=timezone.now())


@shared_task(name="fiscal_disbursement.reconcile_reported_requests", acks_late=True, reject_on_worker_lost=True)
def reconcile_reported_requests_task() -> dict:
    return services.reconcile_reported_requests(now=timezone.now())


@shared_task(name="fiscal_disbursement.sync_quotas", acks_late=True, reject_on_worker_lost=True)
def sync_quotas_task() -> int:
    return services.sync_quotas(now=timezone.now())


@shared_task(name="fiscal_disbursement.start_paying", acks_late=True, reject_on_worker_lost=True)
def start_paying_task(*, request_id: int) -> str:
    return services.start_paying(request_id=request_id, now=timezone.now()).state
