"""Celery tasks of fiscal disbursement: a few lines each, calling a service. All idempotent."""
from celery import shared_task
from django.utils import timezone

from fiscal_disbursement import services
from fiscal_disbursement.models import PaymentRequest
from treasury import stored_files


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


@shared_task(name="fiscal_disbursement.remove_unreferenced_uploads")
def remove_unreferenced_uploads_task() -> int:
    """Daily: payee files no request names (refused, or replaced in a draft), once a day old."""
    return stored_files.remove_unreferenced(
        folder=services.UPLOAD_FOLDER, now=timezone.now(),
        referenced=set(PaymentRequest.objects.values_list("upload_path", flat=True)))
