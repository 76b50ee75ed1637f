from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from payroll import payslips, services
from payroll.models import PayrollBatch
from treasury import stored_files


@shared_task(name="payroll.finish_paying_batches", acks_late=True, reject_on_worker_lost=True)
def finish_paying_batches_task() -> int:
    return services.finish_paying_batches(now=timezone.now())


@shared_task(name="payroll.build_payslip_archive", acks_late=True, reject_on_worker_lost=True)
def build_payslip_archive_task(*, archive_id: int) -> None:
    """Idempotent: a second delivery leaves a finished archive alone and rebuilds an interrupted one."""
    payslips.build_payslip_archive(archive_id=archive_id, clock=timezone.now)


@shared_task(name="payroll.make_line_transfers", acks_late=True, reject_on_worker_lost=True)
def make_line_transfers_task(*, batch_id: int, actor: str) -> int:
    """Idempotent: lines that got their transfer are skipped; keys are fixed per line."""
    return services.make_line_transfers(batch_id=batch_id, actor=actor, now=timezone.now())


@shared_task(name="payroll.pay_chunk", acks_late=True, reject_on_worker_lost=True,
             autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8)  # as the core's submit task
def pay_chunk_task(*, batch_id: int, transfer_ids: list[int]) -> None:
    """Safe to deliver twice: only transfers still claimed are sent or held; the operator dedupes on keys."""
    services.pay_chunk(batch_id=batch_id, transfer_ids=transfer_ids, now=timezone.now())


@shared_task(name="payroll.remove_unreferenced_uploads")
def remove_unreferenced_uploads_task() -> int:
    """Daily: uploads no batch names (refused files), once a day old (treasury/stored_files.py)."""
    return stored_files.remove_unreferenced(
        folder=services.UPLOAD_FOLDER, now=timezone.now(),
        referenced=set(PayrollBatch.objects.values_list("upload_path", flat=True)))
